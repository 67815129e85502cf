"""SDEdit surrogates: SD3 img2img (or DDIM for a DDPM) from the flagged image at a strength (Meng et al., 2022).

The img2img pipeline is built with `from_pipe`, so it shares the loaded modules (and the
currently enabled fixes) instead of loading a second copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ..images import fit_to_model
from .base import Surrogate, SurrogateMaker
from .params import SurrogateParams, param


@dataclass(frozen=True)
class SDEditParams(SurrogateParams):
    kind = "sdedit"
    strength: float = param(0.5, "how much is re-drawn: low keeps the image, 1 draws anew",
                            lo=0.0, hi=1.0, lo_open=True, kind=float)
    prompt: str = param("", "prompt of the re-drawing (optional): describe the corrected image", kind=str)
    seed: int = param(0, "seed of the added noise", lo=0, hi=2**32 - 1, kind=int)
    steps: int | None = param(None, "denoising steps before strength scales them (default: the model's)",
                              lo=1, hi=1000, kind=int, optional=True)
    guidance: float | None = param(None, "guidance scale (default: the model's)", lo=0.0, hi=30.0, kind=float,
                                   optional=True)


class SDEditSurrogate(SurrogateMaker):
    name = "sdedit"
    params_type = SDEditParams
    needs_model = True

    def make(self, image: Image.Image, model, params: SDEditParams) -> Surrogate:
        from diffusers import StableDiffusion3Img2ImgPipeline

        if model is None:
            raise ValueError("SDEdit needs a loaded model")
        info = model.info
        image = fit_to_model(image, info.resolution, "flagged image")
        steps = params.steps or info.default_steps
        if int(steps * params.strength) < 1:
            raise ValueError(f"sdedit.strength={params.strength} x {steps} steps leaves no denoising step; "
                             "raise either")
        if model.unconditional:  # a DDPM: no prompt, the UNet denoises the noised image itself
            return self._ddpm(image, model, params, steps)
        pipe = StableDiffusion3Img2ImgPipeline.from_pipe(model.pipe)
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            out = pipe(
                prompt=params.prompt, image=image, strength=params.strength, num_inference_steps=steps,
                guidance_scale=info.default_guidance if params.guidance is None else params.guidance,
                generator=torch.Generator("cpu").manual_seed(params.seed),
                max_sequence_length=info.max_sequence_length, height=info.resolution, width=info.resolution,
            ).images[0]
        return Surrogate(out, {"kind": self.name, "strength": params.strength, "prompt": params.prompt,
                               "seed": params.seed, "steps": steps})

    def _ddpm(self, image: Image.Image, model, params: SDEditParams, steps: int) -> Surrogate:
        """DDIM from the flagged image noised `strength` of the way (no prompt: a DDPM has none)."""
        from ..models import ddpm

        if params.prompt.strip():
            raise ValueError(f"sdedit.prompt={params.prompt!r}: {model.source} is unconditional; leave the prompt empty")
        x0 = ddpm.from_images([image], model.pipe.unet.config.in_channels)
        out = ddpm.to_images(ddpm.sdedit(model.pipe, x0, params.strength, steps, params.seed))[0]
        return Surrogate(out, {"kind": self.name, "strength": params.strength, "prompt": "", "seed": params.seed,
                               "steps": steps})
