"""The unconditional DDPM path: loading a diffusers folder, seeded generation, epsilon-form losses
(checked against the paper's and SISS's formulas), LoRA fixes on a UNet, and the CLI without a prompt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


FIXED_SLICE = [28, 255, 0, 231, 194, 4]  # row 0, first 6 pixels, red channel: seed 3, 4 DDIM steps


@pytest.fixture
def ddpm_model(ddpm_dir):
    from core.models import load_model

    return load_model(str(ddpm_dir))


def test_folder_loads_as_unconditional_ddpm(ddpm_model, ddpm_dir):
    assert (ddpm_dir / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert json.loads((ddpm_dir / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    assert ddpm_model.unconditional and ddpm_model.denoiser is ddpm_model.pipe.unet
    assert ddpm_model.info.resolution == 16
    assert not any(p.requires_grad for p in ddpm_model.denoiser.parameters())
    assert len(ddpm_model.fingerprint()) == 16


def test_the_loaded_unet_answers_its_dtype_without_walking_its_modules_and_saves_as_diffusers_own(ddpm_model, tmp_path):
    from diffusers import UNet2DModel

    unet = ddpm_model.pipe.unet
    assert isinstance(unet, UNet2DModel) and unet.dtype == next(unet.parameters()).dtype == torch.float32
    unet.half()
    assert unet.dtype == torch.float16  # read from the weights, not cached
    unet.float()
    ddpm_model.pipe.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DModel"]


def test_generation_is_seeded_and_prompt_free(ddpm_model):
    from core.generate import generate

    a = generate(ddpm_model, "", [3, 4], steps=4)
    b = generate(ddpm_model, "", [4], steps=4)
    assert a[0].image.size == (16, 16) and a[0].latent.shape == (1, 1, 16, 16)
    assert np.array_equal(np.asarray(a[1].image), np.asarray(b[0].image))  # same seed, other batch
    assert not np.array_equal(np.asarray(a[0].image), np.asarray(a[1].image))
    with pytest.raises(ValueError, match="unconditional"):
        generate(ddpm_model, "a face", [0], steps=2)
    # A fixed slice: the tiny seeded UNet's seed-3 output (catches silent sampler changes).
    assert np.asarray(a[0].image)[0, :6, 0].tolist() == FIXED_SLICE


def test_eps_form_matches_ddpm_scheduler_and_reduces_to_eps():
    from diffusers import DDPMScheduler

    from core.unlearn.forms import EpsForm

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    form = EpsForm(sched.alphas_cumprod)
    g = torch.Generator().manual_seed(0)
    x_f, x_s, eps = (torch.randn(3, 1, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([0, 499, 999])
    s = form.timestep_table()[t]
    assert torch.equal(form.timesteps(s), t)
    x_t = form.noisy(x_f, eps, s)
    torch.testing.assert_close(x_t, sched.add_noise(x_f, eps, t), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(form.surrogate_target(x_t, x_f, s), eps, rtol=1e-4, atol=1e-4)
    abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    expected = eps + (abar / (1 - abar)).sqrt() * (x_f - x_s)  # eps_s = eps + (gamma/sigma)(x_f - x_s)
    torch.testing.assert_close(form.surrogate_target(x_t, x_s, s), expected, rtol=1e-4, atol=1e-3)


class _TinyEpsNet(torch.nn.Module):
    """A conv "UNet" with the UNet2DModel call signature, for exact gradient checks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.dtype = torch.float32

    def forward(self, x, t):
        return type("Out", (), {"sample": self.conv(x) * (1 + t.view(-1, 1, 1, 1).float() / 1000)})()


def _batch(form, n=4, seed=1):
    from core.unlearn.forms import null_conditioning
    from core.unlearn.methods import Batch

    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.randn(n, 1, 6, 6, generator=g)  # noqa: E731
    table = form.timestep_table()
    s = table[torch.tensor([10, 300, 600, 990])[:n]]
    x_f = r()[:1].expand(n, -1, -1, -1)
    return Batch(x_f=x_f, x_s=r()[:1].expand(n, -1, -1, -1), cond_f=null_conditioning(n), eps_f=r(), s_f=s,
                 x_r=r(), cond_r=null_conditioning(n), eps_r=r(), s_r=s.flip(0), uniform_f=torch.rand(n, 1, 6, 6, generator=g),
                 mix_from_forget=torch.tensor([True, False, True, False])[:n])


def test_siss_matches_the_public_formula():
    """SISS recomputed as claserken/SISS computes it for a DDPM (losses/ddpm_deletion_loss.py,
    importance_sampling_with_mixture, and the training loop's `weighted_loss.sum() / batch_size`):
    m = gamma src + sigma eps, eps_x = (m - gamma x)/sigma, eps_a = (m - gamma a)/sigma,
    d = sum (m - gamma x0)^2 / (2 sigma^2), w_x = 1/((1-l) + l e^(d_x - d_a)), w_a = 1/((1-l) e^(d_a - d_x) + l),
    losses summed over elements, then g = g_x - (scaling_norm / ||g_a||) g_a."""
    from diffusers import DDPMScheduler

    from core.unlearn.config import UnlearnConfig
    from core.unlearn.forms import EpsForm
    from core.unlearn.methods import SISSMethod

    form = EpsForm(DDPMScheduler(num_train_timesteps=1000).alphas_cumprod)
    net, b = _TinyEpsNet(), _batch(form)
    params = list(net.parameters())
    cfg = UnlearnConfig(method="siss", siss_lambda=0.5, siss_scaling_norm=3.0)
    out = SISSMethod(net, params, cfg, form).step(b)

    lam, x, a = 0.5, b.x_r, b.x_f[:1].expand_as(b.x_r)
    t = form.timesteps(b.s_r)
    abar = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod[t].double().view(-1, 1, 1, 1)
    gamma, sigma = abar.sqrt().float(), (1 - abar).sqrt().float()
    m = torch.where(b.mix_from_forget.view(-1, 1, 1, 1), gamma * a + sigma * b.eps_r, gamma * x + sigma * b.eps_r)
    eps_x, eps_a = (m - gamma * x) / sigma, (m - gamma * a) / sigma
    d_x = ((m - gamma * x) ** 2).flatten(1).sum(1).double() / (2 * sigma.flatten().double() ** 2)
    d_a = ((m - gamma * a) ** 2).flatten(1).sum(1).double() / (2 * sigma.flatten().double() ** 2)
    w_x = (1 / ((1 - lam) + lam * torch.exp(d_x - d_a))).float()
    w_a = (1 / ((1 - lam) * torch.exp(d_a - d_x) + lam)).float()
    pred = net(m, t).sample
    n = x.shape[0]
    weighted_x = w_x[:, None, None, None] * (pred - eps_x) ** 2
    weighted_a = w_a[:, None, None, None] * (pred - eps_a) ** 2
    g_x = torch.autograd.grad(weighted_x.sum() / n, params, retain_graph=True)
    g_a = torch.autograd.grad(weighted_a.sum() / n, params)
    na = torch.sqrt(sum((g ** 2).sum() for g in g_a))
    expected = [gx - 3.0 / na * ga for gx, ga in zip(g_x, g_a)]
    for got, want in zip(out.grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # Logged per element, like the other methods' losses.
    assert out.loss_f == pytest.approx(float(weighted_a.detach().sum() / n / x[0].numel()), rel=1e-4)


def test_surrogate_method_with_identical_surrogate_is_the_training_loss():
    """x_s = x_f: the forget loss is the ordinary eps loss (lambda-weighted), so it only remembers."""
    from diffusers import DDPMScheduler

    from core.unlearn.config import UnlearnConfig
    from core.unlearn.forms import EpsForm
    from core.unlearn.methods import SurrogateMethod
    from core.unlearn.weighting import lambda_weight

    form = EpsForm(DDPMScheduler(num_train_timesteps=1000).alphas_cumprod)
    net, b = _TinyEpsNet(), _batch(form)
    b.x_s = b.x_f
    cfg = UnlearnConfig(surgery="off")
    out = SurrogateMethod(net, list(net.parameters()), cfg, form).step(b)
    x_t = form.noisy(b.x_f, b.eps_f, b.s_f)
    per = ((net(x_t, form.timesteps(b.s_f)).sample - b.eps_f) ** 2).flatten(1).mean(1)
    assert out.loss_f == pytest.approx(float((per * lambda_weight(b.s_f, cfg)).mean()), rel=1e-5)


def test_forget_snr_gamma_weights_each_forget_sample_by_min_snr_over_snr():
    """Min-SNR: the eps-form forget loss times min(SNR, gamma)/SNR, per sample; the remember loss as before.
    A gamma above every SNR of the batch changes nothing."""
    from diffusers import DDPMScheduler

    from core.unlearn.config import UnlearnConfig
    from core.unlearn.forms import EpsForm
    from core.unlearn.methods import SurrogateMethod
    from core.unlearn.weighting import lambda_weight

    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    form = EpsForm(sched.alphas_cumprod)
    net, b = _TinyEpsNet(), _batch(form)
    plain = SurrogateMethod(net, list(net.parameters()), UnlearnConfig(surgery="off"), form).step(b)
    cfg = UnlearnConfig(surgery="off", forget_snr_gamma=5.0)
    out = SurrogateMethod(net, list(net.parameters()), cfg, form).step(b)
    t = form.timesteps(b.s_f)
    snr = (sched.alphas_cumprod[t] / (1 - sched.alphas_cumprod[t])).double()
    assert snr[0] > 5 > snr[-1]  # the batch has samples on both sides of gamma
    weight = (snr.clamp(max=5.0) / snr).float()
    x_t = form.noisy(b.x_f, b.eps_f, b.s_f)
    per = ((net(x_t, t).sample - form.surrogate_target(x_t, b.x_s, b.s_f)) ** 2).flatten(1).mean(1)
    assert out.loss_f == pytest.approx(float((per * lambda_weight(b.s_f, cfg) * weight).mean()), rel=1e-5)
    assert out.loss_f < plain.loss_f and out.loss_r == pytest.approx(plain.loss_r)
    assert out.lam == pytest.approx(plain.lam)  # the logged lambda stays the timestep weight alone
    # The low-noise sample's eps-form error is SNR times its x0 error; weighted, it counts gamma times the x0 error.
    assert float(weight[0] * snr[0]) == pytest.approx(5.0, rel=1e-5)
    above = UnlearnConfig(surgery="off", forget_snr_gamma=float(snr.max()) * 2)
    same = SurrogateMethod(net, list(net.parameters()), above, form).step(b)
    assert same.loss_f == pytest.approx(plain.loss_f, rel=1e-6)


def test_forget_snr_gamma_goes_with_every_method_and_is_refused_for_flow_models(tiny_model, tmp_path):
    from core.models import load_model
    from core.unlearn.config import METHODS, UnlearnConfig

    # The faces world's defaults carry it; every method can still be picked over them (only ours reads it).
    faces = load_model("faces").info.unlearn_defaults
    assert faces["forget_snr_gamma"] == 5.0
    for method in METHODS:
        assert UnlearnConfig().with_overrides(**faces).with_overrides(method=method).method == method
    with pytest.raises(ValueError, match="forget_snr_gamma=-1"):
        UnlearnConfig(forget_snr_gamma=-1)
    # A flow model (SD3): refused before any work, the run store left empty.
    from PIL import Image

    from core.studio import Studio

    studio = Studio(tiny_model, data_dir=tmp_path, restore=False, persist_state=False)
    res = tiny_model.info.resolution
    flagged, surrogate = Image.new("RGB", (res, res), "red"), Image.new("RGB", (res, res), "blue")
    with pytest.raises(ValueError, match="forget_snr_gamma=5.0.*flow model.*set forget_snr_gamma 0"):
        studio.unlearn("a flag", flagged, surrogate, 3, studio.default_config(forget_snr_gamma=5.0))
    assert studio.store.list() == []


@pytest.mark.parametrize("method", ["surrogate", "neggrad", "erasediff", "siss"])
def test_unlearn_a_seed_on_a_ddpm_saves_a_reloadable_fix(ddpm_model, tmp_path, method):
    from core.generate import generate
    from core.studio import Studio

    studio = Studio(ddpm_model, data_dir=tmp_path, restore=False, persist_state=False)
    flagged = generate(ddpm_model, "", [5], steps=4)[0].image
    surrogate = flagged.transpose(0)  # a left-right flip as the surrogate
    cfg = studio.default_config(method=method, steps=3, remember_set_size=4, sampling_steps=4, monitor_every=0)
    result = studio.unlearn("", flagged, surrogate, 5, cfg, {"kind": "flip"})
    assert result.train.steps_done == 3
    lora = result.run.path / "pytorch_lora_weights.safetensors"
    assert lora.exists() and json.loads((result.run.path / "config.json").read_text())["seed"] == 5
    from core.images import load_image

    after = load_image(result.run.path / "after.png")  # the fix's render (the studio may switch an unfixed fix off)
    assert not np.array_equal(np.asarray(after), np.asarray(flagged))
    with studio.fixes.disabled():
        base = generate(ddpm_model, "", [5], steps=4)[0].image
    assert np.array_equal(np.asarray(base), np.asarray(flagged))  # base weights untouched
    if method == "surrogate":  # the relapse probe of a prompt-free fix: seeds and steps, no guidance
        report = studio.relapse("", 5, [result.run.run_id], range(4), flagged=flagged, surrogate=surrogate)
        assert "guidance" not in report["kinds"] and "steps" in report["kinds"]

    from core.models import load_model

    other = Studio(load_model(str(ddpm_model.location)), data_dir=tmp_path / "b", restore=False, persist_state=False)
    other.load_runs([result.run.path])
    again = generate(other.model, "", [5], steps=4)[0].image
    assert np.abs(np.asarray(again, dtype=int) - np.asarray(after, dtype=int)).max() <= 1


def test_a_stacked_ddpm_fix_draws_its_remember_set_from_the_base_model(ddpm_model, tmp_path):
    """remember_from="base" on a prompt-free model (the faces default): the second fix's remember set is the
    base model's outputs, found in the store the first fix filled, and the first fix stays on."""
    from core.generate import generate
    from core.studio import Studio

    studio = Studio(ddpm_model, data_dir=tmp_path, restore=False, persist_state=False)
    cfg = studio.default_config(steps=2, remember_set_size=4, sampling_steps=4, monitor_every=0, remember_from="base")
    runs = []
    for seed in (5, 6):
        flagged = generate(ddpm_model, "", [seed], steps=4)[0].image
        runs.append(studio.unlearn("", flagged, flagged.transpose(0), seed, cfg, {"kind": "flip"}).run)
        studio.set_enabled(runs[-1].run_id, True)  # (a fix the judge saw unfixed starts off)
    first, second = (r.metrics() for r in runs)
    assert "remember_drawn_from" not in first and second["remember_drawn_from"] == "base"
    # The base outputs drawn for the first fix are reused (drawn with the first fix on, none would be).
    assert second["remember_reused"] > 0
    assert all(studio.fixes.fixes[r.run_id].enabled for r in runs)


def test_ddpm_sdedit_surrogate_keeps_the_image_at_low_strength(ddpm_model):
    from core.generate import generate
    from core.surrogates import make_surrogate

    img = generate(ddpm_model, "", [2], steps=10)[0].image
    low = make_surrogate("sdedit", img, ddpm_model, {"strength": 0.1, "seed": 0, "steps": 10})
    high = make_surrogate("sdedit", img, ddpm_model, {"strength": 1.0, "seed": 0, "steps": 10})
    assert low.info["prompt"] == "" and low.info["kind"] == "sdedit"
    d = lambda a: np.abs(np.asarray(a.image, dtype=float) - np.asarray(img, dtype=float)).mean()  # noqa: E731
    assert d(low) < d(high)


def test_cli_generate_without_prompt_and_refuses_one(ddpm_dir, tmp_path, capsys):
    from core.cli import main

    assert main(["generate", "--model", str(ddpm_dir), "--seeds", "0-1", "--steps", "2", "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "seed-0001.png").exists()
    assert main(["generate", "--model", str(ddpm_dir), "--prompt", "a face", "--out", str(tmp_path / "h")]) == 1
    assert "unconditional" in capsys.readouterr().err


def test_cli_surrogate_suggests_another_seed_and_names_clashing_flags(ddpm_dir, tmp_path, capsys, monkeypatch):
    """`surrogate --kind other_seed --suggest SEEDS`: the studio's 'Suggest a seed' from the command line."""
    from core.cli import main

    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "no-sscd.pt"))
    m = ["--model", str(ddpm_dir)]
    assert main(["generate", "--seeds", "3", "--steps", "2", "--out", str(tmp_path / "g"), *m]) == 0
    capsys.readouterr()
    flagged = str(tmp_path / "g" / "seed-0003.png")
    assert main(["surrogate", "--image", flagged, "--kind", "other_seed", "--suggest", "40-55", "--steps", "2",
                 "--out", str(tmp_path / "s.png"), *m]) == 0
    out, err = capsys.readouterr()
    info = json.loads(out)
    assert 40 <= info["seed"] <= 55 and info["suggested_from"] == "40-55"
    assert f"seed {info['seed']}: the most ordinary of the" in err
    for extra, words in ((["--seed", "41"], "drop --seed"), (["--suggest", "1,5"], "one run of seeds")):
        argv = ["surrogate", "--image", flagged, "--kind", "other_seed", "--suggest", "40-55", *extra,
                "--out", str(tmp_path / "t.png"), *m]
        assert main(argv) == 1 and words in capsys.readouterr().err
    assert main(["surrogate", "--image", flagged, "--kind", "flip", "--suggest", "40-55", "--out",
                 str(tmp_path / "u.png"), *m]) == 1
    assert "it is for other_seed" in capsys.readouterr().err and not (tmp_path / "t.png").exists()


def test_lora_targets_choose_the_modules_a_fix_adapts_and_the_saved_fix_reloads(ddpm_model, tmp_path):
    """UnlearnConfig.lora_targets: attention only on a UNet; the file holds only those modules and
    loads again in a fresh studio (its LoRA config travels in the file); the config records them."""
    from safetensors import safe_open

    from core.generate import generate
    from core.models import load_model
    from core.studio import Studio

    studio = Studio(ddpm_model, data_dir=tmp_path, restore=False, persist_state=False)
    flagged = generate(ddpm_model, "", [5], steps=4)[0].image
    attention = ["to_q", "to_k", "to_v", "to_out.0"]
    cfg = studio.default_config(steps=3, remember_set_size=4, sampling_steps=4, monitor_every=0, lora_targets=attention)
    result = studio.unlearn("", flagged, flagged.transpose(0), 5, cfg, {"kind": "flip"})
    with safe_open(str(result.run.path / "pytorch_lora_weights.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(any(f".{t}.lora_" in k for t in attention) for k in keys), keys[:4]
    assert not any("conv1" in k or "conv2" in k for k in keys)
    assert json.loads((result.run.path / "config.json").read_text())["config"]["lora_targets"] == attention
    # a whole module path (the faces world's decoder attention) adapts that module alone; a name that
    # matches no module is refused naming the field, and the model keeps no trace of the try
    decoder = studio.default_config(steps=2, remember_set_size=4, sampling_steps=4, monitor_every=0,
                                    lora_targets=["up_blocks.0.attentions.0.to_q"])
    only = studio.unlearn("", flagged, flagged.transpose(0), 6, decoder, {"kind": "flip"})
    with safe_open(str(only.run.path / "pytorch_lora_weights.safetensors"), framework="pt") as f:
        assert {k.split(".lora_")[0] for k in f.keys()} == {"unet.up_blocks.0.attentions.0.to_q"}
    typo = studio.default_config(steps=2, remember_set_size=4, sampling_steps=4, monitor_every=0,
                                 lora_targets=["up_blocks.9.to_q"])
    fixes_before = studio.list_fixes()
    with pytest.raises(ValueError, match="lora_targets: 'up_blocks.9.to_q' names no module of this model"):
        studio.unlearn("", flagged, flagged.transpose(0), 7, typo, {"kind": "flip"})
    assert studio.list_fixes() == fixes_before
    from core.images import load_image

    after = load_image(result.run.path / "after.png")
    other = Studio(load_model(str(ddpm_model.location)), data_dir=tmp_path / "b", restore=False, persist_state=False)
    other.load_runs([result.run.path])
    again = generate(other.model, "", [5], steps=4)[0].image
    assert np.abs(np.asarray(again, dtype=int) - np.asarray(after, dtype=int)).max() <= 1
