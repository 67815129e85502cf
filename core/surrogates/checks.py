"""Checks every surrogate passes, whoever made it (CLI, studio canvas, API client).

One rule each, used by the CLI and the GUI alike:
- a surrogate identical to the flagged image is refused (the fix would have nothing to learn);
- a canvas whose layers paint nothing is empty, unless its background is itself an edited image
  (an uploaded, already corrected picture is a surrogate too).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from ..images import ImageInputError, ensure_rgb, fit_to_model
from .base import Surrogate


class SurrogateUnchangedError(ImageInputError):
    """The surrogate equals the flagged image."""


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(ensure_rgb(a)), np.asarray(ensure_rgb(b)))


def require_changed(flagged: Image.Image, surrogate: Image.Image) -> None:
    """Raise if `surrogate` equals `flagged` (compared at the surrogate's size)."""
    ref = flagged if flagged.size == surrogate.size else ensure_rgb(flagged).resize(surrogate.size, Image.LANCZOS)
    if _same(ref, surrogate):
        raise SurrogateUnchangedError("the surrogate is identical to the flagged image: change the unwanted "
                                      "part first (paint over it, or raise the strength / weight)")


def to_model_size(img: Image.Image, resolution: int) -> Image.Image:
    """Bring a painted canvas back to the model's size.

    On an integer-upscaled canvas each model pixel is a uniform block, so a box reduction returns
    every unpainted pixel exactly and averages painted blocks; other sizes go through
    fit_to_model (square check + Lanczos).
    """
    if img.size != (resolution, resolution) and img.width == img.height and img.width % resolution == 0:
        img = img.convert("RGB").reduce(img.width // resolution)
    return fit_to_model(img, resolution, "surrogate")


def canvas_surrogate(flagged: Image.Image, background: Image.Image, layers: Sequence[Image.Image | None],
                     resolution: int) -> Surrogate:
    """The surrogate of a paint canvas (background + layers, possibly upscaled) at model size."""
    from . import make_surrogate
    from .paint import is_blank

    layers = [layer for layer in layers if layer is not None]
    if all(is_blank(layer) for layer in layers):
        if _same(to_model_size(background, resolution), ensure_rgb(flagged)):
            raise ImageInputError("the canvas is empty: paint over the part that must go, then try again")
        sur = Surrogate(to_model_size(background, resolution), {"kind": "paint", "uploaded": True})
    else:
        sur = make_surrogate("paint", background, None, {"layers": layers})
        info = dict(sur.info)
        # Measured on the (upscaled) canvas; callers report the model-size change themselves.
        info["changed_fraction_canvas"] = info.pop("changed_fraction")
        sur = Surrogate(to_model_size(sur.image, resolution), {**info, "canvas": f"{background.width}px"})
    require_changed(flagged, sur.image)
    return sur
