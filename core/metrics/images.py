"""Bring metric inputs to one form: HxWx3 uint8 RGB numpy arrays, checked in pairs.

Metrics accept PIL images (any mode: converted to RGB) or HxWx3 uint8 arrays, because the
generator returns PIL images and the GUI hands around numpy arrays. Anything else is rejected
with a ValueError naming the problem, rather than guessed at (a float array in [0, 1] passed
where uint8 is expected would silently give nonsense PSNR).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

ImageLike = Any  # PIL.Image.Image | np.ndarray (HxWx3 uint8)


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """Return an HxWx3 uint8 array for a PIL image or an HxWx3 uint8 array."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"image array must be uint8 (0..255), got dtype {image.dtype}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be HxWx3, got shape {image.shape}")
        return image
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image.Image
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    raise ValueError(f"expected a PIL image or HxWx3 uint8 array, got {type(image).__name__}")


def to_pil(image: ImageLike):
    """Return an RGB PIL image (for torchvision transforms that follow a reference recipe)."""
    from PIL import Image

    return Image.fromarray(to_rgb_array(image), mode="RGB")


def check_pairs(
    before: Sequence[ImageLike], after: Sequence[ImageLike]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pair up two equally long lists of equally sized images (same seed, before/after)."""
    if len(before) != len(after):
        raise ValueError(f"need the same number of images: {len(before)} before, {len(after)} after")
    if len(before) == 0:
        raise ValueError("need at least one image pair")
    pairs = []
    for k, (a, b) in enumerate(zip(before, after)):
        a, b = to_rgb_array(a), to_rgb_array(b)
        if a.shape != b.shape:
            raise ValueError(f"pair {k}: sizes differ ({a.shape} vs {b.shape}); compare same-seed outputs")
        pairs.append((a, b))
    return pairs


def to_float_batch(images: Sequence[ImageLike]):
    """Stack equally sized images into an Nx3xHxW float tensor in [0, 1]."""
    import torch

    arrays = [to_rgb_array(im) for im in images]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"images in one batch must share a size, got {sorted(shapes)}")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8
    return batch.float() / 255.0
