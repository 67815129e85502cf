"""Find pretrained metric weights on disk, never download them.

LPIPS backbones and the FID Inception are fetched by their libraries through torch.hub into
`torch.hub.get_dir()/checkpoints/` (default ~/.cache/torch/hub/checkpoints; $TORCH_HOME moves
it). The studio runs offline and must not start a download from inside a metric, so every
metric first looks for the exact file name here and reports "unavailable" when it is absent.

A cached `.pth` is a pickle. Before a library loads one we open it ourselves with
`torch.load(weights_only=True)`, which refuses any pickle that would import or call code, so a
tampered or unrelated file fails here with a clear error instead of running.
"""

from __future__ import annotations

import re
from pathlib import Path

HUB_HINT = "torch hub cache: torch.hub.get_dir()/checkpoints, i.e. $TORCH_HOME/hub/checkpoints"


def hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def find_hub_checkpoint(filename: str) -> Path | None:
    """Path of `filename` in the torch hub checkpoint cache, or None if it is not there."""
    path = hub_checkpoint_dir() / filename
    return path if path.is_file() else None


def missing_file_reason(filename: str, how_to_get: str) -> str:
    """A user-facing reason naming the missing file, where it was looked for and how to get it."""
    return (
        f"weights file {filename} not found in {hub_checkpoint_dir()} ({HUB_HINT}); "
        f"to get it, run once on a machine with network: {how_to_get}"
    )


def load_state_dict_safely(path: Path) -> dict:
    """Load a checkpoint as plain tensors only (weights_only=True); raise ValueError otherwise."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError for corrupt/truncated files, ...
        raise ValueError(f"{path} is not a plain tensor checkpoint, refused: {_short(exc)}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def _short(exc: Exception) -> str:
    """The informative line of torch's long weights-only error (which also carries ANSI codes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"Unsupported global: [^\n]*?(?= was not|\n|$)", text)
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return found.group(0) if found else first[:200]
