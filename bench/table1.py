"""Table I on the flags world: the paper's method vs NegGrad, EraseDiff and SISS.

For misrepresented seeds of the planted prompts, each method fixes the instance at matched steps
over a learning-rate sweep and several training seeds; we report fix rate (checker), steps to
fix (monitor every 10 steps), verdicts kept on every other seed and prompt, spread to the
prompt's other misrepresented seeds, SSIM to the base outputs, and seconds per fix.

    python bench/table1.py --quick        # 1 instance, 1 lr, 1 repeat, 40 steps: a few minutes
    python bench/table1.py                # 2 instances per planted prompt, 3 lrs, 3 repeats
    python bench/table1.py --stop-lr-factors 1   # also every method stopped when the checker sees the
                                                 # seed fixed (the studio's default), at equal forgetting
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.worldeval import CONTROL_PROMPTS, PLANTED_PROMPTS, BaseCache, evaluate_fix, find_instances, fix_instance, mean_std  # noqa: E402
from bench.report import command_line, plot_scatter, write_markdown  # noqa: E402

from core.unlearn.config import METHODS  # noqa: E402  (the one list of method names)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--lr-factors", default=None, help="comma list of multiples of the model's default lr")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--per-prompt", type=int, default=None,
                    help="misrepresented seeds taken per planted prompt (quick: 1 in all; full: 2 each)")
    ap.add_argument("--eval-seeds", type=int, default=None, help="seeds per prompt for integrity (quick 16, full 32)")
    ap.add_argument("--controls", type=int, default=None, help="control prompts evaluated (quick 2, full 6)")
    ap.add_argument("--stop-lr-factors", default="",
                    help="comma list of lr multiples at which each method also runs with stop_when_fixed (rows '+stop')")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    from core.models import load_model
    from core.studio import Studio
    import tempfile

    quick = args.quick
    steps = args.steps or (40 if quick else 100)
    repeats = args.repeats or (1 if quick else 3)
    factors = [float(x) for x in (args.lr_factors or ("1" if quick else "0.3,1,3")).split(",")]
    studio = Studio(load_model(args.model), tempfile.mkdtemp(prefix="table1-"), restore=False, persist_state=False)
    seeds = list(range(args.eval_seeds or (16 if quick else 32)))
    prompts = list(PLANTED_PROMPTS) + list(CONTROL_PROMPTS[: args.controls or (2 if quick else 6)])
    cache = BaseCache.build(studio, prompts, seeds)
    instances = find_instances(cache, per_prompt=args.per_prompt or (1 if quick else 2))
    if quick and not args.per_prompt:
        instances = instances[:1]
    base_lr = studio.default_config().learning_rate
    # (lr factor, stop when fixed): matched steps first, then the equal-forgetting variant.
    variants = [(f, False) for f in factors] + [(float(x), True) for x in filter(None, args.stop_lr_factors.split(","))]
    rows = []
    for inst in instances:
        for method in args.methods.split(","):
            for f, stop in variants:
                for rep in range(repeats):
                    cfg = studio.default_config(method=method, steps=steps, learning_rate=base_lr * f, seed=rep, stop_when_fixed=stop,
                                                monitor_every=10, remember_set_size=50 if quick else 100)
                    res, to_fix, secs = fix_instance(studio, inst, cache, cfg)
                    ev = evaluate_fix(studio, inst, cache, [res.run.run_id])
                    studio.remove_fix(res.run.run_id)
                    rows.append({"instance": f"{inst.prompt}#{inst.seed}", "method": method + ("+stop" if stop else ""),
                                 "lr": base_lr * f, "repeat": rep, "steps_to_fix": to_fix,
                                 "steps_done": res.train.steps_done, "seconds": secs, **ev})
                    print(rows[-1], flush=True)
    table = []
    for stop in (False, True):
        for method in args.methods.split(","):
            for f in sorted({f for f, st in variants if st == stop}):
                label = method + ("+stop" if stop else "")
                sel = [r for r in rows if r["method"] == label and abs(r["lr"] - base_lr * f) < 1e-12]
                if not sel:
                    continue
                table.append([label, f"{base_lr * f:.0e}", len(sel), mean_std(sel, "flagged_fixed"), mean_std(sel, "steps_to_fix"),
                              mean_std(sel, "same_prompt_verdict_kept"), mean_std(sel, "other_prompts_verdict_kept"),
                              mean_std(sel, "spread_to_other_error_seeds"), mean_std(sel, "ssim_mean"), mean_std(sel, "clip_fd"),
                              mean_std(sel, "lpips_mean"), mean_std(sel, "steps_done"),
                              mean_std(sel, "seconds")])
    header = ["method", "lr", "runs", "fix rate", "steps to fix", "same-prompt kept", "other prompts kept",
              "spread to other errors", "SSIM vs base", "world-CLIP FD", "LPIPS", "steps run", "s / fix"]
    notes = [f"Model: {args.model}; {steps} steps; instances: {', '.join(f'{i.prompt} seed {i.seed}' for i in instances)}; "
             f"eval seeds 0-{seeds[-1]} over {len(prompts)} prompts; scripted paint surrogate (bench.worldeval); mean ± std over instances and repeats.",
             "'kept' = the checker's verdict after the fix equals the base model's verdict (flagged seed and the prompt's "
             "other misrepresented seeds excluded); 'spread' = fraction of the prompt's other misrepresented seeds that "
             "the fix also corrected. '+stop' rows: the same method stopped at the first monitor step (every 10) "
             "where the checker sees the flagged seed correct, the studio's default on this model. s / fix includes building "
             "the remember set only for the first fix of an instance (the studio caches it), hence its spread."]
    lpips_missing = next((r["lpips_unavailable"] for r in rows if r.get("lpips_unavailable")), None)
    notes.append("Integrity is measured on every seed and prompt but the flagged instance: SSIM per same-seed pair, "
                 "world-CLIP FD = Frechet distance between the before and after sets in the world's own CLIP image "
                 "space (lower = less moved), LPIPS per pair. "
                 + (f"LPIPS: n/a here, {lpips_missing}" if lpips_missing else ""))
    name = "table1_quick" if quick else "table1"
    write_markdown(args.out / f"{name}.md", "Table I on the flags world", command_line(), header, table, notes, rows, model=studio.model)
    plot_scatter(args.out / f"{name}.png", rows, x="ssim_mean", y="other_prompts_verdict_kept", group="method",
                 title="Integrity per fix (100 matched steps; +stop: stopped when fixed)", filled="flagged_fixed")
    print((args.out / f"{name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
