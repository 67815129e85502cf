"""Gradient surgery and the timestep-aware lambda."""

import pytest
import torch

from core.unlearn import surgery
from core.unlearn.config import UnlearnConfig
from core.unlearn.weighting import lambda_weight, sample_sigmas


def _pair(conflict: bool):
    g_r = [torch.tensor([1.0, 0.0]), torch.tensor([[0.5]])]
    g_f = [torch.tensor([-1.0, 1.0]), torch.tensor([[-0.5]])] if conflict else [torch.tensor([1.0, 1.0]), torch.tensor([[0.2]])]
    return g_f, g_r


def test_forget_projection_removes_the_conflict():
    g_f, g_r = _pair(conflict=True)
    assert surgery.dot(g_f, g_r) < 0
    res = surgery.project(g_f, g_r, "forget")
    assert res.projected and res.cos < 0
    assert float(surgery.dot(res.g_f, g_r)) == pytest.approx(0.0, abs=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(res.g_r, g_r))  # remember gradient untouched


def test_no_conflict_leaves_gradients_unchanged():
    g_f, g_r = _pair(conflict=False)
    for mode in ("forget", "pcgrad"):
        res = surgery.project(g_f, g_r, mode)
        assert not res.projected
        assert all(torch.equal(a, b) for a, b in zip(res.g_f, g_f))


def test_off_mode_never_projects():
    g_f, g_r = _pair(conflict=True)
    res = surgery.project(g_f, g_r, "off")
    assert not res.projected and all(torch.equal(a, b) for a, b in zip(res.g_f, g_f))


def test_pcgrad_projects_both_and_differs_from_forget_only():
    g_f, g_r = _pair(conflict=True)
    one, both = surgery.project(g_f, g_r, "forget"), surgery.project(g_f, g_r, "pcgrad")
    assert float(surgery.dot(both.g_r, g_f)) == pytest.approx(0.0, abs=1e-6)
    assert not all(torch.allclose(a, b) for a, b in zip(one.combined(), both.combined()))


def test_timestep_lambda_rises_with_noise_and_constant_is_flat():
    s = torch.linspace(0, 1, 11)
    lam = lambda_weight(s, UnlearnConfig(lambda_exponent=2.0))
    assert lam[0] == 0 and lam[-1] == 1 and torch.all(lam[1:] > lam[:-1])
    torch.testing.assert_close(lam, s**2)
    flat = lambda_weight(s, UnlearnConfig(lambda_scheme="constant", lambda_constant=0.3))
    assert torch.all(flat == 0.3)


def test_sigma_sampling_is_seeded_and_in_range():
    table = torch.linspace(1, 0, 1001)
    cfg = UnlearnConfig()
    a = sample_sigmas(64, table, cfg, torch.Generator().manual_seed(3))
    b = sample_sigmas(64, table, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() > 0 and a.max() <= 1
    # logit-normal concentrates around the middle; uniform spreads out
    u = sample_sigmas(4000, table, UnlearnConfig(timestep_sampling="uniform"), torch.Generator().manual_seed(0))
    ln = sample_sigmas(4000, table, cfg, torch.Generator().manual_seed(0))
    assert ln.std() < u.std()


@pytest.mark.parametrize("field,value", [("method", "magic"), ("steps", 0), ("surgery", "both"),
                                         ("learning_rate", -1.0), ("lambda_scheme", "cosine"), ("siss_lambda", 1.0)])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        UnlearnConfig(**{field: value})


def test_config_round_trips_and_refuses_unknown_keys():
    cfg = UnlearnConfig(steps=7, surgery="pcgrad", remember_prompts=["a"])
    assert UnlearnConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        UnlearnConfig.from_dict({**cfg.to_dict(), "stepz": 3})
