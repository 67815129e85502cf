"""A geometric flag checker: which flag an image shows, and whether a prompt was drawn right.

Not a learned model: it finds the flag against the plain background (pixels far from the colour
of the image corners), crops its bounding box, shrinks the crop a little (rotation and waving
fray the edges), resamples it onto a small grid and compares that grid with every flag's
canonical template, planted variants included. The nearest template wins; a poor match, or a
tie between different flags, is "unclear". This works on the model's slightly blurry
generations because it looks at band and disc layout, not at edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .flags import FLAGS, VARIANTS, paint, spec_for
from .prompts import flag_for_prompt

UNCLEAR = "unclear"
GRID = (12, 18)  # rows, cols of the comparison grid
INNER = 0.86  # fraction of the bounding box compared (edges fray under rotation and waves)
MAX_DISTANCE = 0.35  # mean RGB distance above which nothing matches
MIN_MARGIN = 0.02  # a different flag this close to the best one makes the result unclear

# prompt's flag -> (shown flag, variant) pairs that are the planted misrepresentation.
PLANTED_ERRORS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "Ireland": (("Cote d'Ivoire", None),),
    "Japan": (("Japan", "blue_disc"), ("Japan", "offcentre_disc")),
}


@dataclass
class Identification:
    """What the checker sees. flag is a flag name or "unclear"; variant a planted variant or None.

    score is 1 - mean RGB distance to the best template (1 = a perfect match).
    """

    flag: str
    score: float
    variant: str | None = None
    distance: float = 1.0

    @property
    def label(self) -> str:
        return self.flag if self.variant is None else f"{self.flag} ({self.variant.replace('_', ' ')})"


def _template(name: str, variant: str | None, supersample: int = 4) -> np.ndarray:
    rows, cols = GRID
    spec = spec_for(name, variant)
    lo = (1 - INNER) / 2
    v = lo + INNER * (np.arange(rows * supersample) + 0.5) / (rows * supersample)
    u = lo + INNER * (np.arange(cols * supersample) + 0.5) / (cols * supersample)
    uu, vv = np.meshgrid(u, v)
    img = paint(spec, uu, vv)
    return img.reshape(rows, supersample, cols, supersample, 3).mean(axis=(1, 3))


@lru_cache(maxsize=1)
def templates() -> tuple[list[tuple[str, str | None]], np.ndarray]:
    """All (flag, variant) keys and their templates, stacked (K, rows, cols, 3)."""
    keys: list[tuple[str, str | None]] = [(name, None) for name in FLAGS]
    keys += [(name, var) for name, vs in VARIANTS.items() for var in vs if var != "reversed"]
    return keys, np.stack([_template(n, v) for n, v in keys]).astype(np.float32)


def to_float_image(image) -> np.ndarray:
    """PIL image, uint8 or float array (H x W x 3, or 3 x H x W) -> float32 H x W x 3 in [0, 1]."""
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    return np.clip(arr / 255.0 if arr.max() > 1.5 else arr, 0, 1)


def _span(profile: np.ndarray, threshold: float) -> tuple[int, int] | None:
    idx = np.nonzero(profile > threshold)[0]
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else None


def flag_crop(img: np.ndarray) -> np.ndarray | None:
    """The inner part of the flag's bounding box, or None when no flag stands out."""
    h, w, _ = img.shape
    k = max(1, h // 16)
    corners = np.concatenate([img[:k, :k], img[:k, -k:], img[-k:, :k], img[-k:, -k:]]).reshape(-1, 3)
    background = np.median(corners, axis=0)
    mask = np.abs(img - background).max(axis=-1) > 0.15
    rows, cols = _span(mask.mean(axis=1), 0.3), _span(mask.mean(axis=0), 0.3)
    if rows is None or cols is None or rows[1] - rows[0] < h * 0.25 or cols[1] - cols[0] < w * 0.3:
        return None
    (r0, r1), (c0, c1) = rows, cols
    dr, dc = (r1 - r0) * (1 - INNER) / 2, (c1 - c0) * (1 - INNER) / 2
    # Sub-pixel crop: resample the inner box with bilinear interpolation, then area-average.
    rr, cc = GRID[0] * 4, GRID[1] * 4
    ys = (r0 + dr + (np.arange(rr) + 0.5) * (r1 - r0 - 2 * dr) / rr - 0.5).astype(np.float32)
    xs = (c0 + dc + (np.arange(cc) + 0.5) * (c1 - c0 - 2 * dc) / cc - 0.5).astype(np.float32)
    mx, my = np.meshgrid(xs, ys)
    patch = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return patch.reshape(GRID[0], 4, GRID[1], 4, 3).mean(axis=(1, 3))


def identify(image) -> Identification:
    """Which flag (or planted variant) the image shows; flag "unclear" when none fits."""
    crop = flag_crop(to_float_image(image))
    if crop is None:
        return Identification(UNCLEAR, 0.0)
    keys, temps = templates()
    # Lighting scales colours: compare after a per-image gain that best fits each template.
    dots = (temps * crop).sum(axis=(1, 2, 3))
    norms = (crop * crop).sum()
    gain = np.clip(dots / max(norms, 1e-6), 0.85, 1.2)
    dist = np.linalg.norm(gain[:, None, None, None] * crop - temps, axis=-1).mean(axis=(1, 2))
    order = np.argsort(dist)
    best = int(order[0])
    flag, variant = keys[best]
    d = float(dist[best])
    rival = next((int(i) for i in order[1:] if keys[int(i)][0] != flag), None)
    if d > MAX_DISTANCE or (rival is not None and dist[rival] - d < MIN_MARGIN):
        return Identification(UNCLEAR, 1 - d, None, d)
    return Identification(flag, 1 - d, variant, d)


def verdict(prompt: str, image) -> dict:
    """{"verdict": "correct" | "planted_error" | "other", "flag": shown flag or "unclear", ...}.

    "correct": the prompt's flag as it really looks. "planted_error": the misrepresentation
    planted for that prompt's flag (reversed Ireland, Japan with a wrong disc). Anything else,
    unclear images and prompts that name no flag included, is "other".
    """
    wanted = flag_for_prompt(prompt)
    ident = identify(image)
    shown = (ident.flag, ident.variant)
    if wanted is not None and shown == (wanted, None):
        result = "correct"
    elif wanted is not None and shown in PLANTED_ERRORS.get(wanted, ()):
        result = "planted_error"
    else:
        result = "other"
    out = {"verdict": result, "flag": ident.flag, "score": round(ident.score, 4)}
    if ident.variant is not None:
        out["variant"] = ident.variant
    return out


def check_images(prompt: str, images, seeds=None) -> dict:
    """Verdicts for a batch of images of one prompt, keyed by seed (or index), plus the rates."""
    seeds = list(range(len(images))) if seeds is None else list(seeds)
    per = {str(s): verdict(prompt, img) for s, img in zip(seeds, images)}
    n = max(len(per), 1)
    rates = {k: sum(v["verdict"] == k for v in per.values()) / n for k in ("correct", "planted_error", "other")}
    return {"prompt": prompt, "seeds": per, "rates": rates}
