"""Reproduce the ridge-regression theory check (paper: Corollary 3, Fig. 4) as a table and a plot.

Usage (from the repository root):
    PYTHONPATH=. python bench/theory_ridge.py --quick    # ~seconds: 60 problems x 8 directions
    PYTHONPATH=. python bench/theory_ridge.py            # 600 problems x 32 directions

Writes bench/results/theory_ridge.md (the command that made it in the header) and
bench/results/theory_ridge.png. The statements being checked are in core/theory.py.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or the GPU box
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core import theory as T  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SIZES_TABLE = [0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
ALPHAS = [0.1, 1.0, 10.0]
T_LABEL = 0.5  # label moved half way to the deleted model's prediction


def seed_statistics(n_problems: int, n_dirs: int) -> dict:
    """Over random problems, alphas and rows: rank-1 vs direct error, the exact label-only
    identity, and how often close/far input edits move w less than deletion and still forget."""
    sm_err, identity_err = 0.0, 0.0
    moves = {s: [] for s in SIZES_TABLE}
    forgets = {s: [] for s in SIZES_TABLE}
    ratios = {s: [] for s in SIZES_TABLE}
    for p in range(n_problems):
        alpha = ALPHAS[p % len(ALPHAS)]
        X, y = T.random_problem(n=40, d=8, seed=p)
        fit = T.ridge_fit(X, y, alpha)
        i = p % len(y)
        keep = np.arange(len(y)) != i
        w_del, _ = T.delete_row(fit, i)
        sm_err = max(sm_err, float(np.abs(w_del - T.ridge_solve(X[keep], y[keep], alpha)).max()))
        c = T.compare_row_edit(fit, i, X[i], T.label_towards_deletion(fit, i, T_LABEL))
        identity_err = max(identity_err, abs(c.shift_surrogate / c.shift_delete - T_LABEL))
        sweep = T.input_edit_sweep(fit, i, np.array(SIZES_TABLE), t=T_LABEL, n_dirs=n_dirs, seed=p)
        for k, s in enumerate(SIZES_TABLE):
            moves[s].extend(sweep["ratio"][k] < 1.0)
            forgets[s].extend(sweep["forgetting"][k] > 0)
            ratios[s].extend(sweep["ratio"][k])
    return {"sm_err": sm_err, "identity_err": identity_err, "moves": moves, "forgets": forgets, "ratios": ratios}


def make_plot(path: Path, n_dirs: int) -> dict:
    """Three panels on one fixed problem (n=40, d=8, alpha=1), for its row with the median
    |e_loo| (a typical row: neither one the model already fits nor an outlier)."""
    X, y = T.random_problem(n=40, d=8, seed=0)
    fit = T.ridge_fit(X, y, 1.0)
    loo = np.abs([fit.loo_residual(k) for k in range(len(y))])
    i = int(np.argsort(loo)[len(loo) // 2])
    ts = np.linspace(0.0, 2.0, 81)
    lab = T.label_edit_sweep(fit, i, ts)
    sizes = np.geomspace(0.01, 3.0, 40)
    inp = T.input_edit_sweep(fit, i, sizes, t=T_LABEL, n_dirs=n_dirs, seed=0)
    med = np.median(inp["ratio"], axis=1)
    lo, hi = np.percentile(inp["ratio"], [10, 90], axis=1)

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.3))
    ax[0].plot(ts, lab["shift_surrogate"], label="surrogate row  ||w_sur - w||")
    ax[0].plot(ts, lab["shift_delete"], "--", label="deleted row  ||w_del - w||")
    ax[0].axvline(1.0, color="grey", lw=0.8)
    ax[0].set(xlabel="label edit |y_s - y_i| / |e_loo|  (input x_i kept)", ylabel="parameter shift",
              title="(a) label-only surrogate: moves less iff edit < |e_loo|")
    ax[1].plot(ts, lab["dist_surrogate"], label="surrogate")
    ax[1].plot(ts, lab["dist_delete"], "--", label="deleted")
    ax[1].plot(ts, lab["dist_original"], ":", label="original fit")
    ax[1].set(xlabel="label edit |y_s - y_i| / |e_loo|", ylabel="|y_i - prediction at x_i|",
              title="(b) forgetting: prediction moves away from y_i")
    ax[2].fill_between(sizes, lo, hi, alpha=0.3, label=f"10-90% over {n_dirs} directions")
    ax[2].plot(sizes, med, label="median")
    ax[2].axhline(1.0, color="k", ls="--", lw=1, label="deletion")
    ax[2].set_xscale("log")
    ax[2].set_yscale("log")
    ax[2].set(xlabel="input edit ||x_s - x_i|| / ||x_i||  (label edit t = 0.5)",
              ylabel="||w_sur - w|| / ||w_del - w||", title="(c) general surrogate row")
    for a in ax:
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    cross = sizes[np.argmax(med >= 1.0)] if np.any(med >= 1.0) else None
    return {"row": i, "e_loo": fit.loo_residual(i), "leverage": fit.leverage(i), "crossover": cross}


def write_report(path: Path, command: str, stats: dict, plot: dict, n_problems: int, n_dirs: int) -> None:
    lines = [
        "# Ridge regression: surrogate row vs deleted row (paper Corollary 3, Fig. 4)",
        "",
        f"Made by: `{command}`  (numpy {np.__version__}, Python {platform.python_version()})",
        "",
        "Statements (proofs in `core/theory.py`): with e_loo the leave-one-out residual of row i,",
        "(1) deletion moves w by -A^-1 x_i e_loo; (2) a label-only surrogate (x_i kept, y_s = y_i + d)",
        "moves w by A^-1 x_i d, so it moves less than deletion **iff |d| < |e_loo|**, and with",
        "d = -t e_loo (0 < t) the prediction at x_i moves away from y_i; (3) a general surrogate row",
        "moves w at most ||x_s r_s - x_i r_i|| / lambda_min(A_s), which vanishes as the surrogate",
        "approaches the row: close surrogates move less than deletion, far ones need not.",
        "",
        f"Checks over {n_problems} random problems (n=40, d=8, alpha in {ALPHAS}), one row each:",
        f"- rank-1 (Sherman-Morrison) deletion vs direct solve: max |difference| = {stats['sm_err']:.1e}",
        f"- label-only, t = {T_LABEL}: max |shift ratio - t| = {stats['identity_err']:.1e} (exact identity)",
        "",
        f"General surrogate rows: x_s = x_i + s ||x_i|| u ({n_dirs} random unit u per problem), "
        f"y_s = y_i - {T_LABEL} e_loo.",
        "",
        "| input edit s | moves less than deletion | prediction at x_i moved away from y_i | median shift ratio |",
        "|---:|---:|---:|---:|",
    ]
    for s in SIZES_TABLE:
        lines.append(
            f"| {s:g} | {100 * np.mean(stats['moves'][s]):.1f}% | {100 * np.mean(stats['forgets'][s]):.1f}% "
            f"| {np.median(stats['ratios'][s]):.3f} |"
        )
    cross = "none in range" if plot["crossover"] is None else f"s ~ {plot['crossover']:.2f}"
    lines += [
        "",
        f"Plot (`theory_ridge.png`): one problem (alpha=1, row {plot['row']} with the median |e_loo|: e_loo = {plot['e_loo']:.3f}, "
        f"leverage = {plot['leverage']:.3f}); median crossover of panel (c) at {cross}.",
        "",
        "Reading: the claim holds exactly for label-only surrogates smaller than the leave-one-out",
        "residual (the form the method's forget loss takes: same input, edited target) and for",
        "input edits that are small relative to the row; large edits can move the solution more",
        "than deletion, and input edits can also undo part of the forgetting at x_i (table, column 3).",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer problems and directions (seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    n_problems, n_dirs = (60, 8) if args.quick else (600, 32)
    args.out.mkdir(parents=True, exist_ok=True)
    plot = make_plot(args.out / "theory_ridge.png", n_dirs)
    stats = seed_statistics(n_problems, n_dirs)
    command = "PYTHONPATH=. python bench/theory_ridge.py" + (" --quick" if args.quick else "")
    write_report(args.out / "theory_ridge.md", command, stats, plot, n_problems, n_dirs)
    print(f"wrote {args.out / 'theory_ridge.md'} and {args.out / 'theory_ridge.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
