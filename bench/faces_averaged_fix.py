"""Two fixes of one face, trained at different training seeds and averaged: does their drift cancel?
(faces world, a diagnosis on tuning seeds)

    python bench/faces_averaged_fix.py [--model faces] [--faces 3,27,48,81] [--train-seeds 0,1]
                                       [--weights 0.5,0.7] [--flag-seeds 0-255] [--tune-seeds 256-767]
                                       [--set FIELD=VALUE ...] [--name NAME]

Remember-only training (no forget loss, bench/faces_control.py with lambda_constant 0) moves one memorised
face by more than 20% at every training seed tried, and a different face at each seed: part of what a fix
does to the other faces is a drift whose direction depends on the training seed. Two fixes of the same
flagged seed share the forgetting and differ in that drift, so their average (both adapters on, each at
weight w) may keep the forgetting and halve the drift. Per face: each fix alone, then both at each weight
of --weights, measured with the copy matcher on --tune-seeds (it only measures; the judge decided each fix).
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
from bench.faceseval import (OTHER_FACES_TOLERANCE, FacesBase, build_name, evaluate_face_fix,  # noqa: E402
                             find_face_instances, fix_face, write_lines)


def summary_lines(records: list[dict], weights: list[float]) -> list[str]:
    """One line per mix (each fix alone, both at each weight): how many fixes took the face away, and over
    those only, the other faces within 20% and the novel outputs' SSIM (a fix that forgot nothing would be
    switched off in the studio, so it moves nothing there)."""
    groups = {"each fix alone": [r for r in records if r["mix"].endswith("alone")]}
    groups.update({f"both at {w:g}": [r for r in records if r["mix"] == f"both at {w:g}"] for w in weights})
    lines = []
    for mix, rs in groups.items():
        gone = [r for r in rs if r["face_rate_after"] <= 0.005 and r["flagged_fixed"]]
        ch = [v for r in gone for v in r["other_faces_relative_change"].values()]
        lines += ["", f"- {mix}: face gone (<= 0.5%, flagged seed) {len(gone)}/{len(rs)}; where gone, other faces "
                      f"within 20% {sum(abs(v) <= OTHER_FACES_TOLERANCE for v in ch)}/{len(ch)}, mean |change| "
                      f"{np.mean(np.abs(ch)) if ch else float('nan'):.3f}, mean SSIM "
                      f"{np.mean([r['ssim_mean'] for r in gone]) if gone else float('nan'):.3f}"]
    return lines


def main(argv=None) -> int:
    from core.generate import parse_seeds
    from core.models import load_model
    from core.studio import Studio

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="faces")
    ap.add_argument("--faces", default="3,27,48,81")
    ap.add_argument("--train-seeds", default="0,1", help="the two fixes' training seeds")
    ap.add_argument("--weights", default="0.5,0.7", help="each adapter's weight when both are on")
    ap.add_argument("--flag-seeds", default="0-255")
    ap.add_argument("--tune-seeds", default="256-767")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="faces_averaged_fix")
    add_set_option(ap, "UnlearnConfig override, as in bench/heldout.py")
    args = ap.parse_args(argv)
    tune = parse_seeds(args.tune_seeds, max_count=100_000)
    if max(tune) >= 1000 or max(parse_seeds(args.flag_seeds, max_count=100_000)) >= 1000:
        raise SystemExit("a diagnosis on tuning seeds: seeds >= 1000 are kept for reports")
    train_seeds = [int(s) for s in args.train_seeds.split(",")]
    weights = [float(w) for w in args.weights.split(",")]
    overrides = config_overrides(args.overrides)

    studio = Studio(load_model(args.model), scratch_dir("faces-averaged-"), restore=False, persist_state=False)
    base = FacesBase.build(studio, tune)
    instances = find_face_instances(studio, parse_seeds(args.flag_seeds), [int(f) for f in args.faces.split(",")])
    records = []
    for inst in instances:
        names, rows = [], []
        for s in train_seeds:
            for n in names:  # each fix is trained against the base, not on top of the other
                studio.fixes.set_enabled(n, False)
            fix = fix_face(studio, inst, studio.default_config(**{**overrides, "seed": s}), "other_face")
            m = fix.result.run.metrics()
            names.append(fix.result.run.run_id)
            rows.append({"mix": f"seed {s} alone", "judge_forgotten": m.get("flagged_seed_fixed"),
                         "steps_done": m["steps_done"], "seconds": round(fix.seconds, 1),
                         **evaluate_face_fix(studio, inst, base, [names[-1]])})
        for w in weights:
            for n in names:
                studio.fixes.set_enabled(n, True, weight=w)
            rows.append({"mix": f"both at {w:g}", **evaluate_face_fix(studio, inst, base, names)})
        for n in names:
            studio.remove_fix(n)
        for r in rows:
            r.update(face=inst.target, flagged_seed=inst.seed)
            print(json.dumps({k: r[k] for k in ("face", "mix", "face_rate_after", "flagged_fixed",
                                                "other_faces_relative_change", "ssim_mean")}), flush=True)
        records += rows

    header = ["face (flagged seed)", "fix", "face after", "flagged seed forgotten", "other faces' changes",
              "within 20%", "SSIM novel"]
    table = [[f"{r['face']} (#{r['flagged_seed']})", r["mix"], f"{r['face_rate_after']:.2%}", r["flagged_fixed"],
              ", ".join(f"{v:+.0%}" for v in r["other_faces_relative_change"].values()),
              f"{sum(abs(v) <= OTHER_FACES_TOLERANCE for v in r['other_faces_relative_change'].values())}/"
              f"{len(r['other_faces_relative_change'])}", f"{r['ssim_mean']:.3f}"] for r in records]
    lines = ["# Two fixes of one face at different training seeds, averaged (tuning seeds, a diagnosis)", "",
             f"Command: `python bench/faces_averaged_fix.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
             f"Build: {build_name(studio.model)}. Flagged: each face's first copy among seeds {args.flag_seeds}; "
             f"surrogate: another face; measured on tuning seeds {args.tune_seeds} (copy rates before: "
             + ", ".join(f"{k} {v:.1%}" for k, v in base.copy_rates.items()) + ")."
             + (f" Config overrides: {json.dumps(overrides)}." if overrides else ""), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table]
    lines += summary_lines(records, weights)
    write_lines(args.out, args.name, lines, {"build": build_name(studio.model), "records": records})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
