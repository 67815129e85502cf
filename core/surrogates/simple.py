"""The simple baselines of the paper: a horizontal flip and added Gaussian noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from ..images import ensure_rgb
from .base import Surrogate, SurrogateMaker
from .params import SurrogateParams, param


@dataclass(frozen=True)
class FlipParams(SurrogateParams):
    kind = "flip"


@dataclass(frozen=True)
class NoiseParams(SurrogateParams):
    kind = "noise"
    sigma: float = param(0.1, "std of the added Gaussian noise, as a fraction of the pixel range",
                         lo=0.0, hi=1.0, lo_open=True, kind=float)
    seed: int = param(0, "seed of the noise", lo=0, hi=2**32 - 1, kind=int)


class FlipSurrogate(SurrogateMaker):
    name = "flip"
    params_type = FlipParams

    def make(self, image: Image.Image, model, params: FlipParams) -> Surrogate:
        return Surrogate(ImageOps.mirror(ensure_rgb(image)), {"kind": self.name})


class NoiseSurrogate(SurrogateMaker):
    name = "noise"
    params_type = NoiseParams

    def make(self, image: Image.Image, model, params: NoiseParams) -> Surrogate:
        arr = np.asarray(ensure_rgb(image), dtype=np.float32) / 255.0
        noise = np.random.default_rng(params.seed).normal(0.0, params.sigma, arr.shape).astype(np.float32)
        out = Image.fromarray((np.clip(arr + noise, 0, 1) * 255).round().astype(np.uint8))
        return Surrogate(out, {"kind": self.name, **params.to_info()})
