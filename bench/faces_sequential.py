"""Forget the four memorised faces one after another (the paper's multi-identity setting): each
fix stacks on the earlier ones; after each, integrity and whether the earlier faces stay forgotten.

    python bench/faces_sequential.py [--model faces] [--flag-seeds 0-255] [--report-seeds 1000-2023]

Per face: the first seed among --flag-seeds that copies it (with the earlier fixes on) is flagged
and fixed with a --surrogate of it (default: a grey band painted over the eyes) by --method. The forgetting judge
decides each fix; the copy matcher only measures, on --report-seeds (kept apart: they chose
nothing). With --rounds N a face gets up to N fixes, each flagged at its next copy among --flag-seeds
(a user who still sees the face flags it again). Writes bench/results/<name>.json, <name>.md and
<name>.png: the first --figure-seeds novel outputs among the report seeds (by the matcher), drawn
before any fix and after each fix (rows).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.faceseval import (SURROGATES, FacesBase, build_name, evaluate_face_fix, find_face_instances,  # noqa: E402
                             fix_face, retried_seeds, retried_words, write_lines)
from core.generate import generate, image_grid, parse_seeds  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import AlreadyFixedError, Studio  # noqa: E402
from core.unlearn.config import METHODS  # noqa: E402
from core.world import faces as W  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="faces")
    ap.add_argument("--flag-seeds", default="0-255")
    ap.add_argument("--report-seeds", default="1000-2023")
    ap.add_argument("--surrogate", choices=SURROGATES, default="paint")
    ap.add_argument("--method", choices=METHODS, default="surrogate",
                    help="the unlearning method of every fix (the baselines at the studio's other defaults)")
    add_set_option(ap, "override a field of every fix's UnlearnConfig (JSON value), e.g. --set remember_from=base")
    ap.add_argument("--rounds", type=int, default=1,
                    help="fixes per face at most: after each, a user who still sees the face among --flag-seeds "
                         "flags its next copy and fixes again")
    ap.add_argument("--reseed-failed", action="store_true",
                    help="with --rounds: after a fix that ends switched off, the next round trains with the next "
                         "training seed, as the studio's message asks (the same seed trains the same fix)")
    ap.add_argument("--figure-seeds", type=int, default=8, help="novel outputs shown before and after each fix")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="faces_sequential")
    args = ap.parse_args()
    model = load_model(args.model)
    studio = Studio(model, data_dir=scratch_dir("faces-seq-"), restore=False, persist_state=False)
    overrides = config_overrides(args.overrides)
    flag_seeds, report_seeds = parse_seeds(args.flag_seeds), parse_seeds(args.report_seeds, max_count=100_000)
    base = FacesBase.build(studio, report_seeds)
    before = base.copy_rates
    shown = [base.seeds[i] for i in base.novel[:args.figure_seeds]]
    figure = [(f"{s}", g.image) for s, g in zip(shown, (base.renders[i] for i in base.novel[:args.figure_seeds]))]
    rows, flagged = [], []
    for face in W.MEMORISED:
        target = W.face_name(face)
        reseed = 0
        for round_ in range(1, args.rounds + 1):
            found = find_face_instances(studio, flag_seeds, faces=[face])  # with the earlier fixes on
            if not found:
                if round_ == 1:
                    rows.append({"face": target,
                                 "skipped": f"no copy among seeds {args.flag_seeds} with the earlier fixes on"})
                break
            try:
                config = studio.default_config(method=args.method).with_overrides(**overrides)
                config = config.with_overrides(seed=config.seed + reseed)
                fix = fix_face(studio, found[0], config, args.surrogate)
            except AlreadyFixedError as err:
                rows.append({"face": target, "skipped": str(err)})
                break
            flagged.append((target, found[0].seed))
            figure += [(f"after {_label(target, round_)}", g.image) for g in generate(model, "", shown)]  # fixes on
            rows.append(_fix_row(studio, model, fix, found[0], base, flagged, target, round_) | {"seed": config.seed})
            if args.reseed_failed and not rows[-1]["enabled"]:
                reseed += 1
    out = {"build": build_name(model), "flag_seeds": args.flag_seeds, "report_seeds": args.report_seeds,
           "command": "python bench/faces_sequential.py " + " ".join(sys.argv[1:]), "copy_rate_before": before,
           "surrogate": args.surrogate, "method": args.method, "overrides": overrides,
           "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    if shown:
        image_grid([img for _, img in figure], [label for label, _ in figure], cols=len(shown),
                   title=f"{args.name}: novel outputs before any fix (top row) and after each fix").save(
                       args.out / f"{args.name}.png")
    faces = [W.face_name(i) for i in W.MEMORISED]
    lines = ["# Forget the four memorised faces in sequence (faces world)", "",
             f"Build: {out['build']}. Command: `{out['command']}`. Copy rates on seeds {args.report_seeds}; flagged "
             f"seeds from {args.flag_seeds}. Method {args.method}{f', overrides {overrides}' if overrides else ''}, {args.surrogate} surrogates (bench/faceseval.py). The judge "
             "decided each fix; the matcher only measured.", "",
             "| after fixing | fix s | judge: forgotten | " + " | ".join(faces) + " | earlier flagged seeds now | SSIM novel |",
             "|---|---|---|" + "---|" * len(faces) + "---|---|",
             "| (base) | | | " + " | ".join(f"{before[f]:.1%}" for f in faces) + " | | |"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['face']} (skipped: {r['skipped']}) |" + " |" * (len(faces) + 4))
            continue
        retried = f" ({retried_words(r['retried_seeds'])})" if r.get("retried_seeds") else ""
        lines.append(f"| {_label(r['face'], r.get('round', 1))} (seed {r['flagged_seed']}) | {r['fix_seconds']}{retried} | "
                     f"{r['judge_forgotten']} | "
                     + " | ".join(f"{r['copy_rates'][f]:.1%}" for f in faces) + " | "
                     + ", ".join(f"{k}: {v}" for k, v in r["flagged_seeds_now"].items())
                     + f" | {r['ssim_novel_outputs_mean']:.3f} |")
    write_lines(args.out, args.name, lines)
    return 0


def _label(face: str, round_: int) -> str:
    return face + (f" round {round_}" if round_ > 1 else "")


def _fix_row(studio, model, fix, inst, base, flagged, target: str, round_: int) -> dict:
    """One fix's row: the copy rates and SSIM on the report seeds, and what the flagged seeds draw now."""
    ev = evaluate_face_fix(studio, inst, base, [f.name for f in studio.fixes.fixes.values() if f.enabled])
    earlier = {f"{t}@{s}": W.verdict(generate(model, "", [s])[0].image)["flag"] for t, s in flagged}
    metrics = fix.result.run.metrics()
    return {"face": target, "round": round_, "flagged_seed": inst.seed, "fix_seconds": round(fix.seconds, 1),
            "judge_forgotten": metrics.get("flagged_seed_fixed"),
            # what the product saw: the guard seeds' drift at the state it published
            "kept_step": metrics.get("kept_step"), "guard_drift": metrics.get("remember_drift"),
            "retried_seeds": retried_seeds(metrics),  # retry_seeds: the discarded tries
            "earlier_tries": metrics.get("earlier_tries", []),  # their steps, seconds and final scores
            "enabled": studio.fixes.fixes[fix.result.run.run_id].enabled, "copy_rates": ev["copy_rate_after"],
            "flagged_seeds_now": earlier, "ssim_novel_outputs_mean": ev["ssim_mean"]}


if __name__ == "__main__":
    raise SystemExit(main())
