"""Before/after comparison from the same seeds: grids side by side, difference heatmaps, metrics.

Before = the base model (all fixes off); after = the chosen fixes on. The same initial noise is
used for both, so every difference is the fix's doing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .adapters import FixManager
from .generate import Generated, generate, image_grid, initial_noise
from .images import to_array
from .models.loading import LoadedModel
from .runs import atomic_save_image, atomic_write_json

JudgeFn = Callable[[str, Image.Image], dict]  # (prompt, image) -> {"verdict": ..., "flag": ...}


@dataclass
class PromptComparison:
    prompt: str
    seeds: list[int]
    before: list[Generated]
    after: list[Generated]
    per_seed: dict[int, dict] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def diff_map(a: Image.Image, b: Image.Image) -> np.ndarray:
    """Per-pixel mean absolute difference in [0, 1], HxW."""
    return np.abs(to_array(a).astype(np.float32) - to_array(b).astype(np.float32)).mean(axis=2) / 255.0


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference in [0, 1] (0 = identical)."""
    return float(diff_map(a, b).mean())


def heatmap_image(diff: np.ndarray, vmax: float = 0.5) -> Image.Image:
    """Colour a difference map (0 = black, vmax and above = bright yellow, 'inferno')."""
    from matplotlib import colormaps

    rgba = colormaps["inferno"](np.clip(diff / vmax, 0, 1))
    return Image.fromarray((rgba[..., :3] * 255).astype(np.uint8))


def integrity_pair(before: Image.Image, after: Image.Image) -> dict:
    """SSIM and PSNR of one same-seed pair (scikit-image; PSNR is +inf for identical images)."""
    from .metrics.integrity import psnr_pair, ssim_pair

    return {"ssim": round(ssim_pair(before, after), 5), "psnr": psnr_pair(before, after)}


def compare_prompt(model: LoadedModel, fixes: FixManager, fix_names: Sequence[str], prompt: str, seeds: Sequence[int],
                   steps: int | None = None, guidance: float | None = None, judge: JudgeFn | None = None,
                   integrity: Callable | None = integrity_pair, store=None,
                   progress: Callable[[int, int, str], None] | None = None) -> PromptComparison:
    """Same-seed before/after of one prompt. `progress(done, total, message)` counts the images
    drawn (2 per seed: fixes off, then on). With a generation `store` (a RememberStore), renders it
    holds for the same weights, steps and guidance are reused (e.g. the grid the user generated
    before fixing is the 'before' side) and new ones are added."""
    n = len(seeds)

    def stage(offset: int, what: str):
        if progress is None:
            return None
        return lambda done, _total, _msg: progress(offset + done, 2 * n, f"{what} {done}/{n}")

    def draw(offset: int, what: str) -> list[Generated]:
        """The seeds with the weights as they are now (the store's key: the fixes acting now)."""
        if store is None:
            noises = [initial_noise(model, s) for s in seeds]
            return generate(model, prompt, seeds, steps, guidance, noises=noises, progress=stage(offset, what))
        from .unlearn.remember import stored_generations  # lazy: core.unlearn imports this module
        from .unlearn.remember_store import model_state

        return stored_generations(model, [(prompt, s) for s in seeds], steps, guidance, store,
                                  model_state(model, fixes).digest, progress=stage(offset, what))

    with fixes.disabled():
        before = draw(0, "without fixes")
    with fixes.only(list(fix_names)):
        after = draw(n, "with fixes")
    cmp = PromptComparison(prompt, list(seeds), before, after)
    for b, a in zip(before, after):
        row = {"mean_abs_diff": round(mean_abs_diff(b.image, a.image), 5)}
        if integrity is not None:
            row.update(integrity(b.image, a.image))
        if judge is not None:
            row["before"], row["after"] = judge(prompt, b.image), judge(prompt, a.image)
        cmp.per_seed[b.seed] = row
    cmp.summary = summarise(cmp.per_seed)
    return cmp


def summarise(per_seed: dict[int, dict]) -> dict:
    rows = list(per_seed.values())
    out: dict = {"seeds": len(rows)}
    for key in ("mean_abs_diff", "ssim", "psnr"):
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and np.isfinite(r[key])]
        if vals:
            out[f"{key}_mean"] = round(float(np.mean(vals)), 5)
    out["changed_seeds"] = int(sum(r["mean_abs_diff"] > 0 for r in rows))
    if rows and "before" in rows[0]:
        for when in ("before", "after"):
            verdicts = [r[when]["verdict"] for r in rows]
            out[f"{when}_rates"] = {v: round(verdicts.count(v) / len(verdicts), 4) for v in ("correct", "planted_error", "other")}
        out["verdict_unchanged"] = round(float(np.mean([r["before"]["verdict"] == r["after"]["verdict"] for r in rows])), 4)
    return out


def repeated_pictures(seeds: Sequence[int], before: Sequence[Image.Image], after: Sequence[Image.Image],
                      descriptor) -> list[dict]:
    """Pictures the model drew from several of these seeds before the fixes (near copies of one another
    by the copy descriptor, e.g. memorised faces), and which seeds draw each one before and after. A fix
    that removes one memorised picture can send its seeds to another: this shows it, from the model's own
    outputs, with no ground truth. Each picture is named by its first seed; largest first."""
    eb = np.asarray(descriptor.embed([im.convert("RGB") for im in before]), np.float64)
    ea = np.asarray(descriptor.embed([im.convert("RGB") for im in after]), np.float64)
    found, taken = [], set()
    for i in range(len(seeds)):
        if i in taken:
            continue
        members = [j for j in np.flatnonzero(eb @ eb[i] >= descriptor.copy_threshold) if j not in taken]
        if len(members) < 2:
            continue
        taken.update(members)
        now = np.flatnonzero(ea @ eb[i] >= descriptor.copy_threshold)
        found.append({"first_seed": int(seeds[i]), "seeds_before": [int(seeds[j]) for j in members],
                      "seeds_after": [int(seeds[j]) for j in now]})
    found.sort(key=lambda r: -len(r["seeds_before"]))
    return found


def add_per_seed_lpips(cmp: PromptComparison, result) -> None:
    """Store LPIPS per seed (key "lpips") from a MetricResult over the prompt's before/after pairs;
    unavailable LPIPS leaves the rows alone (the report says why)."""
    if result.available and result.per_item is not None:
        for seed, value in zip(cmp.seeds, result.per_item):
            cmp.per_seed[seed]["lpips"] = round(float(value), 5)


def per_seed_lpips_report(comparisons: Sequence[PromptComparison]) -> dict | str:
    """metrics.json's top-level "lpips": {"<prompt> | <seed>": value}, or why it is unavailable."""
    from .metrics import availability

    values = {f"{c.prompt} | {s}": c.per_seed[s]["lpips"] for c in comparisons for s in c.seeds
              if "lpips" in c.per_seed[s]}
    if values:
        return values
    ok, reason = availability()["lpips"]
    return f"LPIPS: unavailable ({reason if not ok else 'not computed'})"


def comparison_panels(cmp: PromptComparison, highlight_seed: int | None = None, cell: int = 96) -> list[Image.Image]:
    """The three grids of one prompt, seeds aligned, the flagged seed framed: before, after (fixes
    on), and |after - before| heatmaps labelled with each seed's mean difference."""
    labels = [f"seed {s}" for s in cmp.seeds]
    marked = [i for i, s in enumerate(cmp.seeds) if s == highlight_seed]
    diffs = [heatmap_image(diff_map(b.image, a.image)) for b, a in zip(cmp.before, cmp.after)]
    diff_labels = [f"{s}: {cmp.per_seed[s]['mean_abs_diff']:.3f}" for s in cmp.seeds]
    cols = min(8, len(cmp.seeds))
    of = f": {cmp.prompt}" if cmp.prompt else ""  # an unconditional model's seeds have no prompt
    return [
        image_grid([g.image for g in cmp.before], labels, cols, cell, marked, title=f"before{of}"),
        image_grid([g.image for g in cmp.after], labels, cols, cell, marked, title=f"after (fixes on){of}"),
        image_grid(diffs, diff_labels, cols, cell, marked, title="|after - before|"),
    ]


def comparison_figure(cmp: PromptComparison, highlight_seed: int | None = None, cell: int = 96) -> Image.Image:
    """before grid | after grid | difference heatmaps side by side (the compare-NN.png files)."""
    return _tile(comparison_panels(cmp, highlight_seed, cell), horizontal=True)


def stacked_comparison_figure(comparisons: Sequence[PromptComparison], highlight: dict[str, int] | None = None,
                              cell: int = 80, top: int = 0) -> Image.Image:
    """Every prompt's before, after and difference grids stacked top to bottom: one tall page that
    reads better in a narrow view (the studio) than the side-by-side figures. `top` leaves room above."""
    panels = [p for c in comparisons for p in comparison_panels(c, (highlight or {}).get(c.prompt), cell)]
    return _tile(panels, horizontal=False, margin=top)


def _tile(panels: list[Image.Image], horizontal: bool, gap: int = 8, margin: int = 0) -> Image.Image:
    if horizontal:
        size = (margin + sum(p.width for p in panels) + gap * (len(panels) - 1), max(p.height for p in panels))
    else:
        size = (max(p.width for p in panels), margin + sum(p.height for p in panels) + gap * (len(panels) - 1))
    out = Image.new("RGB", size, "white")
    pos = margin
    for p in panels:
        out.paste(p, (pos, 0) if horizontal else (0, pos))
        pos += (p.width if horizontal else p.height) + gap
    return out


def write_comparison(out_dir: str | Path, comparisons: Sequence[PromptComparison], fix_names: Sequence[str],
                     highlight: dict[str, int] | None = None, extra: dict | None = None) -> Path:
    """DIR/compare-<i>.png per prompt, before/after seed PNGs, DIR/metrics.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"fixes": list(fix_names), "prompts": {}}
    for i, cmp in enumerate(comparisons):
        fig = comparison_figure(cmp, (highlight or {}).get(cmp.prompt))
        atomic_save_image(fig, out / f"compare-{i:02d}.png")
        for when, gens in (("before", cmp.before), ("after", cmp.after)):
            for g in gens:
                atomic_save_image(g.image, out / when / f"p{i:02d}-seed-{g.seed:04d}.png")
        report["prompts"][cmp.prompt] = {"figure": f"compare-{i:02d}.png", "summary": cmp.summary,
                                         "seeds": {str(k): v for k, v in cmp.per_seed.items()}}
    from .metrics.result import json_safe

    report.update(extra or {})
    atomic_write_json(out / "metrics.json", json_safe(report))
    return out


@dataclass
class Moved:
    """One other output the fix changed: same prompt, seed and noise, before and after."""

    prompt: str
    seed: int
    before: Image.Image
    after: Image.Image
    change: float  # mean |after - before| in [0, 1]
    verdict_before: str | None = None  # the flag checker's verdicts, where the world has one
    verdict_after: str | None = None


def moved_most(model: LoadedModel, fixes: FixManager, fix_names: Sequence[str], prompts: Sequence[str],
               seeds: Sequence[int], top: int = 6, judge: JudgeFn | None = None, progress=None,
               cancel=None) -> list[Moved]:
    """What else a fix moved: the `top` (prompt, seed) outputs of other prompts whose same-seed
    output changed most with the fixes on, largest change first (ties: prompt order, then seed).
    `progress(frac, message)` is told after each prompt; `cancel.check(where)` is called before each."""
    found: list[Moved] = []
    for i, prompt in enumerate(prompts):
        if cancel is not None:
            cancel.check(f"after {i} of {len(prompts)} prompts")
        c = compare_prompt(model, fixes, fix_names, prompt, seeds, judge=judge, integrity=None)
        for b, a in zip(c.before, c.after):
            row = c.per_seed[b.seed]
            found.append(Moved(prompt, b.seed, b.image, a.image, row["mean_abs_diff"],
                               (row.get("before") or {}).get("verdict"), (row.get("after") or {}).get("verdict")))
        if progress:
            progress((i + 1) / len(prompts), f"what else moved: prompt {i + 1}/{len(prompts)}")
    order = {p: k for k, p in enumerate(prompts)}
    found.sort(key=lambda m: (-m.change, order[m.prompt], m.seed))
    return found[:top]
