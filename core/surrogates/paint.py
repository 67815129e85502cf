"""Hand-painted surrogates: the flagged image with painted RGBA layers composited on top.

The GUI's canvas (gr.ImageEditor) sends a background and transparent layers; an API client may
send no composite at all, so the composite is always rebuilt here, losslessly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from ..images import ImageInputError, ensure_rgb
from .base import Surrogate, SurrogateMaker
from .params import SurrogateParams, param


def composite_layers(background: Image.Image, layers: Sequence[Image.Image]) -> Image.Image:
    """Alpha-composite `layers` over `background`; layers must match its size."""
    if background is None:
        raise ImageInputError("the canvas has no background image: flag an output first")
    base = ensure_rgb(background).convert("RGBA")
    for i, layer in enumerate(layers or []):
        if layer is None:
            continue
        if layer.size != base.size:
            raise ImageInputError(
                f"paint layer {i + 1} is {layer.width}x{layer.height} but the image is "
                f"{base.width}x{base.height}: paint on the flagged image's canvas")
        base = Image.alpha_composite(base, _as_rgba(layer))
    return base.convert("RGB")


def _as_rgba(layer: Image.Image) -> Image.Image:
    if layer.mode == "RGBA":
        return layer
    if layer.mode in ("LA", "PA", "P"):
        return layer.convert("RGBA")
    # A layer without alpha paints everything: treat pure black as transparent (empty canvas).
    rgb = layer.convert("RGB")
    alpha = Image.fromarray(((np.asarray(rgb).sum(axis=2) > 0) * 255).astype(np.uint8))
    out = rgb.convert("RGBA")
    out.putalpha(alpha)
    return out


def is_blank(layer: Image.Image | None) -> bool:
    """A layer paints nothing: no pixel is visible after `_as_rgba` (the one blank-canvas rule,
    used by the maker and by the studio's canvas)."""
    return layer is None or _as_rgba(layer).getchannel("A").getextrema()[1] == 0


@dataclass(frozen=True)
class PaintParams(SurrogateParams):
    kind = "paint"
    layers: tuple = param((), "RGBA paint layers of the flagged image's size, composited in order")

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers or ()))
        super().__post_init__()
        for i, layer in enumerate(self.layers):
            if layer is not None and not isinstance(layer, Image.Image):
                raise ValueError(f"paint.layers[{i}] is a {type(layer).__name__}: give PIL images (RGBA PNGs)")


class PaintSurrogate(SurrogateMaker):
    name = "paint"
    params_type = PaintParams

    def make(self, image: Image.Image, model, params: PaintParams) -> Surrogate:
        if all(is_blank(layer) for layer in params.layers):
            raise ImageInputError("the canvas is empty: paint over the part that must go, then try again")
        out = composite_layers(image, params.layers)
        changed = float((np.asarray(out) != np.asarray(ensure_rgb(image))).any(axis=2).mean())
        return Surrogate(out, {"kind": self.name, "layers": params.to_info()["layers"],
                               "changed_fraction": round(changed, 4)})
