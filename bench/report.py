"""Writing benchmark results: markdown tables headed by the command that made them, and plots."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix().split("/work/main/")[-1], *sys.argv[1:]])


def write_markdown(path: Path, title: str, command: str, header: list[str], rows: list[list], notes: list[str] = (),
                   raw: list[dict] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", f"Made by: `{command}`", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [""] + [f"- {n}" for n in notes]
    path.write_text("\n".join(lines) + "\n")
    if raw is not None:
        path.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    return path


def plot_scatter(path: Path, rows: list[dict], x: str, y: str, group: str, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for g in sorted({r[group] for r in rows}):
        pts = [(r[x], r[y]) for r in rows if r[group] == g and r.get(x) is not None and r.get(y) is not None]
        if pts:
            ax.scatter(*zip(*pts), label=str(g), alpha=0.7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
