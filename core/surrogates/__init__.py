"""Surrogates: ways to turn a flagged image into the same image with the unwanted part gone.

Registry: `SURROGATES[kind]`; `make_surrogate(kind, image, model, **params)` is the one entry point.
"""

from __future__ import annotations

from PIL import Image

from .base import Surrogate, SurrogateMaker
from .clip_edit import ClipEditSurrogate
from .paint import PaintSurrogate, composite_layers
from .sdedit import SDEditSurrogate
from .simple import FlipSurrogate, NoiseSurrogate

SURROGATES: dict[str, SurrogateMaker] = {
    m.name: m for m in (PaintSurrogate(), SDEditSurrogate(), ClipEditSurrogate(), FlipSurrogate(), NoiseSurrogate())
}


def make_surrogate(kind: str, image: Image.Image, model=None, **params) -> Surrogate:
    if kind not in SURROGATES:
        raise ValueError(f"surrogate kind {kind!r}: choose one of {', '.join(SURROGATES)}")
    return SURROGATES[kind].make(image, model, **params)


__all__ = ["SURROGATES", "Surrogate", "SurrogateMaker", "make_surrogate", "composite_layers"]
