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


class OtherSeedSurrogate(SurrogateMaker):
    name = "other_seed"
    params_type = OtherSeedParams
    needs_model = True

    def make(self, image: Image.Image, model, params: OtherSeedParams) -> Surrogate:
        from ..generate import generate
        from ..judge import pick_descriptor

        if model is None:
            raise ValueError("other_seed draws the surrogate with the model: load one first")
        if model.unconditional and params.prompt:
            raise ValueError(f"other_seed.prompt={params.prompt!r}: this model is unconditional and takes no "
                             "prompt; leave it empty")
        if not model.unconditional and not params.prompt.strip():
            raise ValueError("other_seed.prompt is empty: give the flagged output's prompt")
        out = generate(model, params.prompt, [params.seed], params.steps, params.guidance)[0].image
        descriptor = pick_descriptor(model)
        a, b = np.asarray(descriptor.embed([image.convert("RGB"), out]), np.float64)
        similarity = float(a @ b)
        if similarity >= descriptor.copy_threshold:
            raise ValueError(f"other_seed.seed={params.seed} draws a copy of the flagged output (similarity "
                             f"{similarity:.3f} >= {descriptor.copy_threshold:.3f} by the {descriptor.name} copy "
                             "descriptor): pick a seed whose output looks as the flagged one should")
        return Surrogate(out, {"kind": self.name, **params.to_info(), "copy_similarity": round(similarity, 4)})
