"""Points on the sampler's own path as remember samples (UnlearnConfig.remember_path_share)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from core.unlearn.config import UnlearnConfig
from core.unlearn.methods import METHODS
from core.unlearn.objectives import Conditioning
from core.unlearn.remember_path import RememberPath, check_path_support, sampler_paths
from core.unlearn.trainer import ForgetData, RememberData, _sample_batch

from .test_method_math import F, R, TinyFlow, _reference_of, flow, make_batch, mse_each, noisy


@pytest.fixture
def ddpm_model(ddpm_dir):
    from core.models import load_model

    return load_model(str(ddpm_dir))


def test_ddim_records_the_point_of_each_step_and_samples_the_same(ddpm_model):
    from core.generate import initial_noise
    from core.models import ddpm

    noise = torch.cat([initial_noise(ddpm_model, s) for s in (3, 4)])
    path: list = []
    out = ddpm.sample(ddpm_model.pipe, noise, 4, path=path)
    assert torch.equal(out, ddpm.sample(ddpm_model.pipe, noise, 4))
    assert [t for t, _ in path] == [750, 500, 250, 0]  # DDIM's 4 "leading" steps of 1000
    assert torch.equal(path[0][1], noise) and not torch.equal(path[1][1], noise)


def test_sampler_paths_index_each_point_by_its_seed_row_and_noise_level(ddpm_model):
    from core.generate import initial_noise

    p = sampler_paths(ddpm_model, [3, 4, 9], steps=4, chunk=2)  # two chunks: rows count on across them
    assert p.x_t.shape == (12, 1, 16, 16)
    assert sorted(p.rows.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert sorted(set(p.s.tolist())) == pytest.approx([0.001, 0.251, 0.501, 0.751])
    start = (p.rows == 2) & (p.s == p.s.max())  # the first point of seed 9 is its noise
    assert torch.equal(p.x_t[start], initial_noise(ddpm_model, 9))


def _data(path: RememberPath | None):
    g = torch.Generator().manual_seed(0)
    cond = Conditioning(torch.zeros(6, 0, 0), torch.zeros(6, 0))
    forget = ForgetData(torch.randn(1, 1, 4, 4, generator=g), torch.randn(1, 1, 4, 4, generator=g),
                        Conditioning(torch.zeros(1, 0, 0), torch.zeros(1, 0)))
    return forget, RememberData(torch.randn(6, 1, 4, 4, generator=g), cond, path=path)


def _path(n: int = 5) -> RememberPath:
    g = torch.Generator().manual_seed(1)
    return RememberPath(torch.randn(n, 1, 4, 4, generator=g), torch.linspace(0.2, 1.0, n), torch.arange(n) % 6)


def test_a_share_of_the_remember_samples_are_points_on_the_path_and_share_0_draws_as_before():
    sigmas = torch.linspace(0.001, 1, 1000)
    cfg = UnlearnConfig(forget_batch_size=2, remember_batch_size=4)
    forget, plain = _data(None)
    _, with_path = _data(_path())
    a = _sample_batch(forget, plain, sigmas, cfg, torch.Generator().manual_seed(3), "cpu")
    b = _sample_batch(forget, with_path, sigmas, cfg, torch.Generator().manual_seed(3), "cpu")  # share 0
    assert b.on_path_r is None and torch.equal(a.x_r, b.x_r) and torch.equal(a.eps_r, b.eps_r)
    half = cfg.with_overrides(remember_path_share=0.5)
    gen = torch.Generator().manual_seed(3)
    c = _sample_batch(forget, with_path, sigmas, half, gen, "cpu")
    assert c.on_path_r.tolist() == [True, True, False, False]
    assert torch.equal(c.x_r[2:], a.x_r[2:]) and torch.equal(c.s_r[2:], a.s_r[2:])  # the rest as drawn
    replay = torch.Generator().manual_seed(3)
    _sample_batch(forget, plain, sigmas, cfg, replay, "cpu")  # the same draws, then the points' own
    points = torch.randint(0, 5, (2,), generator=replay)
    path = with_path.path
    assert torch.equal(c.x_t_r[:2], path.x_t[points]) and torch.equal(c.s_r[:2], path.s[points])
    assert torch.equal(c.x_r[:2], with_path.latents[path.rows[points]])  # each point's own row


def test_points_on_the_path_are_anchored_on_the_reference_and_the_rest_keep_their_target():
    b = make_batch(5)
    on = torch.tensor([True, False, True, False])
    g = torch.Generator().manual_seed(2)
    b = dataclasses.replace(b, on_path_r=on, x_t_r=torch.randn(b.x_r.shape, generator=g))
    model, ref = TinyFlow(0), TinyFlow(7)
    params = list(model.parameters())
    config = UnlearnConfig(method="neggrad", forget_batch_size=F, remember_batch_size=R, remember_path_share=0.5)
    out = METHODS["neggrad"](model, params, config, reference=_reference_of(model, ref)).step(b)
    x_t = torch.where(on.view(-1, 1, 1, 1), b.x_t_r, noisy(b.x_r, b.eps_r, b.s_r))
    before = flow(list(ref.parameters()), x_t, b.s_r, b.cond_r.pooled, b.cond_r.prompt_embeds).detach()
    target = torch.where(on.view(-1, 1, 1, 1), before, b.eps_r - b.x_r)  # remember_target "noise" off the path
    want = mse_each(flow(params, x_t, b.s_r, b.cond_r.pooled, b.cond_r.prompt_embeds), target).mean()
    assert out.loss_r == pytest.approx(want.item(), rel=1e-6)
    with pytest.raises(ValueError, match="remember_path_share"):  # nothing to anchor the points on
        METHODS["neggrad"](model, params, config)


def test_remember_path_share_refuses_siss_and_conditional_models_naming_the_field():
    with pytest.raises(ValueError, match="remember_path_share.*SISS"):
        UnlearnConfig(method="siss", remember_path_share=0.5)
    with pytest.raises(ValueError, match=r"remember_path_share=1\.5"):
        UnlearnConfig(remember_path_share=1.5)
    with pytest.raises(ValueError, match="remember_path_share.*unconditional"):
        check_path_support(SimpleNamespace(unconditional=False), 0.5)
    check_path_support(SimpleNamespace(unconditional=False), 0.0)  # off: any model


def test_a_ddpm_fix_with_points_on_the_path_runs_and_records_the_share(ddpm_model, tmp_path):
    from core.generate import generate
    from core.studio import Studio

    studio = Studio(ddpm_model, data_dir=tmp_path, restore=False, persist_state=False)
    flagged = generate(ddpm_model, "", [5], steps=4)[0].image
    cfg = studio.default_config(steps=3, remember_set_size=4, sampling_steps=4, monitor_every=0,
                                remember_target="model", remember_path_share=0.5)
    result = studio.unlearn("", flagged, flagged.transpose(0), 5, cfg, {"kind": "flip"})
    assert result.train.steps_done == 3 and result.train.reports[0].L_r == 0.0  # the LoRA starts at zero
    assert result.train.reports[-1].L_r > 0
    assert json.loads((result.run.path / "config.json").read_text())["config"]["remember_path_share"] == 0.5
