"""Integrity against the remember set's sampling steps and precision (UnlearnConfig.remember_sampling_steps,
remember_precision).

    PYTHONPATH=. python bench/remember_steps.py                 # 20, 12, 8 steps; 2 instances
    PYTHONPATH=. python bench/remember_steps.py --steps 20,8 --tune-seeds 0-7 --heldout-seeds 1000-1007
    PYTHONPATH=. python bench/remember_steps.py --steps 20 --precisions model,bfloat16

Per setting, the studio's default fix (scripted paint surrogate) of each instance — misrepresented
seeds found among the tuning seeds (< 1000) of the planted prompts — is trained with the remember
set drawn at that many denoising steps and that precision (the monitor and the before/after renders stay at the
model's steps), then judged against base renders on two seed sets: the tuning seeds, which choose
the default, and held-out seeds (>= 1000), which only confirm it. The remember set alone is also
timed per setting (no store, same machine, interleaved). Writes bench/results/remember_steps.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import scratch_dir  # noqa: E402
from bench.report import command_line, write_markdown  # noqa: E402
from bench.worldeval import (CONTROL_PROMPTS, PLANTED_PROMPTS, BaseCache, evaluate_fix,  # noqa: E402
                             find_instances, fix_instance)

KEYS = ("flagged_fixed", "same_prompt_verdict_kept", "other_prompts_verdict_kept", "ssim_mean", "clip_fd")


def time_remember(studio, settings, prompts, rounds: int) -> dict[tuple, list[float]]:
    """Seconds to build the remember set per (steps, precision), interleaved over `rounds`."""
    from core.unlearn.remember import build_remember_set

    cfg = studio.default_config()
    out = {st: [] for st in settings}
    for r in range(rounds):
        for n, prec in settings[r % len(settings):] + settings[:r % len(settings)]:
            t0 = time.perf_counter()
            build_remember_set(studio.model, prompts, cfg.with_overrides(remember_sampling_steps=n,
                                                                         remember_precision=prec), set())
            out[(n, prec)].append(time.perf_counter() - t0)
    return out


def label(setting: tuple) -> str:
    n, prec = setting
    return f"{n}" if prec == "model" else f"{n}, {prec}"


def main(argv=None) -> int:
    from core.generate import parse_seeds
    from core.models import load_model
    from core.studio import Studio

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="20,12,8", help="remember-set denoising steps to compare")
    ap.add_argument("--precisions", default="model",
                    help="remember-set precisions to compare (model, bfloat16); each with every --steps")
    ap.add_argument("--tune-seeds", default="0-15", help="seeds (< 1000) that choose the default")
    ap.add_argument("--heldout-seeds", default="1000-1015",
                    help="seeds (>= 1000) that only confirm it; 'none' to leave them to bench/heldout.py")
    ap.add_argument("--instances", type=int, default=1, help="misrepresented seeds per planted prompt")
    ap.add_argument("--planted", default=",".join(PLANTED_PROMPTS), help="planted prompts to fix, comma-separated")
    ap.add_argument("--time-rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="remember_steps", help="result file name (without .md)")
    args = ap.parse_args(argv)
    settings = [(int(n), p) for p in args.precisions.split(",") for n in args.steps.split(",")]
    tune = parse_seeds(args.tune_seeds)
    held = [] if args.heldout_seeds == "none" else parse_seeds(args.heldout_seeds)
    if max(tune) >= 1000 or (held and min(held) < 1000):
        raise SystemExit("tuning seeds must be < 1000 and held-out seeds >= 1000")
    studio = Studio(load_model("embedded"), scratch_dir("remsteps-"), restore=False, persist_state=False,
                    remember_store_mb=0)
    prompts = list(PLANTED_PROMPTS + CONTROL_PROMPTS)
    caches = {"tune": BaseCache.build(studio, prompts, tune)}
    if held:
        caches["heldout"] = BaseCache.build(studio, prompts, held)
    instances = find_instances(caches["tune"], args.planted.split(","), args.instances)
    rows = []
    for n, prec in settings:
        cfg = studio.default_config(remember_sampling_steps=n, remember_precision=prec)
        for inst in instances:
            res, first, secs = fix_instance(studio, inst, caches["tune"], cfg)
            row = {"remember_steps": n, "remember_precision": prec, "prompt": inst.prompt, "seed": inst.seed, "fix_s": secs,
                   "train_steps": res.train.steps_done}
            for name, cache in caches.items():
                ev = evaluate_fix(studio, inst, cache, [res.run.run_id])
                row.update({f"{name}_{k}": ev[k] for k in KEYS})
            rows.append(row)
            print(json.dumps(row), flush=True)
            studio.remove_fix(res.run.run_id)
    timing = time_remember(studio, settings, studio.default_config().remember_prompts, args.time_rounds)
    table = []
    for st in settings:
        sel = [r for r in rows if (r["remember_steps"], r.get("remember_precision", "model")) == st]

        def m(key, scale=1.0):
            vals = [r[key] for r in sel if r.get(key) is not None]
            return f"{np.mean(vals) * scale:.1f}" if vals else "n/a"

        table.append([label(st), f"{np.median(timing[st]):.2f}", f"{sum(r['tune_flagged_fixed'] for r in sel)}/{len(sel)}",
                      m("tune_other_prompts_verdict_kept", 100), m("tune_same_prompt_verdict_kept", 100),
                      m("tune_ssim_mean", 100), m("heldout_other_prompts_verdict_kept", 100),
                      m("heldout_same_prompt_verdict_kept", 100), m("heldout_ssim_mean", 100),
                      f"{np.mean([r['train_steps'] for r in sel]):.0f}"])
    header = ["remember steps (, precision)", "remember set s (median)", "fixed", "tune: other prompts kept %",
              "tune: same prompt kept %", "tune: SSIM x100", "held-out: other prompts kept %",
              "held-out: same prompt kept %", "held-out: SSIM x100", "train steps"]
    notes = [f"Instances (found on the tuning seeds): {', '.join(f'{i.prompt} seed {i.seed}' for i in instances)}; "
             f"eval prompts: {', '.join(prompts)}.",
             f"Tuning seeds {args.tune_seeds} (all < 1000) choose the default; "
             + (f"held-out seeds {args.heldout_seeds} were not looked at to choose it." if held else
                "no held-out seeds here: bench/heldout.py confirms the choice."),
             "kept % = the checker's verdict after the fix equals the base model's (flagged seed and the prompt's "
             "other misrepresented seeds excluded); SSIM x100 = mean SSIM of same-seed before/after pairs.",
             f"Remember set alone: {len(studio.default_config().remember_prompts)} prompts, 110 images, no store, "
             f"{args.time_rounds} interleaved rounds; seconds per round: "
             + "; ".join(f"{label(st)}: {', '.join(f'{t:.2f}' for t in timing[st])}" for st in settings) + "."]
    path = write_markdown(args.out / f"{args.name}.md", "Integrity against remember-set sampling steps",
                          command_line(), header, table, notes, rows, model=studio.model)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
