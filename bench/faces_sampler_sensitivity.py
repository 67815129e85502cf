"""Do the memorised faces' copy rates move less under a small fine-tune when the sampler takes more steps?
(faces world, a diagnosis)

    python bench/faces_sampler_sensitivity.py [--model faces] [--seed-start 3048] [--seeds 1024]
                                              [--sampling-steps 10,50] [--train-seeds 0,1] [--steps 120]
                                              [--set FIELD=VALUE ...] [--name NAME]

A fine-tune that forgets nothing (the remember loss alone, as bench/faces_control.py with lambda_constant 0)
already moves a memorised face's copy rate by more than 20% at the world's 10 sampling steps. Each such
fine-tune is measured here at several sampler step counts, each against the base at the same count: if more
steps steadied the rates, the sensitivity would be the short sampler's, not the model's.
Writes bench/results/<name>.json and <name>.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.faceseval import OTHER_FACES_TOLERANCE, FaceInstance, build_name, fix_face, write_lines  # noqa: E402

REMEMBER_ONLY = {"lambda_constant": 0.0, "stop_when_fixed": False, "keep_best": False, "retry_seeds": 0}


def rates_and_renders(studio, seeds: list[int], steps: int):
    from core.generate import generate
    from core.world import faces as W

    gens = generate(studio.model, "", seeds, steps=steps, batch_size=256)
    rep = W.check_images([g.image for g in gens])
    return rep["copy_rates"], [g.image for g in gens], [v["verdict"] for v in rep["seeds"].values()]


def main(argv=None) -> int:
    from core.metrics.integrity import ssim_pair
    from core.models import load_model
    from core.studio import Studio

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="faces")
    ap.add_argument("--seed-start", type=int, default=3048)
    ap.add_argument("--seeds", type=int, default=1024)
    ap.add_argument("--sampling-steps", default="10,50")
    ap.add_argument("--train-seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=120, help="remember-only training steps")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="faces_sampler_sensitivity")
    add_set_option(ap, "UnlearnConfig override under the remember-only settings (e.g. the defaults of a past run)")
    args = ap.parse_args(argv)
    overrides = config_overrides(args.overrides)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    counts = [int(s) for s in args.sampling_steps.split(",")]

    studio = Studio(load_model(args.model), scratch_dir("faces-sampler-"), restore=False, persist_state=False)
    with studio.fixes.disabled():
        base = {n: rates_and_renders(studio, seeds, n) for n in counts}
    flag_seed = seeds[base[counts[0]][2].index("correct")]  # a novel output: only left out of the remember set
    records = []
    for s in [int(t) for t in args.train_seeds.split(",")]:
        config = studio.default_config(**{**overrides, **REMEMBER_ONLY, "steps": args.steps, "seed": s})
        fix = fix_face(studio, FaceInstance(None, flag_seed), config, "other_face")
        for n in counts:
            with studio.fixes.only([fix.result.run.run_id]):  # on, whatever the judge said (it forgot nothing)
                rates, renders, _ = rates_and_renders(studio, seeds, n)
            before_rates, before_renders, verdicts = base[n]
            rel = {k: rates[k] / before_rates[k] - 1 for k in before_rates if before_rates[k]}
            ssim = [ssim_pair(before_renders[i], renders[i]) for i, v in enumerate(verdicts) if v == "correct"]
            records.append({"train_seed": s, "sampling_steps": n, "copy_rates_before": before_rates,
                            "relative_change": rel, "ssim_novel_mean": float(np.mean(ssim))})
            print(json.dumps(records[-1]), flush=True)
        studio.remove_fix(fix.result.run.run_id)

    faces = list(base[counts[0]][0])
    lines = ["# Memorised faces under a remember-only fine-tune, by sampler step count (a diagnosis)", "",
             f"Command: `python bench/faces_sampler_sensitivity.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
             "", f"Build: {build_name(studio.model)}. Seeds {seeds[0]}-{seeds[-1]}; each fine-tune: the faces defaults "
             f"with {json.dumps({**overrides, **REMEMBER_ONLY})}, {args.steps} steps, the remember set drawn as the studio draws it "
             f"(the model's sampling steps); the flagged seed #{flag_seed} is a novel output.", "",
             "Copy rates before: " + "; ".join(f"{n} steps: " + ", ".join(f"{k} {v:.1%}" for k, v in base[n][0].items())
                                                for n in counts), "",
             "| training seed | sampling steps | " + " | ".join(faces) + " | within 20% | SSIM novel |",
             "|" + "---|" * (len(faces) + 4)]
    for r in records:
        ch = r["relative_change"]
        lines.append(f"| {r['train_seed']} | {r['sampling_steps']} | " + " | ".join(f"{ch[f]:+.0%}" for f in faces)
                     + f" | {sum(abs(v) <= OTHER_FACES_TOLERANCE for v in ch.values())}/{len(ch)} | "
                       f"{r['ssim_novel_mean']:.3f} |")
    write_lines(args.out, args.name, lines, {"build": build_name(studio.model), "records": records})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
