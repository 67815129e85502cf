"""Metrics with known answers, and honest "unavailable" results when weights are missing.

Tests named *_plumbing_* run the real loading and scoring code on stand-in weights (random
tensors / a tiny TorchScript model written to a temp dir). They check wiring, file lookup and
shapes; their numbers are NOT metric values.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from core.metrics import (
    MetricResult,
    availability,
    cosine_similarity,
    embedding_frechet_distance,
    fid,
    frechet_distance,
    frechet_distance_from_stats,
    integrity,
    json_safe,
    lpips,
    psnr_pair,
    sscd_similarity,
    ssim,
    ssim_pair,
)
from core.metrics import lpips_metric, sscd as sscd_mod
from core.metrics.fid_metric import INCEPTION_FILE


def smooth_image(h: int = 32, w: int = 32) -> np.ndarray:
    """A structured test image (gradients + a square) with values inside [20, 235]."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([20 + 200 * x / (w - 1), 20 + 200 * y / (h - 1), 120 + 60 * np.sin(x / 3.0)], -1)
    img[h // 4 : h // 2, w // 4 : w // 2, 2] = 30
    return img.round().astype(np.uint8)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No torch hub weights, no SSCD file: what a fresh offline machine looks like."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(sscd_mod.ENV_VAR, raising=False)
    return tmp_path


# --- integrity: SSIM / PSNR -------------------------------------------------------------------

def test_identical_images_give_ssim_one_and_psnr_inf_and_strict_json():
    a = smooth_image()
    res = integrity([a, a], [a.copy(), a.copy()])
    assert res["ssim"].value == pytest.approx(1.0)
    assert math.isinf(res["psnr"].value) and res["psnr"].details["identical_pairs"] == 2
    text = json.dumps({k: r.to_dict() for k, r in res.items()}, allow_nan=False)
    assert '"value": "inf"' in text


@pytest.mark.parametrize("sigma", [1, 4, 10])
def test_psnr_matches_formula_for_known_noise(sigma):
    a = smooth_image()
    signs = np.random.default_rng(sigma).choice([-1, 1], size=a.shape)
    b = (a.astype(int) + sigma * signs).astype(np.uint8)  # no clipping: a in [20, 235]
    assert np.mean((b.astype(float) - a) ** 2) == sigma**2
    assert psnr_pair(a, b) == pytest.approx(10 * math.log10(255**2 / sigma**2), abs=1e-9)


@pytest.mark.parametrize("size", [32, 8])  # 8 px: below the 11 px Gaussian window
def test_ssim_decreases_monotonically_with_noise(size):
    a = smooth_image(size, size)
    noise = np.random.default_rng(0).standard_normal(a.shape)
    levels = [0, 2, 5, 10, 20, 40, 80]
    noisy = [np.clip(a + s * noise, 0, 255).round().astype(np.uint8) for s in levels]
    values = ssim([a] * len(levels), noisy).per_item
    assert values[0] == pytest.approx(1.0)
    assert all(x > y for x, y in zip(values, values[1:])), values


def test_ssim_window_choice_is_reported():
    assert ssim([smooth_image()], [smooth_image()]).details["window"] == "gaussian11"
    assert ssim([smooth_image(8, 8)], [smooth_image(8, 8)]).details["window"] == "uniform7"
    with pytest.raises(ValueError, match="at least 3 px"):
        ssim_pair(smooth_image(2, 2), smooth_image(2, 2))


def test_inputs_are_checked_and_pil_is_converted():
    a = smooth_image()
    rgba = Image.fromarray(a).convert("RGBA")
    assert ssim_pair(rgba, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sizes differ"):
        ssim_pair(a, smooth_image(16, 16))
    with pytest.raises(ValueError, match="same number"):
        integrity([a], [a, a])
    with pytest.raises(ValueError, match="uint8"):
        psnr_pair(a.astype(np.float32), a)


def test_metric_result_rules_and_json_safe():
    with pytest.raises(ValueError):
        MetricResult("x", value=None, available=True)
    with pytest.raises(ValueError):
        MetricResult("x", available=False)
    assert json_safe({"a": np.float32(1.5), "b": (float("-inf"), float("nan")), 3: np.arange(2)}) == {
        "a": 1.5, "b": ["-inf", "nan"], "3": [0, 1]
    }


# --- embedding distances --------------------------------------------------------------------

def test_frechet_distance_identical_and_shifted_sets():
    x = np.random.default_rng(0).standard_normal((200, 8))
    delta = np.arange(8) / 4.0
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    # Same samples shifted: equal covariances, so FD = ||mu_a - mu_b||^2 exactly.
    assert frechet_distance(x, x + delta) == pytest.approx(float(delta @ delta), rel=1e-6)
    assert frechet_distance(torch.tensor(x), torch.tensor(x + delta)) == pytest.approx(float(delta @ delta), rel=1e-6)


def test_frechet_distance_analytic_gaussians():
    # Diagonal covariances: FD = ||dmu||^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu_a, mu_b = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance_from_stats(mu_a, np.diag(a), mu_b, np.diag(b))
    assert got == pytest.approx(expected, abs=1e-5)
    # Large samples from those Gaussians approach the analytic value.
    rng = np.random.default_rng(1)
    xa = mu_a + rng.standard_normal((40000, 3)) * np.sqrt(a)
    xb = mu_b + rng.standard_normal((40000, 3)) * np.sqrt(b)
    assert frechet_distance(xa, xb) == pytest.approx(expected, rel=0.05)


def test_trace_sqrt_product_equals_scipy_sqrtm():
    from scipy import linalg

    from core.metrics.embedding import trace_sqrt_product

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 50, 6))
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.trace(linalg.sqrtm(ca @ cb)).real
    assert trace_sqrt_product(ca, cb) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_small_n_is_finite_and_validated():
    rng = np.random.default_rng(2)
    value = frechet_distance(rng.standard_normal((3, 16)), rng.standard_normal((4, 16)))  # N < D
    assert math.isfinite(value) and value >= 0
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(rng.standard_normal((1, 4)), rng.standard_normal((5, 4)))


def test_cosine_and_fd_with_a_plugged_embedding():
    def mean_colour(images):  # a toy EmbedFn: NxD
        return torch.tensor(np.stack([np.asarray(im, dtype=np.float64).mean((0, 1)) for im in images]))

    a = smooth_image()
    res = cosine_similarity(mean_colour, [a], [a, a[::-1], 255 - a])  # one reference vs many
    assert res.per_item[0] == pytest.approx(1.0) and res.per_item[1] == pytest.approx(1.0)
    assert res.per_item[2] < 1.0
    fd = embedding_frechet_distance(mean_colour, [a, 255 - a], [a, 255 - a], name="world_clip_fd")
    fd_other = embedding_frechet_distance(mean_colour, [a, 255 - a], [a, a[::-1]])
    # Identical sets give 0 up to round-off, which scales with the features (here ~1e2 per dim):
    # the square root of a rank-deficient covariance leaves ~1e-6 in squared units, so compare
    # against the distance to a set that differs.
    assert fd.name == "world_clip_fd" and fd_other.value > 100
    assert fd.value <= 1e-6 * fd_other.value


# --- weights that are not on this machine ----------------------------------------------------

def test_unavailable_metrics_name_the_missing_file(empty_caches):
    a = smooth_image()
    res = lpips([a], [a])
    assert not res.available and res.value is None and "alexnet-owt-7be5be79.pth" in res.reason
    assert "torchvision.models.alexnet" in res.reason
    res = fid([a, a], [a, a])
    assert not res.available and INCEPTION_FILE in res.reason
    res = sscd_similarity(a, [a])
    assert not res.available and "sscd_disc_mixup.torchscript.pt" in res.reason
    assert "sscd-copy-detection" in res.reason
    table = availability()
    assert table["ssim"] == (True, None) and table["psnr"] == (True, None)
    assert all(not table[k][0] and table[k][1] for k in ("lpips", "fid", "sscd"))
    json.dumps(res.to_dict(), allow_nan=False)


def test_lpips_backbone_file_names_match_torchvision():
    from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights

    urls = {"alex": AlexNet_Weights, "vgg": VGG16_Weights, "squeeze": SqueezeNet1_1_Weights}
    for net, enum in urls.items():
        assert enum.IMAGENET1K_V1.url.rsplit("/", 1)[1] == lpips_metric.BACKBONE_FILES[net]


def _write_fake_alexnet_features(torch_home, seed=0):
    from torchvision.models import alexnet

    torch.manual_seed(seed)
    state = {k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")}
    path = torch_home / "hub" / "checkpoints" / lpips_metric.BACKBONE_FILES["alex"]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def test_lpips_plumbing_with_stand_in_backbone(empty_caches):
    """Plumbing only: a random 'cached' AlexNet. Checks lookup, key mapping, upsampling."""
    _write_fake_alexnet_features(empty_caches / "torch")
    a = smooth_image()
    res = lpips([a, a], [a.copy(), 255 - a])
    assert res.available, res.reason
    assert res.per_item[0] == pytest.approx(0.0, abs=1e-6) and res.per_item[1] > 0
    assert res.details["upsampled_to_min_side"] == lpips_metric.MIN_SIDE


def test_lpips_refuses_a_pickle_that_runs_code(empty_caches):
    marker = empty_caches / "pwned"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    path = _write_fake_alexnet_features(empty_caches / "torch")
    torch.save({"features.0.weight": Payload()}, path)
    res = lpips([smooth_image()], [smooth_image()])
    assert not res.available and "not a plain tensor checkpoint" in res.reason
    assert not marker.exists()


@pytest.mark.slow
def test_fid_plumbing_with_stand_in_inception(empty_caches):
    """Plumbing only: torchmetrics' Inception with its initial (random) weights as the cached file."""
    pytest.importorskip("torch_fidelity")
    pytest.importorskip("torchmetrics")
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), mock.patch.object(
        fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None
    ):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = empty_caches / "torch" / "hub" / "checkpoints" / INCEPTION_FILE
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    imgs = [smooth_image(), 255 - smooth_image(), smooth_image()[::-1].copy()]
    res = fid(imgs, imgs)
    assert res.available, res.reason
    assert res.value == pytest.approx(0.0, abs=1e-3)


# --- SSCD plumbing with a tiny TorchScript stand-in ------------------------------------------

class _TinyDescriptor(torch.nn.Module):
    """SSCD-shaped stand-in: image batch -> 512-d (unnormalised) descriptors."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 512)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3))) * 3.0


@pytest.fixture
def fake_sscd(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / sscd_mod.SSCD_FILE
    with pytest.warns(FutureWarning):  # torch.jit.trace is deprecated but still how SSCD ships
        torch.jit.trace(_TinyDescriptor().eval(), torch.rand(1, 3, 64, 64)).save(str(path))
    return path


def test_sscd_plumbing_explicit_path_env_var_and_cache(fake_sscd, empty_caches, monkeypatch):
    """Plumbing only: the stand-in's similarities are not SSCD values."""
    a, b = smooth_image(), 255 - smooth_image()
    res = sscd_similarity(a, [a, b], path=fake_sscd)
    assert res.available, res.reason
    assert res.per_item[0] == pytest.approx(1.0, abs=1e-5)
    assert res.details["forgotten"][0] is False and res.details["threshold"] == 0.4
    emb = sscd_mod.SscdEmbedder(fake_sscd)([a, b])
    assert emb.shape == (2, 512) and torch.allclose(emb.norm(dim=1), torch.ones(2))
    monkeypatch.setenv(sscd_mod.ENV_VAR, str(fake_sscd))
    assert sscd_similarity([a, b], [a, b]).per_item == pytest.approx([1.0, 1.0], abs=1e-5)
    monkeypatch.delenv(sscd_mod.ENV_VAR)
    cached = sscd_mod.sscd_cache_dir() / sscd_mod.SSCD_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(fake_sscd.read_bytes())
    assert sscd_mod.find_sscd_model() == (cached, None)


def test_sscd_preprocessing_follows_the_readme():
    x = sscd_mod.preprocess(np.full((32, 48, 3), 124, np.uint8))  # 124/255 ~ ImageNet red mean
    assert tuple(x.shape) == (3, 288, 432)  # shorter side 288, aspect kept
    assert abs(float(x[0].mean())) < 0.02


def test_sscd_bad_locations_are_reported(empty_caches, monkeypatch, tmp_path):
    res = sscd_similarity(smooth_image(), [smooth_image()], path=tmp_path / "nope.pt")
    assert not res.available and "given explicitly" in res.reason
    monkeypatch.setenv(sscd_mod.ENV_VAR, str(tmp_path / "missing.pt"))
    assert "UNLEARN_SSCD_PATH" in sscd_similarity(smooth_image(), [smooth_image()]).reason
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torchscript archive")
    res = sscd_similarity(smooth_image(), [smooth_image()], path=junk)
    assert not res.available and "could not load" in res.reason
