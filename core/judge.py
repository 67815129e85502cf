"""The forgetting judge: has the model forgotten the flagged output? Decided from what any model offers.

A user of SD3 (or any folder or hub model) has the flagged image, the surrogate they made, and the
model. No ground-truth checker. The judge answers three questions with those alone:

1. **The flagged seed** (`judge_flagged_seed`): the re-render of the flagged seed is compared with the
   flagged image and with the surrogate *inside the region the user changed* (pixels where surrogate
   and flagged differ). Its score is the progress from flagged to surrogate there,

       score = d(render, flagged) / (d(render, flagged) + d(render, surrogate))   in [0, 1]

   (0 = still the flagged image, 1 = the surrogate), with d the mean absolute RGB difference over
   the region. Forgotten when score >= FLAGGED_SEED_THRESHOLD (0.7; UnlearnConfig.forget_threshold)
   and, where the model asks for it (UnlearnConfig.forget_projection; the faces world), when the
   re-render also went far enough along the line flagged -> surrogate (`progress`, "projection_centred"):
   a blurred copy of the flagged face is far from both images, which lifts the ratio, not the projection.
   On the flags world's tuning seeds (0-63) the checker called the flagged seed right from about 0.7
   on; at 0.5-0.65 it saw half-way blends. How much moved *outside* the region is reported beside it.
   Where the fix asks for it (UnlearnConfig.mode_guard; `with_modes`), a re-render that is a near copy of
   a picture the model repeats (a mode of its own outputs, e.g. another memorised face) is not forgotten
   either, unless the surrogate is a near copy of that picture too: trading one memorised picture for
   another is no fix, however far the region moved.
2. **Any other image** (`shows_error`): a copy-detection descriptor compares it with the flagged
   image and the surrogate. It shows the error when it is a near copy of the flagged image
   (similarity >= the descriptor's copy threshold) and nearer the flagged image than the surrogate.
3. **Look-alike prompts** (`lookalike_prompts`): other prompts whose own outputs show that picture
   (a reversed Irish flag *is* Cote d'Ivoire's flag). A fix drags them along first, so the remember
   set holds more of them; they are never filtered out, since for their own prompt the picture is right.

Descriptors, best first (`pick_descriptor`), and the name of the one used travels with every answer:
  - "sscd": SSCD copy detection when its TorchScript file is in the local cache (the paper's
    criterion, similarity 0.4);
  - "clip:<name>": the model's own CLIP image tower (the embedded world ships one; SD3 users may have
    openai/clip-vit-large-patch14 in their Hugging Face cache);
  - "thumbnail": a mean-centred 8x8 colour thumbnail, always available and crude: it sees layout and
    colour, not identity. Its threshold and CLIP's were chosen on tuning seeds 0-63 of the flags world
    (bench/results/heldout.md reports on seeds >= 1000).

What it cannot see: an error that lives in a few pixels the user did not paint over (the region is
the user's edit), an error that a descriptor does not encode (thumbnail: anything below 4 px of a
32 px image), and whether the new output is *plausible* - only that it left the flagged image for the
surrogate. The world's checker, where one exists, is an evaluator for benches and tests only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .images import ensure_rgb

EmbedFn = Callable[[Sequence[Image.Image]], np.ndarray]  # images -> (N, D) unit rows

FLAGGED_SEED_THRESHOLD = 0.7  # region progress flagged -> surrogate; chosen on tuning seeds 0-63 (module docstring)
REGION_MIN_DIFF = 0.1  # a pixel belongs to the user's edit when surrogate and flagged differ this much (0..1)
REGION_MIN_FRACTION = 0.005  # below this share of pixels, the edit is too faint to localise: use all pixels
# How far a re-render went from the flagged image toward the surrogate inside the region (0 = the
# flagged image, 1 = the surrogate), several ways; `progress` computes each, FlaggedSeedVerdict.score
# is "l1_ratio". Compared on the faces world's tuning seeds by bench/faces_judge_score.py.
SCORE_KINDS = ("l1_ratio", "l2_ratio", "projection", "projection_centred")
LOOKALIKE_MIN_FRACTION = 0.5  # a prompt is a look-alike when this share of its probe outputs shows the picture
COPY_THRESHOLDS = {  # similarity to the flagged image at and above which an output is a near copy
    "sscd": 0.4,  # the paper's criterion (Pizzi et al. 2022 use 0.4-0.5 for copies)
    "clip": 0.9,  # chosen on the flags world's tuning seeds 0-63 (see module docstring)
    "thumbnail": 0.6,  # idem
}
# A model may carry its own, measured on its tuning seeds (ModelInfo.copy_thresholds; the faces
# world: scripts/build_faces_model.py), since what "near copy" means depends on its images.


@dataclass(frozen=True)
class Descriptor:
    """A copy-detection embedding and the threshold that goes with it."""

    name: str  # "sscd" | "clip:<name>" | "thumbnail"
    embed: EmbedFn
    copy_threshold: float
    note: str = ""  # why a better descriptor was not used


@dataclass
class FlaggedSeedVerdict:
    """The judge's answer for a re-render of the flagged seed; numbers, not only a yes/no."""

    score: float  # progress from flagged (0) to surrogate (1) inside the changed region
    threshold: float
    forgotten: bool
    to_flagged: float  # mean |render - flagged| inside the region (0..1)
    to_surrogate: float  # mean |render - surrogate| inside the region
    outside_change: float  # mean |render - flagged| outside the region: collateral at the seed itself
    region_fraction: float  # share of pixels in the region
    copy_similarity: float  # descriptor similarity of the render to the flagged image
    descriptor: str
    projection: float = 0.0  # progress by 'projection_centred' (robust to blur and noise)
    projection_threshold: float = 0.0  # its bar; 0 = not asked (UnlearnConfig.forget_projection)
    mode_similarity: float | None = None  # highest similarity to a picture the model repeats; None = not asked
    mode_threshold: float | None = None  # at and above it the render is that picture (the copy threshold)

    def to_dict(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def thumbnail_embed(images: Sequence[Image.Image], size: int = 8) -> np.ndarray:
    """Mean-centred, unit-norm size x size RGB thumbnails: layout and colour, no learned features."""
    rows = []
    for img in images:
        a = np.asarray(ensure_rgb(img).resize((size, size), Image.BILINEAR), np.float64) / 255.0
        a = (a - a.mean()).ravel()
        rows.append(a / max(np.linalg.norm(a), 1e-8))
    return np.stack(rows)


def copy_threshold(kind: str, model=None) -> float:
    """The near-copy threshold of a descriptor kind: the model's measured one, else the default."""
    info = getattr(model, "info", None)
    measured = (getattr(info, "copy_thresholds", None) or {}).get(kind)
    return float(measured) if measured is not None else COPY_THRESHOLDS[kind]


def has_near_copy(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) bool: rows whose embedding has a near copy among the other rows, i.e. what the model draws
    from more than one seed (a memorised picture, a mode)."""
    sim = embeddings @ embeddings.T
    np.fill_diagonal(sim, -1.0)
    return (sim >= threshold).any(axis=1)


def pick_descriptor(model=None, device: str = "cpu") -> Descriptor:
    """The best copy descriptor available offline: SSCD, then the model's CLIP, then thumbnails."""
    from .metrics.sscd import SscdEmbedder, find_sscd_model

    notes = []
    path, reason = find_sscd_model()
    if path is not None:
        try:
            sscd = SscdEmbedder(path, device=device)
            return Descriptor("sscd", lambda imgs: sscd(list(imgs)).numpy(), copy_threshold("sscd", model))
        except Exception as err:  # a broken file is reported, never silently trusted
            notes.append(f"SSCD file {path} could not be loaded: {err}")
    else:
        notes.append(f"SSCD unavailable: {reason}")
    if model is not None:
        from .metrics.clip_space import clip_embedder
        from .models.loading import ModelNotFoundError

        try:
            embed = clip_embedder(model)
            return Descriptor(f"clip:{model.info.clip_model}", embed, copy_threshold("clip", model), "; ".join(notes))
        except ModelNotFoundError as err:
            notes.append(f"no CLIP: {err}")
    return Descriptor("thumbnail", thumbnail_embed, copy_threshold("thumbnail", model), "; ".join(notes))


def likely_lookalikes(model, flagged: Image.Image, outputs: dict[str, Sequence[Image.Image]]) -> list[str]:
    """Look-alike prompts as far as they can be told before the surrogate exists: prompts (keys) whose
    outputs are mostly near copies of the flagged image. `ForgettingJudge.lookalike_prompts` also asks
    them to be nearer the flagged image than the surrogate; `Studio.prepare_fix` draws ahead for these."""
    d = pick_descriptor(model, str(getattr(model, "device", "cpu")))
    e_flagged = np.asarray(d.embed([flagged]), np.float64)[0]
    found = []
    for prompt, images in outputs.items():
        if images:
            near = np.asarray(d.embed(list(images)), np.float64) @ e_flagged >= d.copy_threshold
            if np.mean(near) >= LOOKALIKE_MIN_FRACTION:
                found.append(prompt)
    return found


@dataclass(frozen=True)
class SurrogateCopyCheck:
    """Is the surrogate itself still a near copy of the flagged image, by the judge's descriptor? Then
    a fix toward it teaches the model the same picture again: the copy measure a fix is judged by
    cannot see it forgotten (core/surrogates/checks.py words the warning per kind of surrogate)."""

    similarity: float  # descriptor similarity of the surrogate to the flagged image
    threshold: float  # the descriptor's near-copy threshold
    descriptor: str

    @property
    def near_copy(self) -> bool:
        return self.similarity >= self.threshold

    def to_dict(self) -> dict:
        return {"similarity": round(self.similarity, 5), "threshold": self.threshold, "descriptor": self.descriptor,
                "near_copy": self.near_copy}


def check_surrogate_copy(model, flagged: Image.Image, surrogate: Image.Image,
                         descriptor: Descriptor | None = None) -> SurrogateCopyCheck:
    """The surrogate against the flagged image with `descriptor` (default: the model's best)."""
    d = descriptor or pick_descriptor(model, str(getattr(model, "device", "cpu")))
    a, b = d.embed([ensure_rgb(flagged), ensure_rgb(surrogate)])
    return _copy_check(a, b, d)


def _copy_check(e_flagged, e_surrogate, d: Descriptor) -> SurrogateCopyCheck:
    """The record of one check from the two embeddings (unit vectors, so their dot is the cosine)."""
    similarity = float(np.asarray(e_flagged, np.float64) @ np.asarray(e_surrogate, np.float64))
    return SurrogateCopyCheck(similarity, float(d.copy_threshold), d.name)


class ForgettingJudge:
    """Judges one flagged instance: its flagged image, its surrogate and a copy descriptor."""

    def __init__(self, flagged: Image.Image, surrogate: Image.Image, descriptor: Descriptor,
                 threshold: float = FLAGGED_SEED_THRESHOLD, projection_threshold: float = 0.0):
        self.flagged = _float(flagged)
        self.surrogate = _float(surrogate)
        if self.flagged.shape != self.surrogate.shape:
            raise ValueError(f"flagged {self.flagged.shape[:2]} and surrogate {self.surrogate.shape[:2]} differ in size")
        self.descriptor = descriptor
        self.threshold = threshold
        self.projection_threshold = projection_threshold
        diff = np.abs(self.surrogate - self.flagged).max(axis=-1)
        region = diff >= REGION_MIN_DIFF
        if region.mean() < REGION_MIN_FRACTION:  # a faint, everywhere edit (e.g. mild noise): judge all pixels
            region = diff > 0
        if not region.any():
            raise ValueError("the surrogate is identical to the flagged image: nothing to judge")
        self.region = region
        refs = descriptor.embed([flagged, surrogate])
        self._e_flagged, self._e_surrogate = refs[0], refs[1]
        self._modes: np.ndarray | None = None  # embeddings of pictures the model repeats (with_modes)

    @classmethod
    def for_model(cls, model, flagged: Image.Image, surrogate: Image.Image,
                  threshold: float = FLAGGED_SEED_THRESHOLD, projection_threshold: float = 0.0) -> "ForgettingJudge":
        return cls(flagged, surrogate, pick_descriptor(model, str(getattr(model, "device", "cpu"))), threshold,
                   projection_threshold)

    # -- 1. the flagged seed ----------------------------------------------------------------------
    def judge_flagged_seed(self, render: Image.Image) -> FlaggedSeedVerdict:
        r = self._render(render)
        d_f, d_s = self._distances(r, 1)
        score = _ratio(d_f, d_s)
        outside = float(np.abs(r - self.flagged).mean(axis=-1)[~self.region].mean()) if (~self.region).any() else 0.0
        sim = float(self.similarity([render])[0][0])
        projection = self._progress(r, "projection_centred")
        forgotten = score >= self.threshold and (self.projection_threshold <= 0 or projection >= self.projection_threshold)
        mode_sim = None
        if self._modes is not None:
            e_render = np.asarray(self.descriptor.embed([render]), np.float64)[0]
            mode_sim = float((self._modes @ e_render).max(initial=-1.0))
            forgotten = forgotten and mode_sim < self.descriptor.copy_threshold
        return FlaggedSeedVerdict(score, self.threshold, forgotten, d_f, d_s, outside, float(self.region.mean()), sim,
                                  self.descriptor.name, projection, self.projection_threshold, mode_sim,
                                  None if mode_sim is None else self.descriptor.copy_threshold)

    def with_modes(self, outputs: Sequence[Image.Image]) -> int:
        """Refuse swaps from now on: of the model's own `outputs` (the remember set), those with a near
        copy among the others are pictures the model repeats; a re-render of the flagged seed that is a
        near copy of one is not forgotten. Pictures the surrogate or the flagged image is a near copy of
        are left out (the user asked for the first; the second is not forgotten anyway). Returns how
        many outputs count as repeated pictures."""
        t = self.descriptor.copy_threshold
        e = np.asarray(self.descriptor.embed(list(outputs)), np.float64) if outputs else np.zeros((0, 0))
        repeated = has_near_copy(e, t) & (e @ self._e_surrogate < t) & (e @ self._e_flagged < t) if len(e) else \
            np.zeros(0, bool)
        self._modes = e[repeated] if repeated.any() else np.zeros((0, len(self._e_flagged)))
        return int(repeated.sum())

    def progress(self, render: Image.Image, kind: str = "l1_ratio") -> float:
        """Progress of `render` from the flagged image (0) to the surrogate (1) inside the region:
        - l1_ratio: d1(r, f) / (d1(r, f) + d1(r, s)), mean absolute differences (the judge's score);
        - l2_ratio: the same with root mean squared differences;
        - projection: <r - f, s - f> / |s - f|^2, the share of the way along the line from f to s;
          noise or blur across that line adds nothing (a ratio drifts to 0.5 when r is far from both);
        - projection_centred: projection after taking each image's mean brightness off."""
        if kind not in SCORE_KINDS:
            raise ValueError(f"score kind {kind!r}: choose one of {', '.join(SCORE_KINDS)}")
        return self._progress(self._render(render), kind)

    def _render(self, render: Image.Image) -> np.ndarray:
        r = _float(render)
        if r.shape != self.flagged.shape:
            raise ValueError(f"render {r.shape[:2]} and flagged {self.flagged.shape[:2]} differ in size")
        return r

    def _distances(self, r: np.ndarray, p: int) -> tuple[float, float]:
        """(to the flagged image, to the surrogate): the p-mean of |differences| inside the region, each
        pixel's channels averaged first."""
        rr = r[self.region]
        return tuple(float((np.abs(rr - x[self.region]) ** p).mean(axis=-1).mean() ** (1 / p))
                     for x in (self.flagged, self.surrogate))

    def _progress(self, r: np.ndarray, kind: str) -> float:
        if kind in ("l1_ratio", "l2_ratio"):
            return _ratio(*self._distances(r, 1 if kind == "l1_ratio" else 2))
        f, s = self.flagged, self.surrogate
        if kind == "projection_centred":
            r, f, s = r - r.mean(), f - f.mean(), s - s.mean()
        axis = (s - f)[self.region].ravel().astype(np.float64)
        norm = float(axis @ axis)
        return float((r - f)[self.region].ravel().astype(np.float64) @ axis / norm) if norm > 0 else 0.0

    def surrogate_check(self) -> SurrogateCopyCheck:
        """The surrogate against the flagged image (check_surrogate_copy), from the embeddings held."""
        return _copy_check(self._e_flagged, self._e_surrogate, self.descriptor)

    # -- 2. any other image -----------------------------------------------------------------------
    def similarity(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """(similarity to the flagged image, similarity to the surrogate) per image."""
        if not images:
            return np.zeros(0), np.zeros(0)
        e = np.asarray(self.descriptor.embed(list(images)), np.float64)
        return e @ self._e_flagged, e @ self._e_surrogate

    def shows_error(self, images: Sequence[Image.Image]) -> list[bool]:
        """Near copies of the flagged image that are nearer it than the surrogate."""
        to_f, to_s = self.similarity(images)
        return [bool(f >= self.descriptor.copy_threshold and f > s) for f, s in zip(to_f, to_s)]

    # -- 3. look-alike prompts --------------------------------------------------------------------
    def lookalike_prompts(self, outputs: dict[str, Sequence[Image.Image]]) -> list[str]:
        """Prompts (keys) whose outputs mostly show the flagged picture."""
        found = []
        for prompt, images in outputs.items():
            shown = self.shows_error(list(images))
            if shown and np.mean(shown) >= LOOKALIKE_MIN_FRACTION:
                found.append(prompt)
        return found

    def describe(self) -> dict:
        return {"descriptor": self.descriptor.name, "copy_threshold": self.descriptor.copy_threshold,
                "flagged_seed_threshold": self.threshold, "projection_threshold": self.projection_threshold,
                "region_fraction": round(float(self.region.mean()), 4),
                "repeated_pictures": None if self._modes is None else len(self._modes),
                "descriptor_note": self.descriptor.note}


def _ratio(d_f: float, d_s: float) -> float:
    return d_f / (d_f + d_s) if d_f + d_s > 0 else 0.0


def _float(img: Image.Image) -> np.ndarray:
    return np.asarray(ensure_rgb(img), np.float32) / 255.0
