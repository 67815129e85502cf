"""Another output as the surrogate: what the model draws at another seed (same prompt, same sampling,
the fixes now enabled). For a DDPM that copies a face, a face the model draws that is no copy, the
"another face" surrogate of the paper's multi-identity setting; for a text-to-image model, a seed
drawn the way the flagged one should look.

A seed that draws a copy of the flagged output is refused: a fix toward it would learn nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..limits import SEED_MAX
from .base import Surrogate, SurrogateMaker
from .params import SurrogateParams, param


@dataclass(frozen=True)
class OtherSeedParams(SurrogateParams):
    kind = "other_seed"
    seed: int = param(0, "the other seed: one whose output looks as the flagged output should (for a DDPM, a "
                         "face that is no copy)", lo=0, hi=SEED_MAX, kind=int)
    prompt: str = param("", "the flagged output's prompt (leave it empty for an unconditional model)", kind=str)
    steps: int | None = param(None, "denoising steps, as the flagged output was drawn (default: the model's)",
                              lo=1, hi=1000, kind=int, optional=True)
    guidance: float | None = param(None, "guidance scale, as the flagged output was drawn (default: the model's)",
                                   lo=0.0, hi=30.0, kind=float, optional=True)
    repeat_probe_seeds: int = param(
        32, "unconditional models: other seeds drawn to see whether the picked output is a picture the model "
        "repeats (a memorised one); a fix toward it would swap one memorised picture for another. 0 = do not look",
        lo=0, hi=256, kind=int)


class OtherSeedSurrogate(SurrogateMaker):
    name = "other_seed"
    params_type = OtherSeedParams
    needs_model = True

    def make(self, image: Image.Image, model, params: OtherSeedParams) -> Surrogate:
        from ..generate import generate
        from ..images import fit_to_model
        from ..judge import check_surrogate_copy, pick_descriptor

        if model is None:
            raise ValueError("other_seed draws the surrogate with the model: load one first")
        if model.unconditional and params.prompt:
            raise ValueError(f"other_seed.prompt={params.prompt!r}: this model is unconditional and takes no "
                             "prompt; leave it empty")
        if not model.unconditional and not params.prompt.strip():
            raise ValueError("other_seed.prompt is empty: give the flagged output's prompt")
        out = generate(model, params.prompt, [params.seed], params.steps, params.guidance)[0].image
        descriptor = pick_descriptor(model)
        # the flagged image as the fix sees it (a square one of another size is resized): a descriptor that
        # embeds a batch (CLIP) takes one size only
        check = check_surrogate_copy(model, fit_to_model(image, model.info.resolution, "flagged image"), out,
                                     descriptor)
        if check.near_copy:
            raise ValueError(f"other_seed.seed={params.seed} draws a copy of the flagged output (similarity "
                             f"{check.similarity:.3f} >= {check.threshold:.3f} by the {check.descriptor} copy "
                             "descriptor): pick a seed whose output looks as the flagged one should")
        info = {"kind": self.name, **params.to_info(), "copy_similarity": round(check.similarity, 4)}
        warnings = []
        if model.unconditional and params.repeat_probe_seeds:
            repeats = _near_copies_among_other_seeds(model, descriptor, out, params)
            info["repeated_at_seeds"] = repeats
            if repeats:
                warnings.append(
                    f"seed {params.seed} draws a picture the model repeats: {repeats} of {params.repeat_probe_seeds} "
                    "other seeds draw a near copy of it (a memorised picture?). A fix toward it teaches the flagged "
                    "seed that picture: one repeated picture swapped for another, which the judge accepts since you "
                    "asked for it. Pick a seed whose picture no other seed draws.")
        return Surrogate(out, info, warnings)


def _near_copies_among_other_seeds(model, descriptor, picked: Image.Image, params: OtherSeedParams) -> int:
    """How many of `repeat_probe_seeds` other seeds (from the remember seeds' start on, the picked seed
    skipped) draw a near copy of the picked output."""
    from ..generate import generate
    from ..unlearn.config import UnlearnConfig

    start = UnlearnConfig().remember_seed_start
    seeds = [s for s in range(start, start + params.repeat_probe_seeds + 1) if s != params.seed]
    seeds = seeds[:params.repeat_probe_seeds]
    images = [g.image.convert("RGB") for g in generate(model, params.prompt, seeds, params.steps, params.guidance)]
    e = np.asarray(descriptor.embed([picked, *images]), np.float64)
    sims = e[1:] @ e[0]
    return int((sims >= descriptor.copy_threshold).sum())
