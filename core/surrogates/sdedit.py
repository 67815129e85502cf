"""SDEdit surrogates: SD3 img2img from the flagged image at a strength (Meng et al., 2022).

The img2img pipeline is built with `from_pipe`, so it shares the loaded modules (and the
currently enabled fixes) instead of loading a second copy.
"""

from __future__ import annotations

import torch
from PIL import Image

from .. import limits
from ..images import fit_to_model
from .base import Surrogate, SurrogateMaker


class SDEditSurrogate(SurrogateMaker):
    name = "sdedit"
    needs_model = True

    def make(self, image: Image.Image, model=None, strength: float = 0.5, prompt: str = "",
             seed: int = 0, steps: int | None = None, guidance: float | None = None, **params) -> Surrogate:
        from diffusers import StableDiffusion3Img2ImgPipeline

        if model is None:
            raise ValueError("SDEdit needs a loaded model")
        strength = limits.check_number(strength, "SDEdit strength", 0.0, 1.0, lo_open=True)
        seed = limits.check_seed(seed, "SDEdit seed")
        info = model.info
        steps = limits.check_steps(steps or info.default_steps, "SDEdit steps")
        guidance = limits.check_guidance(info.default_guidance if guidance is None else guidance, "SDEdit guidance")
        image = fit_to_model(image, info.resolution, "flagged image")
        pipe = StableDiffusion3Img2ImgPipeline.from_pipe(model.pipe)
        pipe.set_progress_bar_config(disable=True)
        if int(steps * strength) < 1:
            raise ValueError(f"strength {strength} x {steps} steps leaves no denoising step; raise either")
        with torch.no_grad():
            out = pipe(
                prompt=prompt or "", image=image, strength=strength, num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
                max_sequence_length=info.max_sequence_length, height=info.resolution, width=info.resolution,
            ).images[0]
        return Surrogate(out, {"kind": self.name, "strength": strength, "prompt": prompt, "seed": seed, "steps": steps})
