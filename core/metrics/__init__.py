"""Metrics for unlearning: integrity (SSIM, PSNR, LPIPS), quality (FID, embedding FD) and
forgetting (SSCD copy detection).

Every metric returns a `MetricResult`; metrics whose pretrained weights are not on this machine
return `available=False` with the missing file and how to get it, never a number from random
weights. `availability()` answers that question up front.

Modules: result (result type, JSON safety), images (input checks), integrity (SSIM/PSNR),
lpips_metric, fid_metric, sscd, embedding (generic cosine + Frechet distance), weights_cache (finding
cached weights without downloading), availability.
"""

from core.metrics.availability import availability
from core.metrics.embedding import (
    cosine_similarity,
    embedding_frechet_distance,
    frechet_distance,
    frechet_distance_from_stats,
)
from core.metrics.fid_metric import fid
from core.metrics.integrity import integrity, psnr, psnr_pair, ssim, ssim_pair
from core.metrics.lpips_metric import lpips
from core.metrics.result import MetricResult, from_json_value, json_safe
from core.metrics.sscd import FORGOTTEN_THRESHOLD, SscdEmbedder, sscd_similarity

__all__ = [
    "FORGOTTEN_THRESHOLD",
    "MetricResult",
    "SscdEmbedder",
    "availability",
    "cosine_similarity",
    "embedding_frechet_distance",
    "fid",
    "frechet_distance",
    "frechet_distance_from_stats",
    "from_json_value",
    "integrity",
    "json_safe",
    "lpips",
    "psnr",
    "psnr_pair",
    "sscd_similarity",
    "ssim",
    "ssim_pair",
]
