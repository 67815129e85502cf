"""SSCD copy-detection similarity: does the model still produce the flagged image?

SSCD (Pizzi et al. 2022, facebookresearch/sscd-copy-detection) maps an image to a 512-d
descriptor; the cosine similarity of two descriptors is high for copies, including edited ones.
The paper counts an instance as forgotten when the similarity between the flagged image and
what the model now produces for the same seed drops below 0.4.

Model file: `sscd_disc_mixup.torchscript.pt`, downloaded by the user from the links in the
facebookresearch/sscd-copy-detection README. Looked up, in this order, at:
  1. an explicit `path` argument,
  2. the file named by $UNLEARN_SSCD_PATH,
  3. ~/.cache/unlearn-studio/sscd/sscd_disc_mixup.torchscript.pt.
An explicit path or env var that points nowhere is reported as such (no silent fallback).

Security: a TorchScript file is a program, not just weights; `torch.jit.load` runs the graph it
contains. We only load from the three places above, which only the user fills, and never from
an upload or a download. (TorchScript is deprecated in recent torch and warns on load; SSCD only
ships TorchScript, so we silence that one warning.)

Preprocessing follows the SSCD README: resize the shorter side to 288 (torchvision `Resize(288)`,
bilinear with antialias, keeping aspect), ImageNet mean/std normalisation; descriptors are
L2-normalised here (idempotent if the model already does it) and compared by cosine.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from core.metrics.embedding import aligned_cosine
from core.metrics.images import ImageLike, to_pil
from core.metrics.result import MetricResult

SSCD_FILE = "sscd_disc_mixup.torchscript.pt"
ENV_VAR = "UNLEARN_SSCD_PATH"
FORGOTTEN_THRESHOLD = 0.4
RESIZE_SHORT_SIDE = 288
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HOW_TO_GET = (
    f"download {SSCD_FILE} from the model links in the facebookresearch/sscd-copy-detection README "
    f"and put it in {{cache}} (or set ${ENV_VAR} to its path)"
)


def sscd_cache_dir() -> Path:
    return Path.home() / ".cache" / "unlearn-studio" / "sscd"


def find_sscd_model(path: str | os.PathLike | None = None) -> tuple[Path | None, str | None]:
    """(path, None) for the model file to use, or (None, reason) when there is none."""
    how = HOW_TO_GET.format(cache=sscd_cache_dir())
    if path is not None:
        p = Path(path).expanduser()
        return (p, None) if p.is_file() else (None, f"SSCD model file {p} (given explicitly) does not exist; {how}")
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        return (p, None) if p.is_file() else (None, f"SSCD model file {p} (from ${ENV_VAR}) does not exist; {how}")
    p = sscd_cache_dir() / SSCD_FILE
    if p.is_file():
        return p, None
    return None, f"SSCD model file {SSCD_FILE} not found (no path given, ${ENV_VAR} unset, not in {sscd_cache_dir()}); {how}"


def sscd_status(path: str | os.PathLike | None = None) -> tuple[bool, str | None]:
    found, reason = find_sscd_model(path)
    return found is not None, reason


@functools.lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int, device: str):
    """torch.jit.load from a trusted location (module docstring); memoised per file version."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=FutureWarning)
        model = torch.jit.load(path, map_location=device)
    return model.eval()


def preprocess(image: ImageLike):
    """3xHxW float tensor as in the SSCD README (shorter side 288, ImageNet normalisation)."""
    from torchvision.transforms import functional as TF

    pil = TF.resize(to_pil(image), RESIZE_SHORT_SIDE)  # int size: shorter side, aspect kept
    return TF.normalize(TF.to_tensor(pil), IMAGENET_MEAN, IMAGENET_STD)


class SscdEmbedder:
    """Callable images -> NxD L2-normalised SSCD descriptors (an `EmbedFn`)."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        p = Path(path)
        self.path, self.device = p, str(device)
        self.model = _load(str(p), p.stat().st_mtime_ns, self.device)

    def __call__(self, images: Sequence[ImageLike]):
        import torch

        outs = []
        with torch.no_grad():
            for image in images:  # one at a time: aspect ratios (hence sizes) may differ
                x = preprocess(image).unsqueeze(0).to(self.device)
                outs.append(self.model(x).reshape(1, -1).float().cpu())
        emb = torch.cat(outs)  # (N, D), D = 512 for sscd_disc_mixup
        return torch.nn.functional.normalize(emb, dim=1)


def sscd_similarity(
    reference: ImageLike | Sequence[ImageLike],
    outputs: Sequence[ImageLike],
    path: str | os.PathLike | None = None,
    device: str = "cpu",
    threshold: float = FORGOTTEN_THRESHOLD,
) -> MetricResult:
    """Cosine SSCD similarity of each output to the reference (one flagged image, or a list
    aligned with outputs). value = mean; details["forgotten"] = per item similarity < threshold."""
    refs = list(reference) if isinstance(reference, (list, tuple)) else [reference]
    if len(outputs) == 0:
        raise ValueError("need at least one output image")
    found, reason = find_sscd_model(path)
    if found is None:
        return MetricResult.unavailable("sscd", reason)
    try:
        embed = SscdEmbedder(found, device=device)
    except Exception as exc:  # not a TorchScript file, truncated, wrong device...
        return MetricResult.unavailable("sscd", f"could not load SSCD model {found}: {exc}")
    values = aligned_cosine(embed(refs), embed(list(outputs)))
    forgotten = [bool(v < threshold) for v in values]
    return MetricResult(
        name="sscd",
        value=float(np.mean(values)),
        per_item=[float(v) for v in values],
        details={
            "threshold": threshold,
            "forgotten": forgotten,
            "forgotten_fraction": float(np.mean(forgotten)),
            "max": float(np.max(values)),
            "model": str(found),
        },
    )
