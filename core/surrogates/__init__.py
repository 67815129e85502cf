"""Surrogates: ways to turn a flagged image into the same image with the unwanted part gone.

Registry: `SURROGATES[kind]` (each maker registered with its typed parameter class);
`make_surrogate(kind, image, model, params)` is the one entry point. `params` is the kind's
dataclass (`NoiseParams(sigma=0.2)`) or a dict of its values; unknown names are an error.
"""

from __future__ import annotations

from PIL import Image

from .base import Surrogate, SurrogateMaker
from .checks import canvas_surrogate, check_near_copy, near_copy_warning, require_changed, to_model_size
from .clip_edit import ClipEditParams, ClipEditSurrogate
from .other_seed import OtherSeedParams, OtherSeedSurrogate, SeedSurvey, SeedSurveyParams, survey_other_seeds
from .paint import PaintParams, PaintSurrogate, composite_layers, is_blank
from .params import SurrogateParams, param_spec
from .sdedit import SDEditParams, SDEditSurrogate
from .simple import FlipParams, FlipSurrogate, NoiseParams, NoiseSurrogate

SURROGATES: dict[str, SurrogateMaker] = {
    m.name: m for m in (PaintSurrogate(), SDEditSurrogate(), ClipEditSurrogate(), FlipSurrogate(), NoiseSurrogate(),
                        OtherSeedSurrogate())
}
SURROGATE_KINDS = tuple(SURROGATES)  # the one list of kinds: CLI choices, GUI, README


def surrogate_maker(kind: str) -> SurrogateMaker:
    if kind not in SURROGATES:
        raise ValueError(f"surrogate kind {kind!r}: choose one of {', '.join(SURROGATES)}")
    return SURROGATES[kind]


def make_surrogate(kind: str, image: Image.Image, model=None, params: SurrogateParams | dict | None = None) -> Surrogate:
    """Make the surrogate of `image`; refuses one identical to `image` (a fix would learn nothing)."""
    maker = surrogate_maker(kind)
    typed = maker.params(params)
    sur = maker.make(image, model, typed)
    require_changed(image, sur.image)
    return sur


__all__ = ["SURROGATES", "SURROGATE_KINDS", "Surrogate", "SurrogateMaker", "SurrogateParams", "make_surrogate",
           "surrogate_maker", "param_spec", "composite_layers", "is_blank", "canvas_surrogate", "require_changed",
           "to_model_size", "near_copy_warning", "check_near_copy", "FlipParams", "NoiseParams", "PaintParams",
           "SDEditParams", "ClipEditParams", "OtherSeedParams", "SeedSurvey", "SeedSurveyParams", "survey_other_seeds"]
