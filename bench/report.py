"""Writing the world benchmarks' results: a markdown table headed by the command that made it
(built with bench.common's helpers), the raw rows as JSON beside it, and scatter plots."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import command_line, markdown_table

__all__ = ["command_line", "write_markdown", "plot_scatter", "plot_settings"]


def write_markdown(path: Path, title: str, command: str, header: list[str], rows: list[list], notes: list[str] = (),
                   raw: list[dict] | None = None, model=None) -> Path:
    """`model` (a LoadedModel) adds which weights were measured: results outlive a rebuild."""
    path.parent.mkdir(parents=True, exist_ok=True)
    measured_on = f"Model: `{model.source}`, base weights sha256 `{model.fingerprint()[:16]}`\n\n" if model else ""
    text = (f"# {title}\n\nMade by: `{command}`\n\n" + measured_on + markdown_table(header, rows) + "\n"
            + "".join(f"- {n}\n" for n in notes))
    path.write_text(text)
    if raw is not None:
        path.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    return path


def plot_scatter(path: Path, rows: list[dict], x: str, y: str, group: str, title: str, filled: str | None = None) -> Path:
    """One colour per group; with `filled`, points whose `filled` key is false are drawn hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, g in enumerate(sorted({r[group] for r in rows})):
        sel = [r for r in rows if r[group] == g and r.get(x) is not None and r.get(y) is not None]
        colour, labelled = f"C{i % 10}", False
        for hollow in (False, True):
            pts = [(r[x], r[y]) for r in sel if filled is not None and hollow == (not r.get(filled))]
            if filled is None and not hollow:
                pts = [(r[x], r[y]) for r in sel]
            if pts:
                ax.scatter(*zip(*pts), label=None if labelled else str(g), alpha=0.7,
                           facecolors="none" if hollow else colour, edgecolors=colour)
                labelled = True
    if filled:
        title += f"\n(hollow: {filled} false)"
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (higher is better on each), sorted by x."""
    front = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def plot_pareto(path: Path, rows: list[dict], x: str, y: str, group: str, title: str, xlabel: str, ylabel: str,
                filled: str | None = None) -> Path:
    """`plot_scatter` plus each group's Pareto front (higher is better on both axes) as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, g in enumerate(sorted({r[group] for r in rows})):
        sel = [r for r in rows if r[group] == g and r.get(x) is not None and r.get(y) is not None]
        if not sel:
            continue
        colour = f"C{i % 10}"
        for hollow in (False, True):
            pts = [(r[x], r[y]) for r in sel if filled is None or hollow == (not r.get(filled))]
            if pts and not (filled is None and hollow):
                ax.scatter(*zip(*pts), alpha=0.6, facecolors="none" if hollow else colour, edgecolors=colour)
        front = pareto_front([(float(r[x]), float(r[y])) for r in sel])
        ax.plot(*zip(*front), color=colour, label=str(g), drawstyle="steps-post" if len(front) > 1 else "default",
                marker="o" if len(front) == 1 else None)
    if filled:
        title += f"\n(hollow: {filled} false; lines: each method's Pareto front)"
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_settings(path: Path, rows: list[dict], metrics: dict[str, str], title: str) -> Path:
    """One panel per metric (key -> axis label), one horizontal bar per (group, setting) in row
    order: the mean over repeats as the bar, each repeat as a dot, groups told apart by colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((r["group"], r["setting"]) for r in rows))
    groups = list(dict.fromkeys(g for g, _ in keys))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1.8, 0.32 * len(keys) + 1.4), sharey=True)
    for ax, (metric, label) in zip(axes, metrics.items()):
        for y, (g, s) in enumerate(keys):
            vals = [float(r[metric]) for r in rows if (r["group"], r["setting"]) == (g, s) and r.get(metric) is not None]
            colour = f"C{groups.index(g) % 10}"
            if vals:
                ax.barh(y, sum(vals) / len(vals), color=colour, alpha=0.45)
                ax.scatter(vals, [y] * len(vals), color=colour, s=12, zorder=3)
        ax.set(xlabel=label)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(keys)), [f"{g}: {s}" for g, s in keys])
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
