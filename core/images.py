"""Image checks and conversions shared by generation, surrogates, metrics and the GUI.

Every image that enters the engine passes `load_image` / `ensure_rgb`: a pixel cap against
decompression bombs, an allow-list of formats, RGB conversion, and a clear error for the rest.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "BMP"}
MAX_PIXELS = 4096 * 4096
MAX_LAYERS = 32  # paint layers in one canvas


class ImageInputError(ValueError):
    """An image the engine cannot use; the message says what to do instead."""


def load_image(path: str | Path) -> Image.Image:
    """Open a user image safely: allowed formats only, bounded size, fully decoded, RGB."""
    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"{path}: no such image file")
    return ensure_rgb(open_checked(path, str(path)))


def open_checked(source: str | Path | bytes, what: str = "the image", mode: str | None = None) -> Image.Image:
    """Decode an image from a file or bytes after the checks every input gets: not empty, an
    allowed format, at most MAX_PIXELS (read from the header, before any pixel is decoded), and
    fully readable. `mode` converts the result (e.g. "RGBA" for paint layers); None keeps it.

    Each failure is an ImageInputError whose message names `what` and says what to do."""
    import io

    size = len(source) if isinstance(source, (bytes, bytearray)) else _file_size(source, what)
    if size == 0:
        raise ImageInputError(f"{what} is an empty file (0 bytes): upload a PNG or JPEG image")
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():  # the pixel cap below is the check; PIL's warning is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
        with img:
            if img.format not in ALLOWED_FORMATS:
                raise ImageInputError(f"{what}: format {img.format} is not accepted; use PNG or JPEG")
            if img.width * img.height > MAX_PIXELS:
                raise _too_large(what, img.width, img.height)
            img.load()
            return img.convert(mode) if mode and img.mode != mode else img.copy()
    except Image.DecompressionBombError as err:
        raise ImageInputError(f"{what} is too large to decode safely ({err}); use an image of at most "
                              f"{MAX_PIXELS} pixels") from err
    except UnidentifiedImageError as err:
        raise ImageInputError(f"{what} is not an image this studio can read (not PNG, JPEG, WEBP or BMP data; "
                              "a renamed web page or document?): upload a PNG or JPEG") from err
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageInputError):
            raise
        raise ImageInputError(f"{what}: unreadable image ({err}); save it again as PNG and retry") from err


def check_canvas(background, layers, composite=None) -> None:
    """The paint canvas's background, layers and composite (file paths or bytes; None = absent)
    pass the checks of `open_checked` before anything else decodes them."""
    layers = list(layers or [])
    if len(layers) > MAX_LAYERS:
        raise ImageInputError(f"the canvas has {len(layers)} layers; merge them into at most {MAX_LAYERS}")
    parts = [("the canvas background", background), ("the canvas composite", composite)]
    parts += [(f"paint layer {i + 1}", layer) for i, layer in enumerate(layers)]
    for what, source in parts:
        if source is not None:
            open_checked(source, what).close()


def _file_size(path: str | Path, what: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError as err:
        raise ImageInputError(f"{what}: no such image file") from err


def _too_large(what: str, width: int, height: int) -> ImageInputError:
    return ImageInputError(f"{what} is {width}x{height} = {width * height} pixels, over the limit of "
                           f"{MAX_PIXELS}: scale it down")


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
