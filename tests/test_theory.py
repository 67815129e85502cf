"""Ridge regression theory (core/theory.py): rank-1 updates equal direct solves, and a close
surrogate row moves the solution less than deleting the row (paper Corollary 3, as stated there)."""

from __future__ import annotations

import numpy as np
import pytest

from core import theory as T

SEEDS = range(20)


def _fit(seed, n=30, d=6, alpha=0.7):
    X, y = T.random_problem(n=n, d=d, seed=seed)
    return T.ridge_fit(X, y, alpha)


@pytest.mark.parametrize("seed", SEEDS)
def test_sherman_morrison_updates_equal_direct_solves(seed):
    fit = _fit(seed)
    rng = np.random.default_rng(100 + seed)
    i = int(rng.integers(len(fit.y)))
    x_s, y_s = fit.X[i] + 0.3 * rng.standard_normal(fit.X.shape[1]), float(rng.standard_normal())
    keep = np.arange(len(fit.y)) != i
    w_del, A_inv_del = T.delete_row(fit, i)
    np.testing.assert_allclose(w_del, T.ridge_solve(fit.X[keep], fit.y[keep], fit.alpha), rtol=1e-9, atol=1e-11)
    X_s, y_s_vec = fit.X.copy(), fit.y.copy()
    X_s[i], y_s_vec[i] = x_s, y_s
    w_sur, A_inv_sur = T.replace_row(fit, i, x_s, y_s)
    np.testing.assert_allclose(w_sur, T.ridge_solve(X_s, y_s_vec, fit.alpha), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(A_inv_sur, np.linalg.inv(X_s.T @ X_s + fit.alpha * np.eye(X_s.shape[1])), atol=1e-10)
    np.testing.assert_allclose(A_inv_del @ (fit.X[keep].T @ fit.X[keep] + fit.alpha * np.eye(6)), np.eye(6), atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_label_only_surrogate_ratio_is_exact(seed):
    """Result (2): ||w_sur - w|| / ||w_del - w|| = |y_s - y_i| / |e|, and t = 1 is deletion."""
    fit = _fit(seed)
    i = seed % len(fit.y)
    e = fit.loo_residual(i)
    for t in (0.1, 0.5, 0.99, 1.0, 1.5):
        c = T.compare_row_edit(fit, i, fit.X[i], T.label_towards_deletion(fit, i, t))
        assert c.shift_surrogate / c.shift_delete == pytest.approx(t, rel=1e-9)
        if t != 1.0:  # at t = 1 the shifts are equal up to round-off
            assert c.moves_less == (t < 1.0)
        # Forgetting at x_i: |y_i - pred| = |e| (1 - h + t h) > |r|.
        h = fit.leverage(i)
        assert abs(c.y - c.pred_surrogate) == pytest.approx(abs(e) * (1 - h + t * h), rel=1e-9)
        assert c.forgetting_surrogate > 0
    w_del, _ = T.delete_row(fit, i)
    w_t1, _ = T.replace_row(fit, i, fit.X[i], T.label_towards_deletion(fit, i, 1.0))
    np.testing.assert_allclose(w_t1, w_del, atol=1e-10)
    assert abs(e) == pytest.approx(abs(fit.y[i] - fit.X[i] @ w_del), rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_close_surrogate_rows_move_less_than_deletion(seed):
    """Result (3): small edits of input and label move w less than deletion, the bound holds, and
    the prediction at x_i moves away from y_i."""
    fit = _fit(seed)
    rng = np.random.default_rng(seed)
    i = int(np.argmax(np.abs([fit.loo_residual(k) for k in range(len(fit.y))])))  # e clearly != 0
    x = fit.X[i]
    for _ in range(5):
        u = rng.standard_normal(x.size)
        x_s = x + 0.02 * np.linalg.norm(x) * u / np.linalg.norm(u)
        c = T.compare_row_edit(fit, i, x_s, T.label_towards_deletion(fit, i, 0.5))
        assert c.shift_surrogate <= c.bound_surrogate * (1 + 1e-12)
        assert c.moves_less, (c.shift_surrogate, c.shift_delete)
        assert c.forgetting_surrogate > 0


def test_large_edits_can_move_more_than_deletion():
    """The inequality is local: a surrogate far from the row moves w more than deleting it."""
    fit = _fit(0)
    i = 0
    far = T.compare_row_edit(fit, i, fit.X[i] * 4.0, T.label_towards_deletion(fit, i, 3.0))
    assert not far.moves_less


def test_sweeps_have_expected_shapes_and_endpoints():
    fit = _fit(1)
    lab = T.label_edit_sweep(fit, 2, np.linspace(0, 2, 5))
    assert lab["shift_surrogate"][0] == pytest.approx(0.0, abs=1e-12)
    assert lab["shift_surrogate"][2] == pytest.approx(lab["shift_delete"][2], rel=1e-9)  # t = 1
    inp = T.input_edit_sweep(fit, 2, np.array([0.0, 0.1, 1.0]), t=0.5, n_dirs=4)
    assert inp["ratio"].shape == (3, 4)
    np.testing.assert_allclose(inp["ratio"][0], 0.5, rtol=1e-9)


def test_ridge_requires_positive_alpha():
    X, y = T.random_problem(n=5, d=2)
    with pytest.raises(ValueError, match="alpha"):
        T.ridge_fit(X, y, 0.0)
