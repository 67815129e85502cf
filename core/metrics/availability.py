"""Which metrics can run on this machine, and why not, without building any model.

The GUI and CLI call this to label metrics honestly ("LPIPS: unavailable, weights file ...
missing") instead of hiding them or showing numbers from random weights. Only file and import
checks: cheap enough to call on every page load.
"""

from __future__ import annotations

import os

from core.metrics.fid_metric import fid_status
from core.metrics.lpips_metric import lpips_status
from core.metrics.sscd import sscd_status


def availability(
    lpips_net: str = "alex", sscd_path: str | os.PathLike | None = None
) -> dict[str, tuple[bool, str | None]]:
    """metric name -> (available, reason or None). SSIM/PSNR need only scikit-image."""
    return {
        "ssim": (True, None),
        "psnr": (True, None),
        "lpips": lpips_status(lpips_net),
        "fid": fid_status(),
        "sscd": sscd_status(sscd_path),
    }
