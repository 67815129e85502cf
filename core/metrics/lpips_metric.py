"""LPIPS perceptual distance between before/after outputs of the same seeds (lower = closer).

Uses the `lpips` package (Zhang et al. 2018). LPIPS = an ImageNet backbone from torchvision
(AlexNet by default) + small linear heads. The package ships the linear heads; the backbone
weights are a torchvision download. We never let that download happen from here, and we never
compute LPIPS on a randomly initialised backbone (the number would look plausible and mean
nothing). So:

1. look for the backbone file in the torch hub cache (`weights_cache`); absent -> unavailable,
   with the file name and the one-liner that fetches it;
2. build `lpips.LPIPS(pnet_rand=True)` (random backbone, no download; linear heads from the
   package), then load the cached backbone with `weights_only=True` into it, checking that every
   backbone tensor was replaced.

Tiny images: the backbones downsample aggressively (AlexNet's first layer has stride 4), and
LPIPS was calibrated on 64x64 patches, so images whose shorter side is below 64 px (e.g. the
32x32 world) are bilinearly upsampled to a 64 px shorter side first. Values on upsampled images
are comparable with each other, not with published LPIPS numbers at full resolution.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from core.metrics import weights_cache
from core.metrics.images import ImageLike, check_pairs, to_float_batch
from core.metrics.result import MetricResult

# torchvision's ImageNet weights for each LPIPS backbone (file name = basename of the weights URL;
# tests check these against torchvision's enums).
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
_TORCHVISION_BUILDERS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
MIN_SIDE = 64
BATCH = 16


def how_to_get(net: str) -> str:
    builder = _TORCHVISION_BUILDERS[net]
    return f"python -c 'import torchvision; torchvision.models.{builder}(weights=\"DEFAULT\")'"


def lpips_status(net: str = "alex") -> tuple[bool, str | None]:
    """(available, reason) without building anything: is the package there, is the file cached?"""
    if net not in BACKBONE_FILES:
        raise ValueError(f"net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    try:
        import lpips  # noqa: F401
    except ImportError:
        return False, "the 'lpips' package is not installed (pip install lpips)"
    if weights_cache.find_hub_checkpoint(BACKBONE_FILES[net]) is None:
        reason = weights_cache.missing_file_reason(BACKBONE_FILES[net], how_to_get(net))
        return False, f"LPIPS (net={net}) needs torchvision's ImageNet backbone: {reason}"
    return True, None


@functools.lru_cache(maxsize=2)
def _build_model(path: Path, mtime_ns: int, net: str, device: str):
    """LPIPS with the cached backbone loaded; raises ValueError if the file is bad. Cached per
    file version and device because building costs ~0.5 s and the GUI scores often."""
    import lpips

    backbone = weights_cache.load_state_dict_safely(path)
    with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" from inside lpips
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    # lpips keeps torchvision's `features` modules in slices: "slice2.3.weight" is "features.3.weight".
    target = model.net.state_dict()
    remapped = {}
    for key, tensor in target.items():
        source = "features." + key.split(".", 1)[1]
        if source not in backbone or backbone[source].shape != tensor.shape:
            raise ValueError(f"{path}: no tensor {source} of shape {tuple(tensor.shape)}; wrong file?")
        remapped[key] = backbone[source]
    model.net.load_state_dict(remapped, strict=True)
    return model.eval().to(device)


def _upsample_small(batch):
    """Bilinear upsampling so the shorter side is at least MIN_SIDE (see module docstring)."""
    import torch.nn.functional as F

    h, w = batch.shape[-2:]
    if min(h, w) >= MIN_SIDE:
        return batch
    scale = MIN_SIDE / min(h, w)
    size = (max(MIN_SIDE, round(h * scale)), max(MIN_SIDE, round(w * scale)))
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False)


def lpips_distances(pairs, net: str = "alex", device: str = "cpu") -> list[float]:
    """Per-pair LPIPS for already checked pairs (HxWx3 uint8 arrays); raises ValueError if the
    backbone is missing or bad. Pairs of equal size are scored in batches of BATCH."""
    import torch

    path = weights_cache.find_hub_checkpoint(BACKBONE_FILES[net])
    if path is None:
        raise ValueError(lpips_status(net)[1])
    model = _build_model(path, path.stat().st_mtime_ns, net, str(device))
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            groups = [chunk] if len({a.shape for a, _ in chunk}) == 1 else [[p] for p in chunk]
            for group in groups:
                a = _upsample_small(to_float_batch([p[0] for p in group])).to(device)
                b = _upsample_small(to_float_batch([p[1] for p in group])).to(device)
                d = model(a, b, normalize=True)  # normalize: inputs in [0, 1] -> [-1, 1]
                out.extend(float(v) for v in d.flatten().cpu())
    return out


def lpips(
    before: Sequence[ImageLike], after: Sequence[ImageLike], net: str = "alex", device: str = "cpu"
) -> MetricResult:
    """Mean LPIPS over same-seed pairs, or an unavailable result saying which file is missing."""
    pairs = check_pairs(before, after)
    ok, reason = lpips_status(net)
    if not ok:
        return MetricResult.unavailable("lpips", reason, net=net)
    try:
        values = lpips_distances(pairs, net=net, device=device)
    except ValueError as exc:
        return MetricResult.unavailable("lpips", str(exc), net=net)
    upsampled = any(min(a.shape[:2]) < MIN_SIDE for a, _ in pairs)
    return MetricResult(
        name="lpips",
        value=float(np.mean(values)),
        per_item=values,
        details={"net": net, "upsampled_to_min_side": MIN_SIDE if upsampled else None},
    )
