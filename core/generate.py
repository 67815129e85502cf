"""Seeded generation: prompt + seeds -> images, their initial noise, and labelled grids.

An unconditional model (a DDPM) takes the prompt "" and draws in pixel space: its "latent" is the
image itself in [-1, 1], sampled with deterministic DDIM (core/models/ddpm.py).

Each seed's initial latent noise is drawn on the CPU from torch.Generator(seed), independent of
the device and of which other seeds share the batch, so any output can be regenerated exactly
(bit-identical on CPU for the same model state and call) and compared before and after a fix.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from PIL import Image, ImageDraw

from . import limits
from .images import to_pil, to_tensor
from .limits import MAX_SEEDS_CLI
from .models import ddpm
from .models.loading import LoadedModel

CountProgressFn = Callable[[int, int, str], None]  # (done, total, message); the trainer reports fractions


@dataclass
class Generated:
    prompt: str
    seed: int
    image: Image.Image | None  # None when generated with decode_images=False
    latent: torch.Tensor  # final latent in model space (1, C, h, w), on CPU
    noise: torch.Tensor  # the initial noise that produced it (1, C, h, w), on CPU


def parse_seeds(spec: str | Iterable[int], max_count: int = MAX_SEEDS_CLI) -> list[int]:
    """'0-7,12,20-22' -> [0..7, 12, 20, 21, 22]; also accepts an iterable of ints.

    Bounded before any list is built: see core.limits.parse_seeds."""
    return limits.parse_seeds(spec, max_count)


def latent_shape(model: LoadedModel) -> tuple[int, int, int]:
    if model.unconditional:  # a pixel-space DDPM: the "latent" is the image
        return ddpm.image_shape(model.pipe.unet)
    pipe = model.pipe
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = model.info.resolution // factor
    return pipe.transformer.config.in_channels, size, size


def initial_noise(model: LoadedModel, seed: int) -> torch.Tensor:
    """The seed's starting latent, (1, C, h, w) float32 on CPU."""
    gen = torch.Generator("cpu").manual_seed(limits.check_seed(seed))
    return torch.randn((1, *latent_shape(model)), generator=gen, dtype=torch.float32)


@torch.no_grad()
def decode(model: LoadedModel, latents: torch.Tensor) -> list[Image.Image]:
    """Model-space latents -> PIL images."""
    if model.unconditional:
        return ddpm.to_images(latents.float().cpu())
    vae = model.pipe.vae
    z = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
    return to_pil(vae.decode(z).sample)


@torch.no_grad()
def encode(model: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images -> model-space latents (posterior mean, deterministic)."""
    if model.unconditional:
        return ddpm.from_images(images, model.pipe.unet.config.in_channels).to(model.device)
    vae = model.pipe.vae
    x = to_tensor(list(images)).to(vae.device, vae.dtype)
    z = vae.encode(x).latent_dist.mean
    return (z - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor


def generate(
    model: LoadedModel,
    prompt: str,
    seeds: Sequence[int],
    steps: int | None = None,
    guidance: float | None = None,
    batch_size: int | None = 16,
    progress: CountProgressFn | None = None,
    noises: Sequence[torch.Tensor] | None = None,
) -> list[Generated]:
    """Generate one image per seed for `prompt` with the model's current adapters (the prompt ""
    for an unconditional model)."""
    return generate_many(model, [(prompt, s) for s in seeds], steps, guidance, batch_size, progress, noises)


# Per-image memory of a no-grad transformer pass, in elements per (token x width): hidden states of
# both streams, q/k/v, attention output and the 4x MLP hidden, with slack for temporaries.
_ACT_FACTOR = 16
MAX_AUTO_BATCH = 128  # past this a CPU gains nothing per image and a GPU nothing per call


def memory_budget(device: torch.device) -> int:
    """Bytes a generation call may use for activations: half of what is free on a GPU now, on a CPU a
    quarter of the available RAM, at most 4 GiB (the machine is shared with the app and the OS)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        avail = 4 << 30
    return int(min(avail // 4, 4 << 30))


def images_per_call(model: LoadedModel, guidance: float | None = None, budget: int | None = None) -> int:
    """How many images one pipeline call may denoise within `budget` bytes (default `memory_budget`).

    Estimated, not measured: per image, (image + text tokens) x transformer width x `_ACT_FACTOR`
    elements, plus heads x tokens^2 attention scores (CPU attention materialises them), doubled with
    guidance (the pipeline runs the unconditional batch alongside). The embedded 32 px model fits
    `MAX_AUTO_BATCH` in a few MB; SD3-medium at 1024 px ~2.1 GB per image in bf16 with guidance."""
    if model.unconditional:  # a tiny pixel UNet: activations ~ width x pixels per level, a few MB
        return MAX_AUTO_BATCH
    t = model.pipe.transformer
    cfg = t.config
    c, h, w = latent_shape(model)
    tokens = (h // cfg.patch_size) * (w // cfg.patch_size) + 77 + model.info.max_sequence_length
    width = cfg.num_attention_heads * cfg.attention_head_dim
    elem = torch.finfo(t.dtype).bits // 8
    per_image = (tokens * width * _ACT_FACTOR + cfg.num_attention_heads * tokens * tokens) * elem
    guidance = model.info.default_guidance if guidance is None else guidance
    per_image *= 2 if guidance > 1 else 1
    budget = memory_budget(model.device) if budget is None else budget
    return int(max(1, min(MAX_AUTO_BATCH, budget // max(per_image, 1))))


def decodes_per_call(model: LoadedModel, budget: int | None = None) -> int:
    """VAE decodes per call within `budget`: the decoder's full-resolution blocks hold about eight
    maps of its first block's width per image (an estimate; SD3's VAE at 1024 px: ~2 GB each in bf16)."""
    if model.unconditional:  # nothing to decode
        return MAX_AUTO_BATCH
    vae = model.pipe.vae
    res = model.info.resolution
    elem = torch.finfo(vae.dtype).bits // 8
    per_image = 8 * vae.config.block_out_channels[0] * res * res * elem
    budget = memory_budget(model.device) if budget is None else budget
    return int(max(1, min(MAX_AUTO_BATCH, budget // per_image)))


@torch.no_grad()
def generate_many(
    model: LoadedModel,
    requests: Sequence[tuple[str, int]],
    steps: int | None = None,
    guidance: float | None = None,
    batch_size: int | None = 16,
    progress: CountProgressFn | None = None,
    noises: Sequence[torch.Tensor] | None = None,
    decode_images: bool = True,
    precision: str = "model",
) -> list[Generated]:
    """Generate one image per (prompt, seed), batching across prompts: a small model spends much of
    a small batch on per-call overhead, so many prompts with few seeds each go faster this way.

    `batch_size=None` sizes the calls by memory (`images_per_call`). `decode_images=False` keeps only
    latents (`Generated.image` is None): the remember set needs no pixels unless a filter looks.
    `precision="bfloat16"` denoises under bf16 autocast (`sampling_precision`); decoding stays in the
    model's dtype. What people look at (grids, compare, the monitor) is drawn at "model"."""
    requests = [(check_prompt_for(model, p), limits.check_seed(s)) for p, s in requests]
    steps = limits.check_steps(steps or model.info.default_steps)
    guidance = limits.check_guidance(model.info.default_guidance if guidance is None else guidance)
    if batch_size is None:
        batch_size = images_per_call(model, guidance)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1 (or None to size it by memory)")
    noises = list(noises) if noises is not None else [initial_noise(model, s) for _, s in requests]
    out: list[Generated] = []
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        noise = torch.cat(noises[start : start + len(chunk)])
        if model.unconditional:
            with _sampling_context(model, precision):
                latents = ddpm.sample(model.pipe, noise, steps)
            images = ddpm.to_images(latents) if decode_images else [None] * len(chunk)
            out.extend(Generated("", seed, images[i], latents[i : i + 1], noise[i : i + 1])
                       for i, (_, seed) in enumerate(chunk))
            if progress:
                progress(len(out), len(requests), f"generated {len(out)}/{len(requests)}")
            continue
        with _sampling_context(model, precision):
            latents = model.pipe(
                prompt=[p for p, _ in chunk],
                latents=noise.to(model.device, model.pipe.transformer.dtype),
                num_inference_steps=steps,
                guidance_scale=guidance,
                height=model.info.resolution,
                width=model.info.resolution,
                max_sequence_length=model.info.max_sequence_length,
                output_type="latent",
            ).images.to(model.pipe.transformer.dtype)
        images = decode_batched(model, latents) if decode_images else [None] * len(chunk)
        for i, (prompt, seed) in enumerate(chunk):
            out.append(Generated(prompt, seed, images[i], latents[i : i + 1].float().cpu(), noise[i : i + 1]))
        if progress:
            progress(len(out), len(requests), f"generated {len(out)}/{len(requests)}")
    return out


def sampling_precision(model: LoadedModel, precision: str) -> str:
    """The precision that takes effect: bf16 autocast changes only a float32 model ("model" else)."""
    if precision not in limits.SAMPLING_PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(limits.SAMPLING_PRECISIONS)}")
    if precision == "bfloat16" and next(model.denoiser.parameters()).dtype == torch.float32:
        return "bfloat16"
    return "model"


def _sampling_context(model: LoadedModel, precision: str):
    if sampling_precision(model, precision) == "bfloat16":
        return torch.autocast(model.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_prompt_for(model: LoadedModel, prompt) -> str:
    """The prompt a model takes: "" for an unconditional model (seeds only), else a non-empty,
    bounded prompt (core.limits)."""
    if model.unconditional:
        if prompt is not None and (not isinstance(prompt, str) or prompt.strip()):
            raise limits.InputLimitError(f"prompt {prompt!r}: {model.source} is unconditional (no prompt); "
                                         "its outputs are named by seed alone")
        return ""
    return limits.check_prompt(prompt)


def decode_batched(model: LoadedModel, latents: torch.Tensor) -> list[Image.Image]:
    """`decode` in sub-batches sized by memory (a 1024 px VAE decode costs far more than denoising)."""
    n = decodes_per_call(model)
    return [img for k in range(0, latents.shape[0], n) for img in decode(model, latents[k : k + n])]


def image_grid(
    images: Sequence[Image.Image],
    labels: Sequence[str] | None = None,
    cols: int = 8,
    cell: int = 96,
    highlight: Iterable[int] = (),
    title: str | None = None,
) -> Image.Image:
    """A labelled grid; small images are upscaled with NEAREST so pixels stay honest.

    `highlight` holds indices drawn with a red frame (e.g. the flagged seed).
    """
    n = len(images)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    label_h, title_h, pad = 14, (16 if title else 0), 4
    grid = Image.new("RGB", (cols * (cell + pad) + pad, title_h + rows * (cell + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((pad, 2), title, fill="black")
    marked = set(highlight)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        x, y = pad + c * (cell + pad), title_h + pad + r * (cell + label_h + pad)
        resample = Image.NEAREST if img.width < cell else Image.LANCZOS
        grid.paste(img.convert("RGB").resize((cell, cell), resample), (x, y))
        if labels is not None:
            draw.text((x + 2, y + cell + 1), str(labels[i]), fill="black")
        if i in marked:
            draw.rectangle([x - 2, y - 2, x + cell + 1, y + cell + 1], outline=(220, 0, 0), width=3)
    return grid


def save_generations(gens: Sequence[Generated], out_dir: str | Path, highlight_seeds: Iterable[int] = ()) -> Path:
    """DIR/seed-0003.png for each output and DIR/grid.png labelled with seeds.

    On failure (full disk, cancel) the files written so far and the folders this call made are
    removed again: no half-written or empty generation folder is left behind."""
    from .runs import atomic_save_image

    out = Path(out_dir)
    made = [p for p in (out, *out.parents) if not p.exists()]  # innermost first
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for g in gens:
            written.append(atomic_save_image(g.image, out / f"seed-{g.seed:04d}.png"))
        marked = {i for i, g in enumerate(gens) if g.seed in set(highlight_seeds)}
        grid = image_grid([g.image for g in gens], [f"seed {g.seed}" for g in gens], highlight=marked,
                          title=gens[0].prompt if gens else None)
        written.append(atomic_save_image(grid, out / "grid.png"))
    except BaseException:
        for f in written:
            f.unlink(missing_ok=True)
        for d in made:
            try:
                d.rmdir()  # only if empty: never removes what someone else put there meanwhile
            except OSError:
                break
        raise
    return out
