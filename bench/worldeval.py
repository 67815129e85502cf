"""Evaluating fixes on the embedded flags world, where the checker gives a ground truth.

Shared by table1.py, ablations.py and sequential.py:
  - find_instances: misrepresented seeds of the planted prompts (the things to fix);
  - BaseCache: base-model renders of every probe seed and prompt, made once;
  - evaluate_fix: after a fix, is the flagged seed right, did correct seeds stay correct, did
    other prompts keep their verdicts, how far did pixels move (SSIM), and did the fix spread to
    the prompt's other misrepresented seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from core.compare import integrity_pair, mean_abs_diff
from core.generate import Generated, generate
from core.metrics.clip_space import clip_fd
from core.metrics.lpips_metric import lpips
from core.studio import Studio
from core.unlearn.config import UnlearnConfig

PLANTED_PROMPTS = ("ireland flag", "japan flag")
CONTROL_PROMPTS = ("italy flag", "cote d'ivoire flag", "france flag", "germany flag", "sweden flag", "bangladesh flag")


@dataclass
class Instance:
    prompt: str
    seed: int


@dataclass
class BaseCache:
    """Base renders (all fixes off) per prompt, with verdicts."""

    seeds: list[int]
    renders: dict[str, list[Generated]] = field(default_factory=dict)
    verdicts: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, studio: Studio, prompts: Sequence[str], seeds: Sequence[int]) -> "BaseCache":
        cache = cls(list(seeds))
        with studio.fixes.disabled():
            for p in prompts:
                gens = generate(studio.model, p, cache.seeds)
                cache.renders[p] = gens
                cache.verdicts[p] = [studio.check(p, g.image)["verdict"] for g in gens]
        return cache


def find_instances(cache: BaseCache, prompts: Sequence[str] = PLANTED_PROMPTS, per_prompt: int = 2) -> list[Instance]:
    out = []
    for p in prompts:
        bad = [s for s, v in zip(cache.seeds, cache.verdicts[p]) if v == "planted_error"]
        out += [Instance(p, s) for s in bad[:per_prompt]]
    return out


JAPAN_RED = (188, 0, 45)
IRELAND_GREEN, IRELAND_ORANGE = (22, 155, 98), (255, 136, 62)  # the world's palette (#169B62, #FF883E)


def scripted_paint_layers(prompt: str, flagged: Image.Image) -> list[Image.Image]:
    """What a person with a brush would paint, done by a script (hard strokes, no softness), over
    the wrong colours only, where they are:
    reversed Ireland -> its orange pixels painted green and its green pixels orange (the bands swap
    colour in place; the flag's position and shape stay, unlike a mirror, which moves them too);
    a blue Japanese disc -> its blue pixels painted the disc's red."""
    arr = np.asarray(flagged.convert("RGB"), int)
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]
    rgba = np.zeros((*arr.shape[:2], 4), np.uint8)
    if "japan" in prompt:
        mask = (b > r + 20) & (b > g)
        rgba[mask, :3], rgba[mask, 3] = JAPAN_RED, 255
    else:
        orange = (r > 170) & (g > 70) & (g < 200) & (b < 150) & (r - b > 80)
        green = (g > r + 40) & (g > b + 10)
        rgba[orange, :3], rgba[orange, 3] = IRELAND_GREEN, 255
        rgba[green, :3], rgba[green, 3] = IRELAND_ORANGE, 255
    return [Image.fromarray(rgba, "RGBA")]


def fix_instance(studio: Studio, inst: Instance, cache: BaseCache, config: UnlearnConfig, surrogate_kind: str = "paint",
                 surrogate_params: dict | None = None):
    """Train one fix; returns (FixResult, steps_to_fix or None, seconds). The default surrogate is
    the scripted paint of `scripted_paint_layers`."""
    flagged = cache.renders[inst.prompt][cache.seeds.index(inst.seed)].image
    if surrogate_kind == "paint" and not (surrogate_params or {}).get("layers"):
        surrogate_params = {"layers": scripted_paint_layers(inst.prompt, flagged)}
    sur = studio.surrogate(surrogate_kind, flagged, surrogate_params or {})
    first_fixed: list[int] = []

    def on_monitor(step, img):
        if not first_fixed and studio.check(inst.prompt, img)["verdict"] == "correct":
            first_fixed.append(step)

    t0 = time.perf_counter()
    res = studio.unlearn(inst.prompt, flagged, sur.image, inst.seed, config, sur.info, on_monitor=on_monitor)
    return res, (first_fixed[0] if first_fixed else None), time.perf_counter() - t0


def render_with_fixes(studio: Studio, cache: BaseCache, fix_names: Sequence[str]) -> dict[str, list]:
    """The cache's prompts and seeds (same noises) with exactly `fix_names` enabled."""
    with studio.fixes.only(list(fix_names)):
        return {p: generate(studio.model, p, cache.seeds, noises=[g.noise for g in base])
                for p, base in cache.renders.items()}


def evaluate_fix(studio: Studio, inst: Instance, cache: BaseCache, fix_names: Sequence[str],
                 renders: dict[str, list] | None = None) -> dict:
    """Verdicts and pixel integrity of the model with `fix_names` on, against the base cache.
    Pass `renders` (from render_with_fixes) to judge several instances on one set of outputs."""
    flagged_ok, kept_correct, spread, other_same, ssims, moved = None, [], [], [], [], []
    befores, afters = [], []  # the integrity set: every seed and prompt but the flagged instance
    renders = renders if renders is not None else render_with_fixes(studio, cache, fix_names)
    for p, base in cache.renders.items():
        for s, b, a, vb in zip(cache.seeds, base, renders[p], cache.verdicts[p]):
            va = studio.check(p, a.image)["verdict"]
            if p == inst.prompt and s == inst.seed:
                flagged_ok = va == "correct"
                continue
            if p == inst.prompt and vb == "planted_error":
                spread.append(va == "correct")  # other misrepresented seeds of the same prompt
                continue
            if p == inst.prompt:
                kept_correct.append(va == vb)
            else:
                other_same.append(va == vb)
            pair = integrity_pair(b.image, a.image)
            ssims.append(pair["ssim"])
            moved.append(mean_abs_diff(b.image, a.image))
            befores.append(b.image)
            afters.append(a.image)
    fd = clip_fd(studio.model, befores, afters)
    lp = lpips(befores, afters)
    return {
        "flagged_fixed": bool(flagged_ok),
        "same_prompt_verdict_kept": _frac(kept_correct),
        "other_prompts_verdict_kept": _frac(other_same),
        "spread_to_other_error_seeds": _frac(spread),
        "other_error_seeds": len(spread),
        "ssim_mean": float(np.mean(ssims)) if ssims else None,
        "mean_abs_change": float(np.mean(moved)) if moved else None,
        "clip_fd": fd.value,  # None when the model has no CLIP
        "lpips_mean": lp.value,  # None when the LPIPS backbone is not in the local cache
        "lpips_unavailable": None if lp.available else lp.reason,
    }


def _frac(xs: list[bool]) -> float | None:
    return float(np.mean(xs)) if xs else None


def mean_std(rows: list[dict], key: str) -> str:
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return "n/a"
    vals = [float(v) for v in vals]
    return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}" if len(vals) > 1 else f"{vals[0]:.3f}"
