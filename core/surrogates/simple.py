"""The simple baselines of the paper: a horizontal flip and added Gaussian noise."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from .. import limits
from ..images import ensure_rgb
from .base import Surrogate, SurrogateMaker


class FlipSurrogate(SurrogateMaker):
    name = "flip"

    def make(self, image: Image.Image, model=None, **params) -> Surrogate:
        return Surrogate(ImageOps.mirror(ensure_rgb(image)), {"kind": self.name})


class NoiseSurrogate(SurrogateMaker):
    name = "noise"

    def make(self, image: Image.Image, model=None, sigma: float = 0.1, seed: int = 0, **params) -> Surrogate:
        sigma = limits.check_number(sigma, "noise sigma (fraction of the pixel range)", 0.0, 1.0, lo_open=True)
        seed = limits.check_seed(seed, "noise seed")
        arr = np.asarray(ensure_rgb(image), dtype=np.float32) / 255.0
        noisy = arr + np.random.default_rng(seed).normal(0.0, sigma, arr.shape).astype(np.float32)
        out = Image.fromarray((np.clip(noisy, 0, 1) * 255).round().astype(np.uint8))
        return Surrogate(out, {"kind": self.name, "sigma": sigma, "seed": seed})
