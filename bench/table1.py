"""Table I on the flags world: the paper's method vs NegGrad, EraseDiff and SISS.

For misrepresented seeds of the planted prompts, each method fixes the instance over a
learning-rate sweep and several training seeds; we report fix rate (checker), steps to fix
(monitor every 10 steps), verdicts kept on every other seed and prompt, spread to the prompt's
other misrepresented seeds, SSIM to the base outputs, and seconds per fix. Row sets per preset
(core/unlearn/presets.py): `paper` (100 generations of the flagged prompt, unfiltered, fixed
steps) and `studio` (the model's defaults).

    python bench/table1.py --quick        # <= 10 min: 1 instance, monitored lr grid, stop at the first
                                          # forgotten step, integrity over the runs that forgot
    python bench/table1.py                # 2 instances per planted prompt, 3 lrs, 3 repeats, 100 steps
    python bench/table1.py --stop-lr-factors 1   # also every method stopped when the judge calls the
                                                 # seed fixed (the studio's default), at equal forgetting
    python bench/table1.py --preset paper,studio # both row sets

Forgetting is decided by the model-agnostic forgetting judge (core/judge.py), never the checker:
by default (--forgetting copy) the flagged seed is forgotten once its render is no longer a near
copy of the flagged image by the judge's descriptor, the same bar for every method; '+stop' runs
stop at the first monitor step that meets it. The flags world's checker reports beside it ("fix
rate") and judges every other seed (integrity); it never steers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import markdown_table  # noqa: E402
from bench.report import command_line, plot_pareto, write_markdown  # noqa: E402
from bench.worldeval import CONTROL_PROMPTS, PLANTED_PROMPTS, BaseCache, evaluate_fix, find_instances, fix_instance, mean_std  # noqa: E402
from core.unlearn.presets import apply_preset, parse_presets  # noqa: E402

from core.unlearn.config import METHODS  # noqa: E402  (the one list of method names)
INTEGRITY = (("other_prompts_verdict_kept", "other prompts kept"), ("same_prompt_verdict_kept", "same-prompt kept"),
             ("ssim_mean", "SSIM vs base"), ("clip_fd", "world-CLIP FD"))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--steps", type=int, default=None, help="steps per fix (quick: at most 60, monitored; full: 100)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--lr-factors", default=None, help="comma list of multiples of the model's default lr")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--per-prompt", type=int, default=None,
                    help="misrepresented seeds taken per planted prompt (quick: 1 in all; full: 2 each)")
    ap.add_argument("--eval-seeds", type=int, default=None, help="seeds per prompt for integrity (quick 16, full 32)")
    ap.add_argument("--controls", type=int, default=None, help="control prompts evaluated (quick 2, full 6)")
    ap.add_argument("--stop-lr-factors", default=None,
                    help="comma list of lr multiples at which each method also runs with stop_when_fixed (rows '+stop'); "
                         "quick: every lr factor, and no fixed-step rows")
    ap.add_argument("--preset", default=None, help="comma list of row sets: paper, studio (quick: paper,studio; full: studio)")
    ap.add_argument("--forgetting", choices=("copy", "judge"), default="copy",
                    help="what 'forgotten' means (the '+stop' rows stop there): copy = the flagged seed's render is no "
                         "longer a near copy of the flagged image by the judge's descriptor, the same bar for every "
                         "method (default; the paper judges forgetting by copy similarity); judge = the studio's own "
                         "bar, progress toward the user's surrogate, which only our method trains toward")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from core.models import load_model
    from core.studio import Studio
    import tempfile

    quick = args.quick
    steps = args.steps or (60 if quick else 100)
    repeats = args.repeats or (1 if quick else 3)
    factors = [float(x) for x in (args.lr_factors or ("1,3" if quick else "0.3,1,3")).split(",")]
    presets = parse_presets(args.preset or ("paper,studio" if quick else "studio"))
    stop_text = args.stop_lr_factors if args.stop_lr_factors is not None else (",".join(map(str, factors)) if quick else "")
    # (lr factor, stop when fixed): matched steps first, then the equal-forgetting variant.
    variants = ([] if quick else [(f, False) for f in factors]) + [(float(x), True) for x in filter(None, stop_text.split(","))]
    studio = Studio(load_model(args.model), tempfile.mkdtemp(prefix="table1-"), restore=False, persist_state=False)
    seeds = list(range(args.eval_seeds or (16 if quick else 32)))
    prompts = list(PLANTED_PROMPTS) + list(CONTROL_PROMPTS[: args.controls or (2 if quick else 6)])
    cache = BaseCache.build(studio, prompts, seeds)
    instances = find_instances(cache, per_prompt=args.per_prompt or (1 if quick else 2))
    if quick and not args.per_prompt:
        instances = instances[:1]
    base_lr = studio.default_config().learning_rate
    methods = args.methods.split(",")
    rows = []
    for inst in instances:
        for preset in presets:
            for method in methods:
                for f, stop in variants:
                    for rep in range(repeats):
                        cfg = apply_preset(preset, studio.default_config(method=method, learning_rate=base_lr * f, seed=rep,
                                                                         monitor_every=10))
                        cfg = cfg.with_overrides(steps=steps, stop_when_fixed=stop, remember_set_size=50 if quick else None,
                                                 oracle=args.forgetting)
                        res, to_fix, secs = fix_instance(studio, inst, cache, cfg)
                        metrics = res.run.metrics()  # before remove_fix deletes the run
                        forgetting = metrics.get("forgetting") or {}
                        ev = evaluate_fix(studio, inst, cache, [res.run.run_id])
                        studio.remove_fix(res.run.run_id)
                        rows.append({"preset": preset, "instance": f"{inst.prompt}#{inst.seed}",
                                     "forgot": bool(metrics.get("flagged_seed_fixed")),  # by the run's oracle
                                     "judge_score": forgetting.get("score"),
                                     "copy_similarity": forgetting.get("copy_similarity"),
                                     "method": method + ("+stop" if stop else ""), "lr": base_lr * f, "repeat": rep,
                                     "steps_to_fix": to_fix, "steps_done": res.train.steps_done, "seconds": secs,
                                     "remember_set": len(res.remember_seeds), **ev})
                        print(rows[-1], flush=True)
    header, table = per_setting_table(rows, presets, methods, variants, base_lr)
    notes = [FORGETTING_NOTE[args.forgetting],
             f"Model: {args.model}; at most {steps} steps, monitored every 10; instances: "
             f"{', '.join(f'{i.prompt} seed {i.seed}' for i in instances)}; eval seeds 0-{seeds[-1]} over {len(prompts)} "
             "prompts; scripted paint surrogate (bench.worldeval); mean ± std over instances and repeats."
             + (" Quick mode: remember sets of 50." if quick else ""),
             "Presets (core/unlearn/presets.py): paper = generations of the flagged prompt only, unfiltered, no look-alike "
             "shares; studio = the model's defaults (every prompt remembered, look-alike and flagged shares, the judge's remember filter).",
             "'kept' = the checker's verdict after the fix equals the base model's verdict (flagged seed and the prompt's "
             "other misrepresented seeds excluded); 'spread' = fraction of the prompt's other misrepresented seeds that "
             "the fix also corrected. '+stop' rows: the same method stopped at the first monitor step (every 10) "
             "where the flagged seed counts as forgotten (first note). s / fix includes building "
             "the remember set only for the first fix of an instance and preset (the studio caches it), hence its spread."]
    notes.append("Baselines as their public code calibrates them: EraseDiff eta 1e-2; SISS lambda 0.5, squared errors "
                 "summed over latent elements, g = g_x - (750/||g_a||) g_a then clipped to norm 1 (claserken/SISS "
                 "config/delete_sd.yaml), conditioned on the flagged prompt with remember samples of that prompt.")
    lpips_missing = next((r["lpips_unavailable"] for r in rows if r.get("lpips_unavailable")), None)
    notes.append("Integrity is measured on every seed and prompt but the flagged instance: SSIM per same-seed pair, "
                 "world-CLIP FD = Frechet distance between the before and after sets in the world's own CLIP image "
                 "space (lower = less moved), LPIPS per pair. "
                 + (f"LPIPS: n/a here, {lpips_missing}" if lpips_missing else ""))
    name = "table1_quick" if quick else "table1"
    path = write_markdown(args.out / f"{name}.md", "Table I on the flags world", command_line(), header, table, notes, rows,
                          model=studio.model)
    if any(stop for _, stop in variants):
        with path.open("a") as fh:
            fh.write("\n" + forgot_section(rows, presets, methods))
            fh.write("\n" + best_section(rows, presets, methods))
    plot_pareto(args.out / f"{name}.png", [r | {"row": f"{r['preset']}: {r['method']}"} for r in rows],
                x="judge_score", y="other_prompts_verdict_kept", group="row", filled="flagged_fixed",
                title="Forgetting against integrity, one point per fix",
                xlabel="forgetting (judge score at the flagged seed; >= 0.7 forgotten)",
                ylabel="other prompts' verdicts kept (checker)")
    print(path.read_text())
    return 0


FORGETTING_NOTE = {
    "copy": "Forgotten (--forgetting copy, the default) = the flagged seed's render is no longer a near copy of the "
            "flagged image by the forgetting judge's copy descriptor (core/judge.py: shows_error), the same bar for "
            "every method, as the paper judges forgetting by copy similarity; '+stop' runs stop there.",
    "judge": "Forgotten (--forgetting judge) = the studio's own bar: the flagged seed's render moved >= 0.7 of the way "
             "from the flagged image to the user's surrogate inside the edited region. Only our method trains "
             "toward the surrogate, so this bar favours it; use --forgetting copy to compare methods.",
}


def per_setting_table(rows, presets, methods, variants, base_lr):
    table = []
    for preset in presets:
        for stop in (False, True):
            for method in methods:
                for f in sorted({f for f, st in variants if st == stop}):
                    label = method + ("+stop" if stop else "")
                    sel = [r for r in rows if r["preset"] == preset and r["method"] == label and abs(r["lr"] - base_lr * f) < 1e-12]
                    if not sel:
                        continue
                    table.append([preset, label, f"{base_lr * f:.0e}", len(sel), mean_std(sel, "forgot"),
                                  mean_std(sel, "flagged_fixed"),
                                  mean_std(sel, "steps_to_fix"), mean_std(sel, "same_prompt_verdict_kept"),
                                  mean_std(sel, "other_prompts_verdict_kept"), mean_std(sel, "spread_to_other_error_seeds"),
                                  mean_std(sel, "ssim_mean"), mean_std(sel, "clip_fd"), mean_std(sel, "lpips_mean"),
                                  mean_std(sel, "steps_done"), mean_std(sel, "seconds")])
    header = ["preset", "method", "lr", "runs", "forgot", "fix rate (checker)", "steps to fix (checker)", "same-prompt kept", "other prompts kept",
              "spread to other errors", "SSIM vs base", "world-CLIP FD", "LPIPS", "steps run", "s / fix"]
    return header, table


def mean_ci95(values: list[float]) -> str:
    """Mean [95% t-interval]; the interval needs two runs."""
    import numpy as np
    from scipy import stats

    if not values:
        return "n/a"
    m = float(np.mean(values))
    if len(values) < 2:
        return f"{m:.3f} [n=1]"
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return f"{m:.3f} [{m - half:.3f}, {m + half:.3f}]"


def forgot_section(rows: list[dict], presets, methods) -> str:
    """Integrity at the first forgotten step, over the '+stop' runs that forgot, all learning rates pooled."""
    table = []
    for preset in presets:
        for method in methods:
            runs = [r for r in rows if r["preset"] == preset and r["method"] == method + "+stop"]
            if not runs:
                continue
            forgot = [r for r in runs if r.get("forgot")]
            agree = sum(bool(r["flagged_fixed"]) for r in forgot)
            table.append([preset, method, len(runs), len(forgot), f"{agree}/{len(forgot)}", mean_std(forgot, "steps_done")]
                         + [mean_ci95([float(r[k]) for r in forgot if r.get(k) is not None]) for k, _ in INTEGRITY])
    header = ["preset", "method", "runs", "forgot (n)", "checker agrees", "steps at forgotten"] + [f"{label} (95% CI)" for _, label in INTEGRITY]
    return ("## At equal forgetting: the first forgotten step\n\n"
            "Each '+stop' run stopped at the first monitor step (every 10) where the flagged seed counted as "
            "forgotten by the bar named in the notes (--forgetting); 'checker agrees' counts those runs the flags "
            "checker also calls drawn right. Integrity is averaged only over runs that forgot, "
            "learning rates pooled; intervals are 95% t-intervals over those runs (n=1: no interval). A method "
            "whose runs never forgot has no integrity here.\n\n"
            + markdown_table(header, table) + "\n")


def best_section(rows: list[dict], presets, methods) -> str:
    """Each method at its best learning rate: among the '+stop' settings where the judge forgot in
    at least half the runs, the one with the most other prompts kept over the runs that forgot."""
    import numpy as np

    table = []
    for preset in presets:
        for method in methods:
            runs = [r for r in rows if r["preset"] == preset and r["method"] == method + "+stop"]
            best = None
            for lr in sorted({r["lr"] for r in runs}):
                at = [r for r in runs if r["lr"] == lr]
                forgot = [r for r in at if r.get("forgot")]
                if len(forgot) * 2 < len(at) or not forgot:
                    continue
                score = float(np.mean([r["other_prompts_verdict_kept"] for r in forgot]))
                if best is None or score > best[0]:
                    best = (score, lr, at, forgot)
            if best is None:
                table.append([preset, method, "none forgot in half its runs", "", "", "", ""])
                continue
            _, lr, at, forgot = best
            table.append([preset, method, f"{lr:.0e}", f"{len(forgot)}/{len(at)}"]
                         + [mean_ci95([float(r[k]) for r in forgot if r.get(k) is not None]) for k in
                            ("other_prompts_verdict_kept", "same_prompt_verdict_kept", "ssim_mean")])
    header = ["preset", "method", "best lr", "forgot", "other prompts kept (95% CI)",
              "same-prompt kept (95% CI)", "SSIM vs base (95% CI)"]
    return ("## Each method at its best learning rate\n\n"
            "Per method, the learning rate (of the grid) whose '+stop' runs forgot in at least half the "
            "runs and kept the most other prompts over those runs. The choice is made on the same seeds it is "
            "reported on, so it is optimistic, equally for every method; the held-out bench "
            "(bench/heldout.py, seeds >= 1000) is the unbiased figure for the studio's defaults.\n\n"
            + markdown_table(header, table) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
