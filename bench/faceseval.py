"""Evaluating fixes on the embedded faces world, where the copy matcher gives a ground truth.

The faces world's counterpart of bench/worldeval.py, shared by faces_forget.py, faces_sequential.py,
faces_tune.py and table1.py:
  - find_face_instances: for each memorised face, the first seed (of the flag seeds) whose output
    copies it; the model has no prompt, so a flagged output is named by its seed alone;
  - make_surrogate: another face, a painted band over the eyes, or SDEdit of the flagged output;
  - FacesBase: base-model renders of the report seeds, made once, with the matcher's verdicts;
  - evaluate_face_fix: after a fix, the forgotten face's copy rate, the flagged seed, the other
    memorised faces' copy rates (relative change) and the SSIM of the novel outputs to the base.
The matcher only measures; the forgetting judge decides every fix (as in the studio).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from core.generate import Generated, generate
from core.metrics.integrity import ssim_pair
from core.studio import Studio
from core.unlearn.config import UnlearnConfig
from core.unlearn.run import FixResult
from core.world import faces as W

# other_seed_*: a simulated user of the studio's "Other seed" tab, three ways of picking (see _other_seed)
OTHER_SEED_POLICIES = ("nearest", "typical", "median")
# *_until_no_copy: a user who follows the studio's near-copy warning (Studio.check_surrogate): the band
# grows, or the strength rises, one step at a time until the judge's descriptor no longer calls the
# surrogate a near copy of the flagged image (the matcher plays no part).
PAINT_BANDS = ((10, 16), (9, 18), (8, 20), (7, 22), (6, 24), (5, 26), (4, 28), (3, 30))  # rows, cols 4-28
SDEDIT_STRENGTHS = (0.6, 0.7, 0.8, 0.9, 0.95)
PAINT_SDEDIT_STRENGTHS = (0.4, 0.5, *SDEDIT_STRENGTHS)  # SDEdit of the painting: the band already hides the eyes
SURROGATES = ("other_face", "paint", "sdedit", "paint_until_no_copy", "sdedit_until_no_copy",
              "paint_sdedit_until_no_copy",
              *(f"other_seed_{p}" for p in OTHER_SEED_POLICIES))
SURROGATE_WORDS = {"paint": "a grey band painted over the eyes", "other_face": "the nearest non-memorised training face",
                   "sdedit": "SDEdit of the flagged output at strength 0.6",
                   "paint_until_no_copy": f"a grey band over the eyes, grown (rows {PAINT_BANDS[0][0]}-{PAINT_BANDS[0][1]} "
                                          f"to {PAINT_BANDS[-1][0]}-{PAINT_BANDS[-1][1]}) until the studio no longer "
                                          "warns that the surrogate is a near copy",
                   "sdedit_until_no_copy": f"SDEdit of the flagged output, strength raised from {SDEDIT_STRENGTHS[0]} "
                                           f"({', '.join(map(str, SDEDIT_STRENGTHS[1:]))}) until the studio no longer "
                                           "warns that it is a near copy",
                   "paint_sdedit_until_no_copy": f"the grey band over the eyes, then SDEdit of that painting, strength "
                                                 f"raised from {PAINT_SDEDIT_STRENGTHS[0]} "
                                                 f"({', '.join(map(str, PAINT_SDEDIT_STRENGTHS[1:]))}) until the studio "
                                                 "no longer warns that it is a near copy",
                   **{f"other_seed_{p}": f"the studio's 'Other seed' ({p}): the model's output among seeds 5000-5127 "
                                         "that is no copy of the flagged one and has no near copy in that grid, "
                                         + {"nearest": "nearest the flagged one",
                                            "typical": "nearest the grid's mean (the model's most ordinary output)",
                                            "median": "nearest the flagged one among those no nearer than the "
                                                      "grid's median"}[p]
                                         for p in OTHER_SEED_POLICIES}}  # for reports
OTHER_SEED_GRID = range(5000, 5128)  # the simulated user's grid for "Other seed": no seed any bench measures
OTHER_FACES_TOLERANCE = 0.2  # issue 13: the other memorised faces' copy rates within +-20% (relative)
BATCH = 256


@dataclass(frozen=True)
class FaceInstance:
    """A copy of memorised face `face` drawn at `seed` (the prompt is always ""); face None: a novel
    output flagged as a control (bench/faces_control.py), no memorised face to forget."""

    face: int | None
    seed: int
    prompt: str = ""

    @property
    def target(self) -> str:
        return W.face_name(self.face) if self.face is not None else "novel"

    @property
    def label(self) -> str:
        return f"{self.target} seed {self.seed}"


def make_surrogate(kind: str, flagged: Image.Image, studio: Studio) -> tuple[Image.Image, dict]:
    if kind not in SURROGATES:
        raise ValueError(f"faces surrogate {kind!r}: choose one of {', '.join(SURROGATES)}")
    if kind == "other_face":
        m = W.correlations([flagged])[0][0]
        order = [int(i) for i in np.argsort(-m) if int(i) not in W.MEMORISED]
        face = W.faces()[order[0]]
        img = Image.fromarray((face * 255).round().astype(np.uint8)).convert("RGB")
        return img, {"kind": "other_face", "face": order[0]}
    if kind.startswith("other_seed_"):
        return _other_seed(flagged, studio, kind.removeprefix("other_seed_"))
    if kind == "paint":
        return band_surrogate(flagged, PAINT_BANDS[0])
    if kind == "paint_until_no_copy":
        return _until_no_copy(studio, flagged, "paint", [lambda rows=rows: band_surrogate(flagged, rows) for rows in PAINT_BANDS])
    if kind == "sdedit_until_no_copy":
        return _until_no_copy(studio, flagged, "sdedit", [lambda s=s: _sdedit(studio, flagged, s) for s in SDEDIT_STRENGTHS])
    if kind == "paint_sdedit_until_no_copy":
        painted, band = band_surrogate(flagged, PAINT_BANDS[0])
        return _until_no_copy(studio, flagged, "sdedit", [lambda s=s: _sdedit(studio, painted, s, band)
                                                          for s in PAINT_SDEDIT_STRENGTHS])
    return _sdedit(studio, flagged, 0.6)


def band_surrogate(flagged: Image.Image, rows: tuple[int, int]) -> tuple[Image.Image, dict]:
    """A grey band over the eyes (rows 10-16: the identity's most telling part), or over more."""
    arr = np.asarray(flagged).copy()
    arr[rows[0]:rows[1], 4:28] = 128
    return Image.fromarray(arr), {"kind": "paint", "band_rows": list(rows), "grey": 128}


def _sdedit(studio: Studio, source: Image.Image, strength: float, painted: dict | None = None) -> tuple[Image.Image, dict]:
    """SDEdit of the flagged output, or of a painting of it (`painted`: how it was painted)."""
    sur = studio.surrogate("sdedit", source, {"strength": strength, "seed": 0})
    return sur.image, {**sur.info, **({"painted": painted} if painted else {})}


def _until_no_copy(studio: Studio, flagged: Image.Image, kind: str, ladder) -> tuple[Image.Image, dict]:
    """The first surrogate of `ladder` (makers, mildest first) the studio does not warn about; the
    last one if it warns about all."""
    for i, make in enumerate(ladder):
        img, info = make()
        check, warning = studio.check_surrogate(flagged, img, kind)
        if warning is None:
            break
    return img, {**info, "copy_similarity": round(check.similarity, 4), "near_copy": check.near_copy, "ladder_step": i}


def _other_seed(flagged: Image.Image, studio: Studio, policy: str) -> tuple[Image.Image, dict]:
    """What a user of the studio's 'Other seed' tab picks, with the product's own copy descriptor
    (no matcher): in a grid of outputs, one that is no copy of the flagged output and has no near
    copy elsewhere in the grid (what the grid repeats may be memorised too); of those, by `policy`,
    the one nearest the grid's mean embedding (the studio's "Suggest a seed"), the one nearest the
    flagged output, or the nearest of those no nearer the flagged output than the grid's median."""
    from core.surrogates import SeedSurveyParams

    survey = studio.survey_other_seeds(flagged, SeedSurveyParams(start=OTHER_SEED_GRID.start,
                                                                 count=len(OTHER_SEED_GRID)))
    if policy == "typical":
        seed = survey.suggested
    else:
        ok = survey.usable & (survey.to_flagged <= np.median(survey.to_flagged) if policy == "median" else True)
        seed = survey.seeds[int(np.argmax(np.where(ok, survey.to_flagged, -np.inf)))]
    sur = studio.surrogate("other_seed", flagged, {"seed": seed})
    return sur.image, sur.info


def build_name(model) -> str:
    """The build a result belongs to: the model card's build report (steps, seed) and the weights' hash."""
    rep = Path(model.location) / "build_report.json"
    if rep.exists():
        r = json.loads(rep.read_text())
        return f"faces-ddpm {r['steps']} steps, seed {r['seed']}, weights {model.fingerprint()}"
    return f"{model.location}, weights {model.fingerprint()}"


def find_face_instances(studio: Studio, flag_seeds: Sequence[int], faces: Sequence[int] = W.MEMORISED,
                        per_face: int = 1, where: str | None = None) -> list[FaceInstance]:
    """The first `per_face` copies of each face among `flag_seeds` (with the studio's enabled fixes),
    face by face; faces with no copy there are left out (`where`: see pick_instances)."""
    gens = generate(studio.model, "", list(flag_seeds), batch_size=BATCH)
    return pick_instances([(g.seed, W.verdict(g.image)["flag"]) for g in gens], faces, per_face, where)


def pick_instances(found: Sequence[tuple[int, str]], faces: Sequence[int], per_face: int = 1,
                   where: str | None = None) -> list[FaceInstance]:
    """The first `per_face` seeds whose verdict names each face, face by face (`found`: (seed, verdict flag)
    in seed order). With `where` (the seeds as the user wrote them), a face with fewer copies is said."""
    out = []
    for face in faces:
        seeds = [seed for seed, flag in found if flag == W.face_name(face)][:per_face]
        if where is not None and len(seeds) < per_face:
            print(f"{len(seeds)} of {per_face} copies of {W.face_name(face)} among seeds {where}", flush=True)
        out += [FaceInstance(face, seed) for seed in seeds]
    return out


@dataclass
class FacesBase:
    """Base renders (all fixes off) of the report seeds, with the matcher's verdicts."""

    seeds: list[int]
    renders: list[Generated]
    verdicts: list[dict]
    copy_rates: dict[str, float]  # per memorised face
    verdict_rates: dict[str, float]  # per verdict (correct, planted_error, other)

    @classmethod
    def build(cls, studio: Studio, seeds: Sequence[int]) -> "FacesBase":
        with studio.fixes.disabled():
            gens = generate(studio.model, "", list(seeds), batch_size=BATCH)
        rep = W.check_images([g.image for g in gens])
        return cls(list(seeds), gens, list(rep["seeds"].values()), rep["copy_rates"], rep["rates"])

    def redraw(self, studio: Studio) -> list[Generated]:
        """The report seeds drawn again from the base renders' noises, with the fixes enabled now."""
        return generate(studio.model, "", self.seeds, noises=[g.noise for g in self.renders], batch_size=BATCH)

    @property
    def novel(self) -> list[int]:
        """Indices of the outputs the matcher calls novel faces (the integrity set)."""
        return [i for i, v in enumerate(self.verdicts) if v["verdict"] == "correct"]


@dataclass
class FaceFix:
    result: FixResult
    first_not_copy: int | None  # first monitor step where the matcher no longer sees a copy of the face
    seconds: float
    surrogate: Image.Image
    surrogate_info: dict


def fix_face(studio: Studio, inst: FaceInstance, config: UnlearnConfig, surrogate_kind: str = "paint") -> FaceFix:
    """Train one fix of `inst` with a `surrogate_kind` surrogate of its flagged output."""
    flagged = generate(studio.model, "", [inst.seed])[0].image
    surrogate, info = make_surrogate(surrogate_kind, flagged, studio)
    first: list[int] = []

    def on_monitor(step, img):
        if not first and W.verdict(img)["flag"] != inst.target:
            first.append(step)

    t0 = time.perf_counter()
    res = studio.unlearn("", flagged, surrogate, inst.seed, config, info, on_monitor=on_monitor)
    return FaceFix(res, first[0] if first else None, time.perf_counter() - t0, surrogate, info)


def retried_seeds(metrics: dict) -> list[int]:
    """The training seeds of the tries retry_seeds discarded before the published fix (its metrics.json)."""
    return [t["seed"] for t in metrics.get("earlier_tries", [])]


def retried_words(seeds: list[int]) -> str:
    """How the benches' lines name those tries: '' when there were none."""
    if not seeds:
        return ""
    many = len(seeds) > 1
    return (f"after {len(seeds)} discarded {'tries' if many else 'try'} at training seed{'s' if many else ''} "
            f"{', '.join(map(str, seeds))}")


def add_stack_args(ap, earlier: str, face: int) -> None:
    """The options of a bench that fixes one face on top of earlier face fixes."""
    ap.add_argument("--model", default="faces")
    ap.add_argument("--earlier", default=earlier, help="memorised faces fixed first, in this order")
    ap.add_argument("--face", type=int, default=face, help="the memorised face then fixed on top of them")
    ap.add_argument("--flag-seeds", default="0-255")


def fix_earlier_faces(studio: Studio, earlier: str, flag_seeds: Sequence[int]) -> list[tuple[FaceInstance, FaceFix]]:
    """Fix each face of `earlier` ("3,27") in turn at the studio's defaults with other-face surrogates,
    each flagged at its first copy among `flag_seeds` with the fixes before it on."""
    done = []
    for face in (int(f) for f in earlier.split(",") if f):
        inst = find_face_instances(studio, flag_seeds, faces=[face])[0]
        done.append((inst, fix_face(studio, inst, studio.default_config(), "other_face")))
    return done


def write_lines(out: Path, name: str, lines: Sequence[str], data: dict | None = None) -> None:
    """A faces bench's markdown: written to out/<name>.md and printed; `data`, if given, to out/<name>.json."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    if data is not None:
        (out / f"{name}.json").write_text(json.dumps(data, indent=1))
    print("\n".join(lines))


def evaluate_face_fix(studio: Studio, inst: FaceInstance, base: FacesBase, fix_names: Sequence[str]) -> dict:
    """The matcher's figures for the model with exactly `fix_names` on, against `base`."""
    with studio.fixes.only(list(fix_names)):
        after = base.redraw(studio)
        flagged_after = W.verdict(generate(studio.model, "", [inst.seed])[0].image)
    rep = W.check_images([g.image for g in after])
    rate_after, verdicts_after = rep["copy_rates"], list(rep["seeds"].values())
    before = base.copy_rates
    unchanged = [a["verdict"] == b["verdict"] and a["flag"] == b["flag"]
                 for s, a, b in zip(base.seeds, verdicts_after, base.verdicts) if s != inst.seed]
    rel = {k: rate_after[k] / before[k] - 1 for k in before if k != inst.target and before[k]}
    ssims = [ssim_pair(base.renders[i].image, after[i].image) for i in base.novel]
    return {
        "flagged_fixed": flagged_after["flag"] != inst.target,
        "flagged_seed_after": flagged_after,
        "face_rate_before": before.get(inst.target),
        "face_rate_after": rate_after.get(inst.target),
        "copy_rate_after": rate_after,
        "verdict_rates_after": rep["rates"],
        "verdicts_unchanged": float(np.mean(unchanged)) if unchanged else None,
        "other_faces_relative_change": rel,
        "other_faces_max_change": max(map(abs, rel.values())) if rel else None,
        "other_faces_kept": float(np.mean([abs(v) <= OTHER_FACES_TOLERANCE for v in rel.values()])) if rel else None,
        "ssim_mean": float(np.mean(ssims)) if ssims else None,
        "n_novel_outputs": len(ssims),
    }
