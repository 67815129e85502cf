"""Distances in the model's own CLIP image space (the embedded world ships its CLIP).

For the flags world, Inception features of 32 px flags say little; its own CLIP vision tower
knows these images. "world-CLIP FD" = Frechet distance between before/after generations in that
space; "CLIP similarity to the flagged image" is a forgetting signal next to the checker. For
other models the CLIP comes from the local Hugging Face cache or the metric is unavailable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from core.metrics.embedding import aligned_cosine, frechet_distance
from core.metrics.result import MetricResult


def clip_embedder(model):
    """images -> (N, D) unit embeddings with the model's CLIP; raises ModelNotFoundError if absent."""
    from core.images import to_tensor
    from core.surrogates.clip_edit import clip_image_embeds, load_clip

    clip, _, mean, std = load_clip(model.location, model.info.clip_model)

    @torch.no_grad()
    def embed(images: Sequence) -> np.ndarray:
        return clip_image_embeds(clip, to_tensor(list(images)), mean, std).cpu().numpy()

    return embed


def _unavailable(name: str, model, err: Exception) -> MetricResult:
    return MetricResult.unavailable(name, f"no CLIP for {model.info.name}: {err}")


def clip_fd(model, before: Sequence, after: Sequence) -> MetricResult:
    """Frechet distance between two image sets in the model's CLIP space (0 = same distribution)."""
    from core.models.loading import ModelNotFoundError

    try:
        embed = clip_embedder(model)
    except ModelNotFoundError as err:
        return _unavailable("clip_fd", model, err)
    value = frechet_distance(embed(before), embed(after))
    return MetricResult("clip_fd", value, details={"n": len(before), "space": model.info.clip_model})


def clip_similarity(model, reference, images: Sequence) -> MetricResult:
    """Cosine similarity of each image to `reference` (e.g. the flagged image) in CLIP space."""
    from core.models.loading import ModelNotFoundError

    try:
        embed = clip_embedder(model)
    except ModelNotFoundError as err:
        return _unavailable("clip_similarity", model, err)
    sims = aligned_cosine(embed([reference]), embed(images))
    return MetricResult("clip_similarity", float(np.mean(sims)), per_item=[float(s) for s in sims])
