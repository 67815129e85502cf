"""Forget one memorised face in the faces world, end to end, and measure it.

    python bench/faces_forget.py [--model faces] [--face 3] [--surrogate all|other_face|paint|sdedit]
                                 [--flag-seeds 0-255] [--report-seeds 1000-2023] [--set FIELD=VALUE ...]

1. Flag: generate --flag-seeds with the base model; the first seed whose output the matcher calls a
   copy of --face is the flagged seed (found by seed only: the model has no prompt).
2. Surrogate: another face (the nearest non-memorised training face to the flagged output), a
   painted edit (a grey band over the eyes), or SDEdit of the flagged output at strength 0.6.
3. Unlearn with the model's defaults (a LoRA fix), timed.
4. Measure on --report-seeds (kept apart from the seeds used to pick the flagged seed or tune
   anything): the copy rate of every memorised face before and after, the flagged seed after, and
   the mean SSIM to the base output of the seeds that were not copies before.
The forgetting judge decides every fix (as in the studio); the copy matcher only measures.
Writes bench/results/<name>.json and <name>.md (the build named).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.faceseval import (SURROGATES, FaceInstance, FacesBase, build_name, evaluate_face_fix, fix_face,  # noqa: E402
                             retried_seeds)
from core.generate import generate, parse_seeds  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import Studio  # noqa: E402
from core.world import faces as W  # noqa: E402


def one_fix(studio: Studio, kind: str, inst: FaceInstance, base: FacesBase, config) -> dict:
    """One fix of `inst` with a `kind` surrogate, measured on `base`, then removed (the next fix
    starts from the base model again)."""
    fix = fix_face(studio, inst, config, kind)
    result, m = fix.result, fix.result.run.metrics()
    # What the user gets: a fix the judge did not call forgotten is switched off by the studio.
    ev = evaluate_face_fix(studio, inst, base, [n for n in [result.run.run_id] if studio.fixes.fixes[n].enabled])
    studio.remove_fix(result.run.run_id)
    return {"surrogate": fix.surrogate_info, "fix_seconds": round(fix.seconds, 1),
            "judge_forgotten": m.get("flagged_seed_fixed"), "judge": m.get("forgetting"),
            "steps_done": m.get("steps_done"), "kept_step": m.get("kept_step"),
            "retried_seeds": retried_seeds(m),  # retry_seeds: the discarded tries
            "earlier_tries": m.get("earlier_tries", []),  # their seeds, steps, seconds and final scores
            # the published try's monitor: [step, judge score, forgotten, projection] per monitored step
            "monitor": [[p["step"], p["score"], p["forgotten"], p.get("projection")] for p in m.get("monitor", [])],
            "remember_set_size": m.get("remember_set_size"), "remember_excluded": m.get("remember_excluded"),
            "flagged_seed_after": ev["flagged_seed_after"], "copy_rate_after": ev["copy_rate_after"],
            "other_faces_relative_change": ev["other_faces_relative_change"],
            "ssim_novel_outputs_mean": ev["ssim_mean"], "n_novel_outputs": ev["n_novel_outputs"]}


TARGETS = {"forgotten_face_rate_after_max": 0.005, "other_faces_relative_change_max": 0.2, "ssim_min": 0.90,
           "fix_seconds_max": 60}


def met(row: dict, target: str) -> dict:
    rel = [abs(v) for v in row["other_faces_relative_change"].values() if v is not None]
    return {"forgotten_rate": row["copy_rate_after"][target] <= TARGETS["forgotten_face_rate_after_max"]
            and row["flagged_seed_after"]["flag"] != target,
            "other_faces": bool(rel) and max(rel) <= TARGETS["other_faces_relative_change_max"],
            "ssim": (row["ssim_novel_outputs_mean"] or 0) >= TARGETS["ssim_min"],
            "time": row["fix_seconds"] <= TARGETS["fix_seconds_max"]}


def write_md(path: Path, out: dict) -> None:
    t, before = out["face"], out["copy_rate_before"]
    lines = ["# Forget one memorised face (faces world)", "",
             f"Build: {out['build']}. Flagged: seed {out['flagged_seed']} (the first copy of {t} among seeds "
             f"{out['flag_seeds']}). Measured on seeds {out['report_seeds']} ({out['n_report']} seeds), which chose "
             "nothing: no default, no flagged seed. The forgetting judge decided every fix (stop, remember filter, "
             "which state to publish); the copy matcher only measured.", "",
             f"Command: `{out['command']}`", "",
             "Before: " + ", ".join(f"{k} {v:.1%}" for k, v in before.items()), "",
             "| surrogate | fix s | judge: forgotten | flagged seed after | " + f"{t} after | other faces (rel. change) | "
             "SSIM novel outputs | targets met (rate / others / SSIM / time) |", "|---|---|---|---|---|---|---|---|"]
    for row in out["runs"]:
        mm = met(row, t)
        others = ", ".join(f"{k} {v:+.0%}" if v is not None else f"{k} n/a" for k, v in row["other_faces_relative_change"].items())
        lines.append(f"| {row['surrogate']['kind']} | {row['fix_seconds']} | {row['judge_forgotten']} | "
                     f"{row['flagged_seed_after']['verdict']} ({row['flagged_seed_after']['flag']}) | "
                     f"{row['copy_rate_after'][t]:.2%} | {others} | {row['ssim_novel_outputs_mean']:.3f} | "
                     + " / ".join("yes" if mm[k] else "no" for k in ("forgotten_rate", "other_faces", "ssim", "time"))
                     + " |")
    lines += ["", f"Targets (issue 13): {t} copied at <= 0.5% of seeds after, flagged seed included; the other "
              "memorised faces' copy rates within +-20% (relative); SSIM of non-copy outputs to the base >= 0.90 on "
              "average; a fix <= 60 s on 2 cores (wall time here, on a shared and loaded machine).",
              "", f"Config: {json.dumps(out['config_overrides'])} over the model's defaults."]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="faces")
    ap.add_argument("--face", type=int, default=W.MEMORISED[0])
    ap.add_argument("--surrogate", choices=(*SURROGATES, "all"), default="all")
    ap.add_argument("--flag-seeds", default="0-255")
    ap.add_argument("--flagged-seed", type=int, default=None, help="skip the search: flag this seed (smoke tests)")
    ap.add_argument("--report-seeds", default="1000-2023")
    ap.add_argument("--steps", type=int, default=None, help="override the model's default optimiser steps")
    ap.add_argument("--lr", type=float, default=None)
    add_set_option(ap, "override a field of the UnlearnConfig (JSON value), e.g. --set lora_rank=8; repeatable")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="faces_forget", help="results file stem")
    args = ap.parse_args()

    model = load_model(args.model)
    studio = Studio(model, data_dir=scratch_dir("faces-forget-"), restore=False, persist_state=False)
    target = W.face_name(args.face)
    if args.flagged_seed is not None:
        flagged_gen = generate(model, "", [args.flagged_seed])[0]
    else:
        flag_gens = generate(model, "", parse_seeds(args.flag_seeds), batch_size=256)
        flagged_gen = next((g for g in flag_gens if W.verdict(g.image)["flag"] == target), None)
    if flagged_gen is None:
        raise SystemExit(f"no copy of {target} among seeds {args.flag_seeds}")
    report_seeds = parse_seeds(args.report_seeds, max_count=100_000)
    base = FacesBase.build(studio, report_seeds)
    before = base.copy_rates
    overrides = {k: v for k, v in {"steps": args.steps, "learning_rate": args.lr}.items() if v is not None}
    overrides.update(config_overrides(args.overrides))
    config = studio.default_config(**overrides)
    kinds = SURROGATES if args.surrogate == "all" else (args.surrogate,)
    inst = FaceInstance(args.face, flagged_gen.seed)
    runs = [one_fix(studio, k, inst, base, config) for k in kinds]
    out = {"build": build_name(model), "model": model.location, "face": target, "flagged_seed": flagged_gen.seed,
           "flag_seeds": args.flag_seeds, "report_seeds": args.report_seeds, "n_report": len(report_seeds),
           "command": "python bench/faces_forget.py " + " ".join(sys.argv[1:]), "config": config.to_dict(),
           "config_overrides": overrides, "copy_rate_before": before, "runs": runs, "targets": TARGETS,
           "met": [met(r, target) for r in runs]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    write_md(args.out / f"{args.name}.md", out)
    print((args.out / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
