"""bench/ddpm_forward.py compares the studio's UNet class with one keeping diffusers' dtype, on the same weights."""

from __future__ import annotations

import torch

from bench.ddpm_forward import diffusers_dtype_twin, measure, with_fix


def test_the_twin_keeps_diffusers_dtype_and_draws_what_the_studio_unet_draws(ddpm_dir):
    from diffusers.models.modeling_utils import ModelMixin

    from core.generate import initial_noise
    from core.models import load_model

    model = load_model(str(ddpm_dir))
    twin = diffusers_dtype_twin(model)
    assert type(twin.unet).dtype is ModelMixin.dtype and type(model.pipe.unet).dtype is not ModelMixin.dtype
    config = {"lora_rank": 2, "lora_targets": ["to_q", "to_v"]}
    for unet in (model.pipe.unet, twin.unet):
        torch.manual_seed(0)  # the same gaussian LoRA init in both
        with_fix(unet, config)
    noise = initial_noise(model, 3)
    from core.models import ddpm

    assert torch.equal(ddpm.sample(model.pipe, noise, 4), ddpm.sample(twin, noise, 4))
    got = measure(twin, noise, 2)
    assert set(got) == {"dtype_ms", "forward_ms", "render_ms"} and all(v > 0 for v in got.values())
