"""Ridge regression check of the paper's theory: a surrogate row moves the solution less than
deleting the row (Lee et al. 2026, "Unlearning the Unpromptable", Corollary 3 / Fig. 4).

Why it matters for the method: the forget loss keeps the flagged input (x_t is noised from the
flagged image) and only changes the target (the noise that would explain x_t from the
surrogate). In ridge terms that is a row whose input stays and whose label is edited. The
claim is that such a surrogate row unlearns with less collateral change than deleting the row.

We could not check the paper's exact wording of Corollary 3. What this module states, proves
in the docstrings and tests numerically (tests/test_theory.py, bench/theory_ridge.py) is:

Setup. A = X^T X + alpha I (alpha > 0), w = A^{-1} X^T y. For row i: residual r = y_i - x_i^T w,
leverage h = x_i^T A^{-1} x_i (0 <= h < 1 because alpha > 0), and leave-one-out residual
e = r / (1 - h) = y_i - x_i^T w_del.

(1) Deletion (Sherman-Morrison, rank-1 downdate):  w_del - w = -A^{-1} x_i e.
(2) Label-only surrogate (x_s = x_i, y_s = y_i + d):  w_sur - w = A^{-1} x_i d  (A is unchanged).
    Both shifts lie on the line through w along A^{-1} x_i, so exactly
        ||w_sur - w|| / ||w_del - w|| = |d| / |e|,
    i.e. the surrogate moves the solution less than deletion  iff  |y_s - y_i| < |e|.
    Forgetting: with d = -t e (label moved towards what the model predicts without the row),
    |y_i - x_i^T w_sur| = |e| (1 - h + t h), which is > |r| for every t > 0 (the flagged row is
    fitted worse, monotonically in t) and equals deletion's |e| at t = 1, where w_sur = w_del.
    So 0 < t < 1 buys part of deletion's forgetting for a proportionally smaller parameter move.
(3) General surrogate row (x_s, y_s):  A_s (w_sur - w) = x_s r_s - x_i r  with r_s = y_s - x_s^T w
    and A_s = A - x_i x_i^T + x_s x_s^T >= alpha I. Hence
        ||w_sur - w|| <= ||x_s r_s - x_i r|| / lambda_min(A_s),
    and a sufficient condition for moving less than deletion is
        ||x_s r_s - x_i r|| / lambda_min(A_s) < |e| ||A^{-1} x_i||.
    The left side goes to 0 as (x_s, y_s) -> (x_i, y_i), so every close enough surrogate moves the
    solution less than deletion. It does NOT hold for arbitrary surrogates: large edits overshoot
    (the benchmark sweep shows where the curves cross).

Conditions: alpha > 0; e != 0 (a row the model already fits exactly is not moved by deletion
either, and then there is nothing to compare). Everything is exact linear algebra, no sampling.
Shapes: X (n, d), y (n,), w (d,), A_inv (d, d).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RidgeFit:
    """A ridge solution with the inverse Gram matrix kept for rank-1 updates."""

    X: np.ndarray  # (n, d)
    y: np.ndarray  # (n,)
    alpha: float
    A_inv: np.ndarray  # (d, d) inverse of X^T X + alpha I
    w: np.ndarray  # (d,)

    def row(self, i: int) -> tuple[np.ndarray, float]:
        return self.X[i], float(self.y[i])

    def leverage(self, i: int) -> float:
        x = self.X[i]
        return float(x @ self.A_inv @ x)

    def residual(self, i: int) -> float:
        return float(self.y[i] - self.X[i] @ self.w)

    def loo_residual(self, i: int) -> float:
        """e = r / (1 - h) = y_i - x_i^T w_del (the leave-one-out residual)."""
        return self.residual(i) / (1.0 - self.leverage(i))


def ridge_solve(X: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Direct solve of (X^T X + alpha I) w = X^T y: the reference the updates are checked against."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (ridge), got {alpha}")
    d = X.shape[1]
    return np.linalg.solve(X.T @ X + alpha * np.eye(d), X.T @ y)


def ridge_fit(X: np.ndarray, y: np.ndarray, alpha: float) -> RidgeFit:
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (ridge), got {alpha}")
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    A_inv = np.linalg.inv(X.T @ X + alpha * np.eye(X.shape[1]))
    return RidgeFit(X=X, y=y, alpha=float(alpha), A_inv=A_inv, w=A_inv @ (X.T @ y))


def sherman_morrison(A_inv: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(A + u v^T)^{-1} from A^{-1}; raises if the update makes A singular."""
    Au, vA = A_inv @ u, v @ A_inv
    denom = 1.0 + float(v @ Au)
    if abs(denom) < 1e-12:
        raise ValueError("rank-1 update makes the matrix singular (1 + v^T A^-1 u = 0)")
    return A_inv - np.outer(Au, vA) / denom


def add_row(w: np.ndarray, A_inv: np.ndarray, x: np.ndarray, y: float) -> tuple[np.ndarray, np.ndarray]:
    """Solution and inverse after adding row (x, y): w + A^{-1}x (y - x^T w) / (1 + x^T A^{-1} x)."""
    Ax = A_inv @ x
    w_new = w + Ax * (y - x @ w) / (1.0 + x @ Ax)
    return w_new, sherman_morrison(A_inv, x, x)


def delete_row(fit: RidgeFit, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Solution and inverse without row i: w - A^{-1}x_i r / (1 - h), the rank-1 downdate."""
    x, _ = fit.row(i)
    Ax = fit.A_inv @ x
    w_del = fit.w - Ax * fit.residual(i) / (1.0 - x @ Ax)
    return w_del, sherman_morrison(fit.A_inv, -x, x)


def replace_row(fit: RidgeFit, i: int, x_s: np.ndarray, y_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Solution and inverse with row i replaced by the surrogate row (x_s, y_s): delete then add."""
    w_del, A_inv_del = delete_row(fit, i)
    return add_row(w_del, A_inv_del, np.asarray(x_s, dtype=np.float64), float(y_s))


@dataclass
class RowEditComparison:
    """Surrogate replacement vs deletion of one row: parameter shift and forgetting at x_i."""

    shift_surrogate: float  # ||w_sur - w||
    shift_delete: float  # ||w_del - w||
    bound_surrogate: float  # ||x_s r_s - x_i r|| / lambda_min(A_s), an upper bound on shift_surrogate
    y: float  # y_i, the label being forgotten
    pred_original: float  # x_i^T w
    pred_surrogate: float  # x_i^T w_sur
    pred_delete: float  # x_i^T w_del

    @property
    def moves_less(self) -> bool:
        return self.shift_surrogate < self.shift_delete

    @property
    def forgetting_surrogate(self) -> float:
        """How much further the prediction at x_i is from y_i than before (> 0: moved away)."""
        return abs(self.y - self.pred_surrogate) - abs(self.y - self.pred_original)

    @property
    def forgetting_delete(self) -> float:
        return abs(self.y - self.pred_delete) - abs(self.y - self.pred_original)


def compare_row_edit(fit: RidgeFit, i: int, x_s: np.ndarray, y_s: float) -> RowEditComparison:
    x, y = fit.row(i)
    x_s = np.asarray(x_s, dtype=np.float64)
    w_del, _ = delete_row(fit, i)
    w_sur, A_inv_sur = replace_row(fit, i, x_s, y_s)
    r_s = float(y_s - x_s @ fit.w)
    lam_min = 1.0 / float(np.linalg.eigvalsh(A_inv_sur).max())  # lambda_min(A_s)
    return RowEditComparison(
        shift_surrogate=float(np.linalg.norm(w_sur - fit.w)),
        shift_delete=float(np.linalg.norm(w_del - fit.w)),
        bound_surrogate=float(np.linalg.norm(x_s * r_s - x * fit.residual(i)) / lam_min),
        y=y,
        pred_original=float(x @ fit.w),
        pred_surrogate=float(x @ w_sur),
        pred_delete=float(x @ w_del),
    )


def label_towards_deletion(fit: RidgeFit, i: int, t: float) -> float:
    """y_s = y_i - t e: t = 0 keeps the row, t = 1 gives exactly the deleted solution (result (2))."""
    return float(fit.y[i] - t * fit.loo_residual(i))


def random_problem(n: int = 40, d: int = 8, noise: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian design, linear truth plus noise: rows have non-zero residuals, as real data does."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + noise * rng.standard_normal(n)
    return X, y


def label_edit_sweep(fit: RidgeFit, i: int, ts: np.ndarray) -> dict[str, np.ndarray]:
    """Label-only surrogates y_s = y_i - t e over ts: shifts and distances |y_i - prediction|."""
    x, y = fit.row(i)
    rows = [compare_row_edit(fit, i, x, label_towards_deletion(fit, i, t)) for t in ts]
    return {
        "t": np.asarray(ts, dtype=np.float64),
        "shift_surrogate": np.array([c.shift_surrogate for c in rows]),
        "shift_delete": np.array([c.shift_delete for c in rows]),
        "dist_surrogate": np.array([abs(y - c.pred_surrogate) for c in rows]),
        "dist_delete": np.array([abs(y - c.pred_delete) for c in rows]),
        "dist_original": np.array([abs(y - c.pred_original) for c in rows]),
    }


def input_edit_sweep(
    fit: RidgeFit, i: int, sizes: np.ndarray, t: float = 0.5, n_dirs: int = 16, seed: int = 0
) -> dict[str, np.ndarray]:
    """Surrogates x_s = x_i + s ||x_i|| u (u random unit directions), y_s = y_i - t e, over sizes s.

    Returns (len(sizes), n_dirs) arrays of shift ratios ||w_sur - w|| / ||w_del - w|| and
    forgetting at x_i, so a plot can show the spread over directions."""
    x, _ = fit.row(i)
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((n_dirs, x.size))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    y_s = label_towards_deletion(fit, i, t)
    ratio = np.empty((len(sizes), n_dirs))
    forget = np.empty_like(ratio)
    for a, s in enumerate(sizes):
        for b, u in enumerate(dirs):
            c = compare_row_edit(fit, i, x + s * np.linalg.norm(x) * u, y_s)
            ratio[a, b] = c.shift_surrogate / c.shift_delete
            forget[a, b] = c.forgetting_surrogate
    return {"sizes": np.asarray(sizes, dtype=np.float64), "ratio": ratio, "forgetting": forget}
