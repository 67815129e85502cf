"""Unconditional pixel-space DDPMs: a diffusers UNet2DModel with a DDPM/DDIM scheduler.

The paper's second setting (google/ddpm-celebahq-256) has no prompt: an output is reachable only
by its seed. Here the "latent" of an image is the image itself in [-1, 1] (channels first), so
the rest of the engine (remember set, forget loss, LoRA fixes) works on pixels directly.
Sampling is deterministic DDIM (eta 0) from a seed's initial noise, so an output can be
regenerated exactly before and after a fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

# diffusers pipeline classes (model_index.json `_class_name`) this module loads.
DDPM_FAMILIES = ("DDPMPipeline", "DDIMPipeline")
# LoRA targets in a UNet2DModel: convolutions of the resnets and the attention projections
# (peft wraps Conv2d and Linear; the UNet has no other trainable maps).
UNET_LORA_TARGETS = ("conv1", "conv2", "to_q", "to_k", "to_v", "to_out.0")


def load_ddpm(location: str, offline: bool, hub: bool, dtype_kwarg: dict):
    """A DDPMPipeline from a folder or (cached) hub id; the caller places it on a device.
    `dtype_kwarg` is {"dtype": ...} or {"torch_dtype": ...}, whichever this diffusers takes."""
    from diffusers import DDPMPipeline

    return DDPMPipeline.from_pretrained(location, local_files_only=offline or not hub, **dtype_kwarg)


def make_pipeline(unet, scheduler):
    from diffusers import DDPMPipeline

    pipe = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image_shape(unet) -> tuple[int, int, int]:
    size = unet.config.sample_size
    size = size if isinstance(size, int) else size[0]
    return unet.config.in_channels, size, size


def alphas_cumprod(pipe) -> torch.Tensor:
    """abar_t for t = 0..T-1 of the model's training schedule (float64 for the ratios)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipe.scheduler.config).alphas_cumprod.double()


@torch.no_grad()
def sample(pipe, noise: torch.Tensor, steps: int, eta: float = 0.0) -> torch.Tensor:
    """DDIM from the given initial noise (B, C, H, W) -> images in [-1, 1], float32 on CPU."""
    from diffusers import DDIMScheduler

    unet = pipe.unet
    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    device = unet.device  # looked up once: diffusers walks the parameters and hooks for it on every call
    x = noise.to(device, unet.dtype)
    for t in sched.timesteps:
        eps = unet(x, t.to(device)).sample
        x = sched.step(eps, t, x, eta=eta).prev_sample
    return x.float().clamp(-1, 1).cpu()


def to_images(x: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] tensors (B, C, H, W) -> RGB PIL images (grey models are shown as grey RGB)."""
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return [Image.fromarray(a) for a in arr]


def from_images(images, channels: int) -> torch.Tensor:
    """PIL images -> (B, C, H, W) in [-1, 1]; a grey model gets the luminance."""
    mode = "L" if channels == 1 else "RGB"
    arr = np.stack([np.asarray(img.convert(mode), dtype=np.float32) for img in images])
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def tiny_unet(sample_size: int = 32, channels: int = 1, widths=(32, 64, 64), seed: int = 0):
    """A small UNet2DModel (attention only at the lowest resolution), seeded."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    n = len(widths)
    return UNet2DModel(
        sample_size=sample_size, in_channels=channels, out_channels=channels, layers_per_block=1,
        block_out_channels=tuple(widths), norm_num_groups=8, attention_head_dim=8,
        down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
    )


def save_tiny_ddpm(folder: str | Path, sample_size: int = 16, channels: int = 1, seed: int = 0,
                   widths=(8, 16), info=None) -> Path:
    """A random tiny DDPM in diffusers' folder layout (tests prove the loading path with it)."""
    from diffusers import DDPMScheduler

    from .info import ModelInfo

    folder = Path(folder)
    unet = tiny_unet(sample_size, channels, widths, seed)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    make_pipeline(unet, sched).save_pretrained(folder, safe_serialization=True)
    (info or ModelInfo(name="tiny-ddpm", resolution=sample_size, default_steps=10, default_guidance=0.0,
                       max_sequence_length=0, clip_model="")).save(folder)
    return folder


# The paper's DDPM-CelebA-HQ-256 settings (Lee et al., 2026): 240 steps, batch 8 (4 forget +
# 4 remember), lr on the 1e-5 scale, uniform DDPM timesteps. The paper trains the full UNet; here a
# fix is a LoRA, so on a hub DDPM these are a documented starting point, not a measured optimum.
PAPER_DDPM_DEFAULTS = {"steps": 240, "forget_batch_size": 4, "remember_batch_size": 4, "learning_rate": 1e-5,
                       "timestep_sampling": "uniform"}


def prepare_unet(unet) -> None:
    """The in-memory class a loaded UNet2DModel needs here; only the class changes (to a subclass of
    the same name), so saved folders stay stock diffusers. It gets
    - diffusers' PEFT adapter API (add/set/enable/disable/delete), which diffusers mixes into SD3's
      transformer but not into UNet2DModel: fixes are LoRA adapters;
    - a `dtype` read from its input conv: diffusers' property walks every submodule on each access and
      the UNet's forward asks once per call, 0.6 ms on the faces UNet with a fix on, ~7% of a batch-1
      forward (bench/results/ddpm_forward.md; a cache upstream was declined, huggingface/diffusers#13571)."""
    from diffusers.loaders.peft import PeftAdapterMixin

    cls = type(unet)
    if getattr(cls, "_prepared_here", False):
        return
    bases = (cls,) if isinstance(unet, PeftAdapterMixin) else (PeftAdapterMixin, cls)
    unet.__class__ = type(cls.__name__, bases, {"__module__": cls.__module__, "_prepared_here": True,
                                                "dtype": property(lambda self: self.conv_in.weight.dtype)})


@torch.no_grad()
def sdedit(pipe, x0: torch.Tensor, strength: float, steps: int, seed: int) -> torch.Tensor:
    """SDEdit for a DDPM: noise x0 to the DDIM step at `strength` of the way, then denoise."""
    from diffusers import DDIMScheduler

    unet = pipe.unet
    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    start = len(sched.timesteps) - max(1, int(round(steps * strength)))
    timesteps = sched.timesteps[start:]
    eps = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(int(seed)))
    x = sched.add_noise(x0.float().cpu(), eps, timesteps[:1]).to(unet.device, unet.dtype)
    for t in timesteps:
        x = sched.step(unet(x, t.to(unet.device)).sample, t, x, eta=0.0).prev_sample
    return x.float().clamp(-1, 1).cpu()
