"""Hand-painted surrogates: the flagged image with painted RGBA layers composited on top.

The GUI's canvas (gr.ImageEditor) sends a background and transparent layers; an API client may
send no composite at all, so the composite is always rebuilt here, losslessly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from ..images import ImageInputError, ensure_rgb
from .base import Surrogate, SurrogateMaker


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


class PaintSurrogate(SurrogateMaker):
    name = "paint"

    def make(self, image: Image.Image, model=None, layers: Sequence[Image.Image] = (), **params) -> Surrogate:
        out = composite_layers(image, layers)
        if np.array_equal(np.asarray(out), np.asarray(ensure_rgb(image))):
            raise ImageInputError("the canvas is empty: paint over the part that must go, then try again")
        changed = float((np.asarray(out) != np.asarray(ensure_rgb(image))).any(axis=2).mean())
        return Surrogate(out, {"kind": self.name, "layers": len([l for l in layers if l is not None]),
                               "changed_fraction": round(changed, 4)})
