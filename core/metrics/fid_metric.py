"""FID between two image sets (the paper: unlearned vs pretrained generations; lower = closer).

Implementation: torchmetrics' `FrechetInceptionDistance` (maintained by Lightning AI), whose
Inception-v3 comes from torch-fidelity and reproduces the original TensorFlow FID network
(weights file `weights-inception-2015-12-05-6726825d.pth`, fetched through torch.hub). Both
packages are optional: `pip install "torchmetrics[image]"` installs them. Without them, or
without the cached weights file, `fid()` returns an unavailable result saying which.

Offline and safety: we look the weights file up in the torch hub cache first (so torchmetrics
never tries a download), check it with `torch.load(weights_only=True)` (torch-fidelity itself
unpickles it with weights_only=False), then pass that exact path to torchmetrics.

Small sets: FID is biased upward for small N and the covariance is singular below 2048 images
(torchmetrics then still gives a finite value through eigenvalues of sigma1 @ sigma2). The paper
averages 10,000 generations; quick checks with tens of images are only comparable to other
runs with the same N, which `details["n_a"]`/`["n_b"]` records.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from core.metrics import weights_cache
from core.metrics.images import ImageLike, to_rgb_array
from core.metrics.result import MetricResult

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
HOW_TO_GET = (
    "pip install 'torchmetrics[image]' && python -c 'from torchmetrics.image.fid import "
    "FrechetInceptionDistance as F; F()'"
)
FEATURES = 2048
BATCH = 32
_LOCK = threading.Lock()  # the cached metric object accumulates state: one FID at a time


def fid_status() -> tuple[bool, str | None]:
    """(available, reason): are torchmetrics + torch-fidelity importable and the weights cached?
    The reason lists every missing piece, so one read tells the user all steps."""
    missing = []
    try:
        import torch_fidelity  # noqa: F401
        import torchmetrics.image.fid  # noqa: F401
    except ImportError as exc:
        missing.append(
            f"the optional packages torchmetrics and torch-fidelity ({exc}; "
            "pip install 'torchmetrics[image]')"
        )
    if weights_cache.find_hub_checkpoint(INCEPTION_FILE) is None:
        missing.append("the Inception weights: " + weights_cache.missing_file_reason(INCEPTION_FILE, HOW_TO_GET))
    if missing:
        return False, "FID needs " + "; and ".join(missing)
    return True, None


@functools.lru_cache(maxsize=2)
def _metric(path: str, mtime_ns: int, device: str):
    """A FrechetInceptionDistance on the checked weights file, built once per file version and
    device (building costs seconds). Refuses a cached file that is more than plain tensors (see
    module docstring) before torchmetrics unpickles it."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    weights_cache.load_state_dict_safely(Path(path))
    metric = FrechetInceptionDistance(feature=FEATURES, normalize=False, feature_extractor_weights_path=path)
    return metric.to(device)


def _batches(images: Sequence[ImageLike]):
    """uint8 Nx3xHxW tensors of equal-size runs of images (Inception resizes to 299 itself)."""
    import torch

    arrays = [to_rgb_array(im) for im in images]
    start = 0
    while start < len(arrays):
        end = start + 1
        while end < len(arrays) and end - start < BATCH and arrays[end].shape == arrays[start].shape:
            end += 1
        yield torch.from_numpy(np.stack(arrays[start:end])).permute(0, 3, 1, 2).contiguous()
        start = end


def fid(
    images_a: Sequence[ImageLike], images_b: Sequence[ImageLike], device: str = "cpu"
) -> MetricResult:
    """FID between set A (reference, e.g. pretrained outputs) and set B (e.g. unlearned)."""
    if len(images_a) < 2 or len(images_b) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(images_a)} and {len(images_b)}")
    ok, reason = fid_status()
    if not ok:
        return MetricResult.unavailable("fid", reason)
    import torch

    path = weights_cache.find_hub_checkpoint(INCEPTION_FILE)
    try:
        metric = _metric(str(path), path.stat().st_mtime_ns, str(device))
    except ValueError as exc:
        return MetricResult.unavailable("fid", str(exc))
    with _LOCK, torch.no_grad():
        metric.reset()
        for batch in _batches(images_a):
            metric.update(batch.to(device), real=True)
        for batch in _batches(images_b):
            metric.update(batch.to(device), real=False)
        value = max(float(metric.compute()), 0.0)  # round-off gives -1e-20 for equal sets
    return MetricResult(
        name="fid",
        value=value,
        details={"n_a": len(images_a), "n_b": len(images_b), "features": FEATURES,
                 "implementation": "torchmetrics FrechetInceptionDistance"},
    )
