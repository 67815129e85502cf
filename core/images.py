"""Image checks and conversions shared by generation, surrogates, metrics and the GUI.

Every image that enters the engine passes `load_image` / `ensure_rgb`: a pixel cap against
decompression bombs, an allow-list of formats, RGB conversion, and a clear error for the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "BMP"}
MAX_PIXELS = 4096 * 4096


class ImageInputError(ValueError):
    """An image the engine cannot use; the message says what to do instead."""


def load_image(path: str | Path) -> Image.Image:
    """Open a user image safely: allowed formats only, bounded size, fully decoded, RGB."""
    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            if img.format not in ALLOWED_FORMATS:
                raise ImageInputError(f"{path}: format {img.format} is not accepted; use PNG or JPEG")
            if img.width * img.height > MAX_PIXELS:
                raise ImageInputError(f"{path}: {img.width}x{img.height} is too large (max {MAX_PIXELS} pixels)")
            img.load()
            return ensure_rgb(img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ImageInputError(f"{path}: unreadable image ({err})") from err


def ensure_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of any PIL mode; transparent pixels are composited on white."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / max(arr.max(), 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def fit_to_model(img: Image.Image, resolution: int, what: str = "image", resize: bool = True) -> Image.Image:
    """Check or convert an image to the model's square resolution.

    A square image of another size is resized (Lanczos); a non-square one is refused, since
    cropping could cut away the very part that must be forgotten.
    """
    img = ensure_rgb(img)
    if img.size == (resolution, resolution):
        return img
    if img.width != img.height:
        raise ImageInputError(
            f"the {what} is {img.width}x{img.height}; the model works on square "
            f"{resolution}x{resolution} images: crop it to a square first"
        )
    if not resize:
        raise ImageInputError(f"the {what} is {img.width}x{img.height}, expected {resolution}x{resolution}")
    return img.resize((resolution, resolution), Image.LANCZOS)


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL list -> float tensor (N, 3, H, W) in [-1, 1], the VAE's input range."""
    arr = np.stack([np.asarray(ensure_rgb(i), dtype=np.float32) / 127.5 - 1.0 for i in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def to_pil(batch: torch.Tensor) -> list[Image.Image]:
    """Float tensor (N, 3, H, W) in [-1, 1] -> PIL list (rounded, clipped)."""
    arr = ((batch.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in arr]


def to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(ensure_rgb(img), dtype=np.uint8)
