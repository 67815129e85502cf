"""Integrity: how much did unlearning change the outputs it should have left alone?

Measured between the pretrained ("before") and unlearned ("after") outputs of the same seeds
and prompts, with scikit-image's SSIM and PSNR. Higher is better for both; identical images
give SSIM 1 and PSNR +inf.

SSIM settings. We use the reference definition of Wang et al. (2004): an 11x11 Gaussian window
with sigma 1.5 and population covariances (skimage: gaussian_weights=True, sigma=1.5,
use_sample_covariance=False), on the 0..255 range, per channel then averaged. That window fits
every image at least 11 px on its shorter side, so the 32x32 renders of the embedded world are
covered (the mean is taken over the 22x22 interior where the window fits). Images smaller than
11 px fall back to a uniform window of the largest odd size that fits (at least 3); the window
used is reported in `details["window"]`, because SSIM values from different windows are not
comparable. Below 3 px SSIM is undefined and we raise.

PSNR. 10*log10(255^2 / MSE) per pair. Identical pairs are +inf; the mean over pairs is then
+inf too, so `details` also carries the number of identical pairs and the mean over the pairs
that differ. `MetricResult.to_dict()` writes inf as the string "inf" (strict JSON).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from core.metrics.images import ImageLike, check_pairs
from core.metrics.result import MetricResult

GAUSSIAN_WINDOW = 11  # what skimage derives from sigma=1.5 and truncate=3.5: 2*int(3.5*1.5+0.5)+1
MIN_SSIM_SIDE = 3


def ssim_window(height: int, width: int) -> str:
    """Describe the SSIM window used for an image of this size ("gaussian11" or "uniformK")."""
    side = min(height, width)
    if side >= GAUSSIAN_WINDOW:
        return f"gaussian{GAUSSIAN_WINDOW}"
    if side < MIN_SSIM_SIDE:
        raise ValueError(f"SSIM needs images at least {MIN_SSIM_SIDE} px on a side, got {height}x{width}")
    odd = side if side % 2 == 1 else side - 1
    return f"uniform{odd}"


def ssim_pair(before: ImageLike, after: ImageLike) -> float:
    """SSIM of one same-size pair (see module docstring for the window)."""
    from skimage.metrics import structural_similarity  # imported here: skimage.metrics brings scipy.stats (~0.6 s)

    ((a, b),) = check_pairs([before], [after])
    window = ssim_window(a.shape[0], a.shape[1])
    common = dict(channel_axis=-1, data_range=255)
    if window.startswith("gaussian"):
        value = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, **common
        )
    else:
        value = structural_similarity(a, b, win_size=int(window[len("uniform"):]), **common)
    return float(value)


def psnr_pair(before: ImageLike, after: ImageLike) -> float:
    """PSNR in dB of one same-size pair; +inf when the images are identical."""
    ((a, b),) = check_pairs([before], [after])
    if np.array_equal(a, b):
        return math.inf  # skimage would divide by zero (with a warning) to get the same inf
    from skimage.metrics import peak_signal_noise_ratio  # see ssim_pair

    return float(peak_signal_noise_ratio(a, b, data_range=255))


def ssim(before: Sequence[ImageLike], after: Sequence[ImageLike]) -> MetricResult:
    """Mean SSIM over same-seed pairs, with per-pair values."""
    pairs = check_pairs(before, after)
    values = [ssim_pair(a, b) for a, b in pairs]
    windows = sorted({ssim_window(a.shape[0], a.shape[1]) for a, _ in pairs})
    return MetricResult(
        name="ssim",
        value=float(np.mean(values)),
        per_item=values,
        details={"window": windows[0] if len(windows) == 1 else windows, "data_range": 255},
    )


def psnr(before: Sequence[ImageLike], after: Sequence[ImageLike]) -> MetricResult:
    """Mean PSNR (dB) over same-seed pairs; +inf if any pair is identical (see details)."""
    pairs = check_pairs(before, after)
    values = [psnr_pair(a, b) for a, b in pairs]
    finite = [v for v in values if math.isfinite(v)]
    return MetricResult(
        name="psnr",
        value=float(np.mean(values)),
        per_item=values,
        details={
            "identical_pairs": len(values) - len(finite),
            "mean_over_differing_pairs": float(np.mean(finite)) if finite else None,
            "data_range": 255,
        },
    )


def integrity(before: Sequence[ImageLike], after: Sequence[ImageLike]) -> dict[str, MetricResult]:
    """SSIM and PSNR of the same pairs, keyed by metric name."""
    return {"ssim": ssim(before, after), "psnr": psnr(before, after)}
