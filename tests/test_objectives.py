"""The forget target of the paper in rectified-flow form."""

import torch

from core.unlearn import objectives as obj


def _latents(seed=0, shape=(3, 4, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(3)]


def test_surrogate_target_equals_ordinary_target_when_surrogate_is_flagged_image():
    x_f, _, eps = _latents()
    s = torch.tensor([0.1, 0.5, 0.9])
    x_t = obj.noisy(x_f, eps, s)
    torch.testing.assert_close(obj.surrogate_target(x_t, x_f, s), obj.ordinary_target(x_f, eps), rtol=1e-5, atol=1e-5)


def test_surrogate_target_points_the_one_step_estimate_at_the_surrogate():
    # x0_hat = x_t - s * v: the ordinary target recovers x_f, the surrogate target recovers x_s.
    x_f, x_s, eps = _latents(1)
    s = torch.tensor([0.2, 0.6, 0.95])
    x_t = obj.noisy(x_f, eps, s)
    sb = obj.broadcast(s, x_t)
    torch.testing.assert_close(x_t - sb * obj.surrogate_target(x_t, x_s, s), x_s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_t - sb * obj.ordinary_target(x_f, eps), x_f, rtol=1e-5, atol=1e-5)


def test_surrogate_target_matches_paper_eps_form():
    # v_s = eps_s - x_s with eps_s = (x_t - (1 - s) x_s) / s (unlearning-methods.md)
    x_f, x_s, eps = _latents(2)
    s = torch.tensor([0.3, 0.5, 0.7])
    x_t = obj.noisy(x_f, eps, s)
    sb = obj.broadcast(s, x_t)
    eps_s = (x_t - (1 - sb) * x_s) / sb
    torch.testing.assert_close(obj.surrogate_target(x_t, x_s, s), eps_s - x_s, rtol=1e-5, atol=1e-5)
