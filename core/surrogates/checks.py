"""Checks every surrogate passes, whoever made it (CLI, studio canvas, API client).

One rule each, used by the CLI and the GUI alike:
- a surrogate identical to the flagged image is refused (the fix would have nothing to learn);
- a canvas whose layers paint nothing is empty, unless its background is itself an edited image
  (an uploaded, already corrected picture is a surrogate too);
- a surrogate the judge's copy descriptor still calls a near copy of the flagged image is accepted
  with a warning (`near_copy_warning`): when the picture as a whole must go (a memorised face), a fix
  toward it teaches the same picture again. Measured (bench/results/surrogate_copy_check.md, seeds
  6152-6407): on the faces world every warned surrogate was still a copy of the face by the matcher
  and no right one was warned; on the flags world 73 of the 76 surrogates still drawing the reversed
  flag were warned, and 4 of 38 right ones. On the faces world's tuning seeds, fixes toward 14 warned
  surrogates (eye band, SDEdit 0.6) took no face away, though the judge called 12 of them forgotten;
  the same surrogates changed until the warning went took 8 faces of 16 away
  (faces_tune_paint_sdedit_defaults_seed*.md, faces_tune_until_no_copy_seed*.md). A warning, not a
  refusal: where only a detail must change, a near copy is what the user wants.
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


# What to change when the surrogate is still a near copy, per kind of surrogate (info["kind"]). Paint: on the
# faces world's fresh seeds painting over more took 1 face of 4 away, SDEdit of the painting 11 of 12
# (bench/results/README.md, "Paint, then SDEdit the painting").
NEAR_COPY_ADVICE = {
    "paint": "paint over more of the unwanted part, or SDEdit the painting (start from it) until this warning goes",
    "sdedit": "raise the strength until the picture changes",
    "clip": "raise the CLIP weight or change the target text",
    "noise": "noise keeps the picture: make the surrogate another way",
    "flip": "the flipped image is the same picture: make the surrogate another way",
    "other_seed": "pick a seed whose output is another picture",
}
NEAR_COPY_ADVICE_OTHER = "edit more of it, or make the surrogate another way"


def near_copy_warning(check, kind: str | None) -> str | None:
    """The sentence a user reads when `check` (core.judge.SurrogateCopyCheck) finds the surrogate a
    near copy of the flagged image; None when it is not one."""
    if not check.near_copy:
        return None
    advice = NEAR_COPY_ADVICE.get(kind or "", NEAR_COPY_ADVICE_OTHER)
    return (f"the surrogate is still a near copy of the flagged image (similarity {check.similarity:.3f}, near "
            f"copies from {check.threshold:g}, by the {check.descriptor} copy descriptor). If the picture as a whole "
            f"must go (a memorised face), a fix toward it teaches the model the same picture again: {advice}. If "
            "only a detail must change, go on.")


def check_near_copy(model, flagged: Image.Image, surrogate: Image.Image, kind: str | None):
    """(core.judge.SurrogateCopyCheck, warning or None) for `surrogate` against `flagged`, both at the
    model's size as the fix will see them (a square image of another size is resized, a non-square one
    refused with the fix's own message)."""
    from ..judge import check_surrogate_copy

    res = model.info.resolution
    check = check_surrogate_copy(model, fit_to_model(flagged, res, "flagged image"),
                                 fit_to_model(surrogate, res, "surrogate"))
    return check, near_copy_warning(check, kind)


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
