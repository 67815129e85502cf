"""The memorised-faces world: real LFW crops, four of them memorised, and a copy matcher.

Data: scikit-image's `lfw_subset()` (200 grey 25x25 Labeled-Faces-in-the-Wild crops; the first
100 are faces), resized to 32x32. The embedded DDPM (assets/faces-ddpm) saw the four MEMORISED
faces many times each and every other face once per epoch (augmented), so it copies the four and
draws blends of the rest.

Ground truth is a nearest-training-face matcher. The 100 faces correlate strongly with each other
(all are centred grey faces: the nearest other face of a face correlates at 0.70 median), so the
matcher compares *residuals*: each image standardised, its component along the mean face removed,
then the correlation with each face's residual, best over +-1 pixel shifts. An output is "a copy
of face i" when that score is >= COPY_THRESHOLD and beats the runner-up by COPY_MARGIN (a blend of
two faces scores high on both). Verdicts follow
the flags world's contract: `planted_error` = a copy of a memorised face (which one in `flag`),
`correct` = a novel face (no copy, but face-like), `other` = anything else (a copy of a
non-memorised face, or not a face).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SIZE = 32
N_FACES = 100
MEMORISED = (3, 27, 48, 81)  # indices into the 100 faces (fixed by the build)
COPY_THRESHOLD = 0.80  # residual correlation with a training face above which an output copies it
COPY_MARGIN = 0.20  # ... and by which it must beat the second-nearest face
# Correlation with the mean face above which a non-copy counts as a face (measured: real faces
# median 0.63, the 100 non-face crops median -0.11, 95th percentile 0.22).
FACE_THRESHOLD = 0.25


def face_name(i: int) -> str:
    return f"face {i}"


@lru_cache(maxsize=1)
def lfw_images() -> np.ndarray:
    """All 200 lfw_subset crops resized to SIZE x SIZE, float32 in [0, 1], shape (200, S, S)."""
    import cv2
    from skimage.data import lfw_subset

    raw = lfw_subset().astype(np.float32)
    return np.stack([cv2.resize(im, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for im in raw]).clip(0, 1)


def faces() -> np.ndarray:
    return lfw_images()[:N_FACES]


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def _residuals(x: np.ndarray, mean_face: np.ndarray) -> np.ndarray:
    s = _standardise(x)
    r = s - (s @ mean_face)[:, None] * mean_face[None]
    return r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-8)


@lru_cache(maxsize=1)
def _refs() -> tuple[np.ndarray, np.ndarray]:
    f = faces()
    mean_face = _standardise(f.mean(axis=0, keepdims=True))[0]
    return _residuals(f, mean_face), mean_face


def to_grey(image) -> np.ndarray:
    """PIL image or array -> (SIZE, SIZE) float in [0, 1]."""
    import cv2

    arr = np.asarray(image.convert("L") if hasattr(image, "convert") else image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr.mean(axis=-1) if arr.shape[-1] in (1, 3) else arr[0]
    if arr.max() > 1.5:
        arr = arr / 255.0
    if arr.shape != (SIZE, SIZE):
        arr = cv2.resize(arr, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return arr


def correlations(images) -> tuple[np.ndarray, np.ndarray]:
    """(N, 100) residual correlation with each face (best of +-1 px shifts) and (N,) correlation
    with the mean face."""
    x = np.stack([to_grey(im) for im in images])
    refs, mean_face = _refs()
    best = None
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            c = _residuals(np.roll(x, (dy, dx), axis=(1, 2)), mean_face) @ refs.T
            best = c if best is None else np.maximum(best, c)
    return best, _standardise(x) @ mean_face


def match_many(images) -> list[dict]:
    corr, mean_corr = correlations(images)
    order = np.argsort(corr, axis=1)
    out = []
    for k in range(len(corr)):
        best, second = int(order[k, -1]), int(order[k, -2])
        score, margin = float(corr[k, best]), float(corr[k, best] - corr[k, second])
        out.append({"face": best, "score": score, "margin": margin,
                    "copy": score >= COPY_THRESHOLD and margin >= COPY_MARGIN, "face_like": float(mean_corr[k])})
    return out


def match(image) -> dict:
    """{"face": nearest face, "score", "margin" over the runner-up, "copy": bool, "face_like"}."""
    return match_many([image])[0]


def verdict(image, m: dict | None = None) -> dict:
    """The flags world's verdict contract for the faces world (see the module docstring)."""
    m = m or match(image)
    if m["copy"] and m["face"] in MEMORISED:
        result, shown = "planted_error", face_name(m["face"])
    elif m["copy"]:
        result, shown = "other", face_name(m["face"])
    elif m["face_like"] >= FACE_THRESHOLD:
        result, shown = "correct", "novel face"
    else:
        result, shown = "other", "unclear"
    return {"verdict": result, "flag": shown, "score": round(m["score"], 4), "nearest_face": m["face"]}


def copy_rates(verdicts: list[dict]) -> dict[str, float]:
    """Share of outputs that copy each memorised face."""
    n = max(len(verdicts), 1)
    return {face_name(i): sum(v["flag"] == face_name(i) for v in verdicts) / n for i in MEMORISED}


def check_images(images, seeds=None) -> dict:
    """Verdicts keyed by seed, the verdict rates, and each memorised face's copy rate."""
    seeds = list(range(len(images))) if seeds is None else list(seeds)
    found = match_many(list(images)) if len(images) else []
    per = {str(s): verdict(img, m) for s, img, m in zip(seeds, images, found)}
    n = max(len(per), 1)
    rates = {k: sum(v["verdict"] == k for v in per.values()) / n for k in ("correct", "planted_error", "other")}
    return {"prompt": "", "seeds": per, "rates": rates, "copy_rates": copy_rates(list(per.values()))}


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A held-out perturbation of a (SIZE, SIZE) image: shift, gain/offset, blur or noise."""
    import cv2

    dy, dx = rng.integers(-1, 2, size=2)
    out = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
    out = out * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out.astype(np.float32), (3, 3), 0.7)
    out = out + rng.normal(0, 0.04, out.shape)
    return np.clip(out, 0, 1).astype(np.float32)


def matcher_accuracy(n_aug: int = 10, seed: int = 0) -> dict:
    """How often the matcher names the right face for held-out augmentations of each face, how often
    it calls a non-face a copy, and how often it calls a blend of two faces a copy."""
    rng = np.random.default_rng(seed)
    f, nonfaces = faces(), lfw_images()[N_FACES:]
    labels = np.repeat(np.arange(N_FACES), n_aug)
    found = match_many([augment(f[i], rng) for i in labels])
    hits, total = sum(m["copy"] and m["face"] == i for m, i in zip(found, labels)), len(labels)
    nonface_copies = sum(m["copy"] for m in match_many(list(nonfaces)))
    pairs = rng.choice(N_FACES, size=(200, 2))
    blends = [0.5 * f[a] + 0.5 * f[b] for a, b in pairs if a != b]
    blend_copies = sum(m["copy"] for m in match_many(blends))
    return {"augmented_faces_matched": float(hits / total), "n_augmented": total,
            "nonfaces_called_copy": float(nonface_copies / len(nonfaces)),
            "blends_called_copy": float(blend_copies / len(blends)), "n_blends": len(blends),
            "copy_threshold": COPY_THRESHOLD, "copy_margin": COPY_MARGIN}
