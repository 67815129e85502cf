"""Seeded generation: prompt + seeds -> images, their initial noise, and labelled grids.

Each seed's initial latent noise is drawn on the CPU from torch.Generator(seed), independent of
the device and of which other seeds share the batch, so any output can be regenerated exactly
(bit-identical on CPU for the same model state and call) and compared before and after a fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from PIL import Image, ImageDraw

from .images import to_pil, to_tensor
from .models.loading import LoadedModel

ProgressFn = Callable[[int, int, str], None]  # (done, total, message)


@dataclass
class Generated:
    prompt: str
    seed: int
    image: Image.Image
    latent: torch.Tensor  # final latent in model space (1, C, h, w), on CPU
    noise: torch.Tensor  # the initial noise that produced it (1, C, h, w), on CPU


def parse_seeds(spec: str | Iterable[int]) -> list[int]:
    """'0-7,12,20-22' -> [0..7, 12, 20, 21, 22]; also accepts an iterable of ints."""
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if not all(c.isdigit() or c in "+- " for c in part) or not any(c.isdigit() for c in part):
            raise ValueError(f"{part!r} in {spec!r} is not a seed: write whole numbers and ranges, e.g. 0-7 or 0,3,5")
        if "-" in part[1:]:
            lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
            lo_i, hi_i = int(lo), int(hi)
            if hi_i < lo_i:
                raise ValueError(f"seed range {part!r} runs backwards")
            seeds.extend(range(lo_i, hi_i + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {spec!r}; write e.g. 0-7 or 0,3,5")
    if any(s < 0 for s in seeds):
        raise ValueError("seeds must be >= 0")
    return seeds


def latent_shape(model: LoadedModel) -> tuple[int, int, int]:
    pipe = model.pipe
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = model.info.resolution // factor
    return pipe.transformer.config.in_channels, size, size


def initial_noise(model: LoadedModel, seed: int) -> torch.Tensor:
    """The seed's starting latent, (1, C, h, w) float32 on CPU."""
    gen = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn((1, *latent_shape(model)), generator=gen, dtype=torch.float32)


@torch.no_grad()
def decode(model: LoadedModel, latents: torch.Tensor) -> list[Image.Image]:
    """Model-space latents -> PIL images."""
    vae = model.pipe.vae
    z = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
    return to_pil(vae.decode(z).sample)


@torch.no_grad()
def encode(model: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images -> model-space latents (posterior mean, deterministic)."""
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
    batch_size: int = 16,
    progress: ProgressFn | None = None,
    noises: Sequence[torch.Tensor] | None = None,
) -> list[Generated]:
    """Generate one image per seed for `prompt` with the model's current adapters."""
    return generate_many(model, [(prompt, int(s)) for s in seeds], steps, guidance, batch_size, progress, noises)


@torch.no_grad()
def generate_many(
    model: LoadedModel,
    requests: Sequence[tuple[str, int]],
    steps: int | None = None,
    guidance: float | None = None,
    batch_size: int = 16,
    progress: ProgressFn | None = None,
    noises: Sequence[torch.Tensor] | None = None,
) -> list[Generated]:
    """Generate one image per (prompt, seed), batching across prompts: a small model spends much of
    a small batch on per-call overhead, so many prompts with few seeds each go faster this way."""
    requests = [(p, int(s)) for p, s in requests]
    for prompt, _ in requests:
        if not prompt or not prompt.strip():
            raise ValueError("the prompt is empty")
    steps = steps or model.info.default_steps
    guidance = model.info.default_guidance if guidance is None else guidance
    if not 1 <= steps <= 1000:
        raise ValueError(f"steps={steps}: choose 1..1000")
    noises = list(noises) if noises is not None else [initial_noise(model, s) for _, s in requests]
    out: list[Generated] = []
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        noise = torch.cat(noises[start : start + len(chunk)])
        latents = model.pipe(
            prompt=[p for p, _ in chunk],
            latents=noise.to(model.device, model.pipe.transformer.dtype),
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=model.info.resolution,
            width=model.info.resolution,
            max_sequence_length=model.info.max_sequence_length,
            output_type="latent",
        ).images
        images = decode(model, latents)
        for i, (prompt, seed) in enumerate(chunk):
            out.append(Generated(prompt, seed, images[i], latents[i : i + 1].float().cpu(), noise[i : i + 1]))
        if progress:
            progress(len(out), len(requests), f"generated {len(out)}/{len(requests)}")
    return out


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
    """DIR/seed-0003.png for each output and DIR/grid.png labelled with seeds."""
    from .runs import atomic_save_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for g in gens:
        atomic_save_image(g.image, out / f"seed-{g.seed:04d}.png")
    marked = {i for i, g in enumerate(gens) if g.seed in set(highlight_seeds)}
    grid = image_grid([g.image for g in gens], [f"seed {g.seed}" for g in gens], highlight=marked,
                      title=gens[0].prompt if gens else None)
    atomic_save_image(grid, out / "grid.png")
    return out
