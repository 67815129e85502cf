"""CLIP-guided surrogates: nudge the image's VAE latent until CLIP sees the target text.

    minimise over z:  w * (1 - cos(E_img(D(z)), E_txt(text)))  +  ||D(z) - x||^2

starting from z = E(x). The CLIP weight w is the knob of the paper's table (0.5 .. 32): a higher
weight changes more (more forgetting) and keeps less of the original (less integrity).
The CLIP pair comes from the model's `clip_model` (the embedded world ships one in clip/; for
SD3-medium the OpenAI CLIP checkpoint, loaded from the local Hugging Face cache only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from ..generate import encode
from ..images import fit_to_model, to_pil, to_tensor
from ..models.loading import ModelNotFoundError
from .base import Surrogate, SurrogateMaker
from .params import SurrogateParams, param

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_WEIGHT_RANGE = (0.5, 32.0)
CLIP_WEIGHT_CHOICES = (0.5, 1, 2, 4, 8, 16, 32)  # log-spaced, the paper's table; the GUI's radio


@lru_cache(maxsize=2)
def load_clip(location: str, name: str):
    """(CLIPModel, tokenizer or None, mean, std) from a model's sub-folder or the HF cache."""
    from transformers import CLIPModel, CLIPTokenizer

    if not name:
        raise ModelNotFoundError("the model names no CLIP (e.g. the faces DDPM); CLIP-guided edits and CLIP "
                                 "metrics need one: use paint/SDEdit surrogates")
    folder = Path(location) / name
    source = str(folder) if folder.is_dir() else name
    try:
        clip = CLIPModel.from_pretrained(source, local_files_only=True, use_safetensors=True).eval()
    except OSError as err:
        if "/" not in name:
            raise ModelNotFoundError(f"the model has no CLIP folder {name!r} ({folder}); CLIP-guided edits and "
                                     "CLIP metrics need one: use paint/SDEdit surrogates") from err
        raise ModelNotFoundError(
            f"the CLIP model {name!r} for CLIP-guided edits is not on this machine; on a machine with "
            f"network run `huggingface-cli download {name}`, or use paint/SDEdit surrogates") from err
    clip.requires_grad_(False)
    try:
        tok = CLIPTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, TypeError):
        tok = None
    mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    pre = folder / "preprocessor_config.json"
    if pre.exists():
        cfg = json.loads(pre.read_text())
        mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
    return clip, tok, mean, std


def clip_image_embeds(clip, images: torch.Tensor, mean, std) -> torch.Tensor:
    """Differentiable CLIP image embeddings of images in [-1, 1], (N, 3, H, W) -> (N, D) unit."""
    size = clip.config.vision_config.image_size
    x = (images.float() + 1) / 2
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    emb = clip.get_image_features(pixel_values=(x - m) / s)
    emb = emb.pooler_output if hasattr(emb, "pooler_output") else emb
    return F.normalize(emb, dim=-1)


def clip_text_embeds(clip, tokenizer, texts: list[str], device) -> torch.Tensor:
    ids = tokenizer(texts, padding="max_length", truncation=True, max_length=clip.config.text_config.max_position_embeddings,
                    return_tensors="pt").input_ids.to(device)
    emb = clip.get_text_features(input_ids=ids)
    emb = emb.pooler_output if hasattr(emb, "pooler_output") else emb
    return F.normalize(emb, dim=-1)


@dataclass(frozen=True)
class ClipEditParams(SurrogateParams):
    kind = "clip"
    text: str = param("", "target text: what the image should show, e.g. 'ireland flag'", kind=str)
    clip_weight: float = param(2.0, "CLIP loss weight: higher = more change, less fidelity to the flagged image",
                               lo=CLIP_WEIGHT_RANGE[0], hi=CLIP_WEIGHT_RANGE[1], kind=float)
    steps: int = param(60, "optimiser steps on the VAE latent", lo=1, hi=1000, kind=int)
    lr: float = param(0.05, "Adam learning rate on the latent", lo=0.0, hi=1.0, lo_open=True, kind=float)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.text.strip():
            raise ValueError("clip.text is empty: give a target text, e.g. 'ireland flag'")


class ClipEditSurrogate(SurrogateMaker):
    name = "clip"
    params_type = ClipEditParams
    needs_model = True

    def make(self, image: Image.Image, model, params: ClipEditParams) -> Surrogate:
        if model is None:
            raise ValueError("CLIP-guided editing needs a loaded model")
        text, clip_weight = params.text, params.clip_weight
        image = fit_to_model(image, model.info.resolution, "flagged image")
        clip, tok, mean, std = load_clip(model.location, model.info.clip_model)
        tok = tok or model.pipe.tokenizer
        vae = model.pipe.vae
        device = vae.device
        clip.to(device)
        x = to_tensor([image]).to(device)
        with torch.no_grad():
            target = clip_text_embeds(clip, tok, [text], device)
            z0 = encode(model, [image]).to(device)
            cos_before = float((clip_image_embeds(clip, x, mean, std) * target).sum())
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=params.lr)
        shift, scale = vae.config.shift_factor or 0.0, vae.config.scaling_factor
        for _ in range(params.steps):
            decoded = vae.decode(z.to(vae.dtype) / scale + shift).sample.float()
            cos = (clip_image_embeds(clip, decoded, mean, std) * target).sum(-1)
            loss = clip_weight * (1 - cos).mean() + F.mse_loss(decoded, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            final = vae.decode(z.to(vae.dtype) / scale + shift).sample.float()
            cos_after = float((clip_image_embeds(clip, final, mean, std) * target).sum())
        info = {"kind": self.name, **params.to_info(),
                "clip_similarity_before": round(cos_before, 4), "clip_similarity_after": round(cos_after, 4)}
        return Surrogate(to_pil(final)[0], info)
