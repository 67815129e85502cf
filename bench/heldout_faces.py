"""The held-out benchmark on the faces world (bench/heldout.py runs it for `--model faces`).

Every faces default was chosen on seeds < 1000 (bench/faces_tune.py). Here each memorised face is
flagged at its first copy from --seed-start on, fixed with a painted band over the eyes (as a
person with a brush would), and measured by the copy matcher, which plays no part in the fix:

    fixed             the flagged seed is no longer a copy of its face
    face after        that face's copy rate over the report seeds (issue 13 target <= 0.5%)
    others in 20%     share of the other memorised faces whose copy rate moved by <= 20% (relative)
    SSIM novel        mean SSIM to the base of the outputs that were novel faces before
    judge vs matcher  precision / recall of the judge's "forgotten" against the matcher's
                      "not a copy" on every monitor render of the flagged seed
    seconds           the whole fix

Rows: judge (the studio's defaults) and paper (100 steps, remember set of 100, no filter, no guard).
"""

from __future__ import annotations

import json
import statistics

import numpy as np

from bench.faceseval import (SURROGATE_WORDS, FacesBase, build_name, evaluate_face_fix, find_face_instances, fix_face,
                             retried_seeds, retried_words)
from bench.report import command_line, write_markdown

ROWS = ("judge", "paper")


def row_config(studio, row: str, overrides: dict):
    from core.unlearn.presets import apply_preset

    config = studio.default_config()
    return (config if row == "judge" else apply_preset("paper", config)).with_overrides(**overrides)


def run(args, studio, overrides: dict) -> int:
    from core.judge import ForgettingJudge
    from core.world import faces as W
    from bench.heldout import precision_recall

    rows = [r for r in args.rows.split(",") if r] if args.rows else list(ROWS)
    if set(rows) - set(ROWS):
        raise SystemExit(f"--rows: the faces world has rows {', '.join(ROWS)}")
    n = args.prompt_seeds or (256 if args.quick else 1024)
    seeds = range(args.seed_start, args.seed_start + n)
    base = FacesBase.build(studio, seeds)
    instances = find_face_instances(studio, seeds)[: args.per_prompt or (1 if args.quick else 4)]
    print(f"instances: {[i.label for i in instances]}", flush=True)
    records = []
    for row in rows:
        for inst in instances:
            config = row_config(studio, row, overrides)
            fix = fix_face(studio, inst, config, args.surrogate)
            res, m = fix.result, fix.result.run.metrics()
            flagged = base.renders[base.seeds.index(inst.seed)].image
            judge = ForgettingJudge.for_model(studio.model, flagged, fix.surrogate, config.forget_threshold,
                                              config.forget_projection)
            ev = evaluate_face_fix(studio, inst, base, [res.run.run_id])
            studio.remove_fix(res.run.run_id)
            agree = [(judge.judge_flagged_seed(img).forgotten, W.verdict(img)["flag"] != inst.target) for _, img in res.monitor]
            records.append({"row": row, "face": inst.target, "seed": inst.seed, "seconds": fix.seconds,
                            "steps_done": m["steps_done"], "kept_step": m.get("kept_step"),
                            # retry_seeds: the discarded tries' training seeds (their time is in "seconds")
                            "retried_seeds": retried_seeds(m),
                            "earlier_tries": m.get("earlier_tries", []),  # their steps, seconds, final scores
                            "judge_fixed": m.get("flagged_seed_fixed"), "surrogate": fix.surrogate_info, "agree": agree,
                            **ev})
            print({k: records[-1][k] for k in ("row", "face", "seed", "flagged_fixed", "face_rate_after",
                                               "other_faces_max_change", "ssim_mean", "steps_done", "seconds")}, flush=True)
    summary = {}
    for row in rows:
        recs = [r for r in records if r["row"] == row]
        prec, rec, n_mon = precision_recall([tuple(a) for r in recs for a in r["agree"]])
        summary[row] = {"n": len(recs), "fixed": sum(r["flagged_fixed"] for r in recs),
                        "face_rate_after_mean": float(np.mean([r["face_rate_after"] for r in recs])),
                        "face_rate_met": sum(r["face_rate_after"] <= 0.005 for r in recs),
                        "others_kept_mean": float(np.mean([r["other_faces_kept"] for r in recs])),
                        "ssim_mean": float(np.mean([r["ssim_mean"] for r in recs])),
                        "median_seconds": statistics.median(r["seconds"] for r in recs),
                        "judge_precision": prec, "judge_recall": rec, "monitor_renders": n_mon}
    header = ["row", "fixed", "face after (mean; <= 0.5%)", "others in 20%", "SSIM novel", "judge vs matcher (P / R, n)",
              "median s"]
    table = [[row, f"{s['fixed']}/{s['n']}", f"{s['face_rate_after_mean']:.2%} ({s['face_rate_met']}/{s['n']} met)",
              f"{s['others_kept_mean']:.3f}", f"{s['ssim_mean']:.3f}",
              f"{_f(s['judge_precision'])} / {_f(s['judge_recall'])}, {s['monitor_renders']}", f"{s['median_seconds']:.1f}"]
             for row, s in summary.items()]
    before = ", ".join(f"{k} {v:.1%}" for k, v in base.copy_rates.items())
    notes = [f"Build: {build_name(studio.model)}. Instances (the first copy of each memorised face from seed "
             f"{args.seed_start}, by the matcher): {', '.join(i.label for i in instances)}; surrogate: "
             f"{SURROGATE_WORDS[args.surrogate]} (bench/faceseval.py).",
             f"Measured on seeds {seeds[0]}-{seeds[-1]}; copy rates before: {before}. "
             + ("Defaults were tuned on seeds < 1000 (bench/faces_tune.py); no seed here chose anything."
                if args.seed_start >= 1000 else "Seeds < 1000: a tuning run, its figures may choose a default."),
             "Targets (issue 13): face after <= 0.5%, flagged seed included; others within +-20%; SSIM >= 0.90; <= 60 s.",
             *(f"{r['row']} {r['face']} #{r['seed']}: fixed {r['flagged_fixed']}, face after {r['face_rate_after']:.2%}, "
               f"others {json.dumps({k: round(v, 2) for k, v in r['other_faces_relative_change'].items()})}, SSIM "
               f"{r['ssim_mean']:.3f}, steps {r['steps_done']}, kept step {r['kept_step']}, {r['seconds']:.1f} s"
               + (f" ({retried_words(r['retried_seeds'])})" if r.get("retried_seeds") else "")
               + (f"; surrogate {_ladder_words(r['surrogate'])}" if "ladder_step" in r.get("surrogate", {}) else "")
               for r in records)]
    if overrides:
        notes.insert(1, f"Config overrides of the studio defaults (not the defaults): {json.dumps(overrides)}.")
    name = args.name or ("heldout_faces_quick" if args.quick else "heldout_faces")
    write_markdown(args.out / f"{name}.md", "Held-out fixes on the faces world: judge-driven vs paper", command_line(),
                   header, table, notes, [{"summary": summary, "records": records}], model=studio.model)
    print((args.out / f"{name}.md").read_text())
    return 0


def _ladder_words(info: dict) -> str:
    """Where a surrogate that follows the near-copy warning stopped (bench/faceseval.py)."""
    where = f"band rows {info['band_rows'][0]}-{info['band_rows'][1]}" if "band_rows" in info else \
        f"strength {info.get('strength')}"
    return f"{where}, similarity {info['copy_similarity']}" + (" (still a near copy)" if info["near_copy"] else "")


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"
