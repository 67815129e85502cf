"""Writing the world benchmarks' results: a markdown table headed by the command that made it
(built with bench.common's helpers), the raw rows as JSON beside it, and scatter plots."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import command_line, markdown_table

__all__ = ["command_line", "write_markdown", "plot_scatter"]


def write_markdown(path: Path, title: str, command: str, header: list[str], rows: list[list], notes: list[str] = (),
                   raw: list[dict] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# {title}\n\nMade by: `{command}`\n\n" + markdown_table(header, rows) + "\n" + "".join(f"- {n}\n" for n in notes)
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
