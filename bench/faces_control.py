"""A control for issue 13's "other memorised faces within +-20%": fix outputs that copy no face.

    python bench/faces_control.py [--model faces] [--controls 4] [--seed-start 1000] [--seeds 1024]
                                  [--surrogate other_face] [--set FIELD=VALUE ...]

The held-out faces bench finds that when a fix truly removes a face, the other memorised faces'
copy rates fall by 27-70%. Is that the fix reaching for memorised faces in general, or would any
fix of that size move those rates? Here the flagged outputs are *novel* faces (the matcher calls
them copies of nothing), from the first novel seeds at --seed-start, each fixed exactly as the
held-out bench fixes a copy (same surrogate kind, same config), and measured on the same report
seeds: every memorised face's relative change in copy rate, and the SSIM of the novel outputs.
The fix is measured as trained, whatever the judge said. Nothing here chooses a default.
Writes bench/results/<name>.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.faceseval import (OTHER_FACES_TOLERANCE, SURROGATE_WORDS, SURROGATES, FaceInstance,  # noqa: E402
                             FacesBase, build_name, evaluate_face_fix, fix_face)
from bench.report import command_line, write_markdown  # noqa: E402


def main(argv=None) -> int:
    from core.models import load_model
    from core.studio import Studio

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="faces")
    ap.add_argument("--controls", type=int, default=4, help="novel outputs to fix")
    ap.add_argument("--seed-start", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=1024, help="report seeds from --seed-start")
    ap.add_argument("--surrogate", default="other_face", choices=SURROGATES)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="faces_control")
    add_set_option(ap, "UnlearnConfig override, as in bench/heldout.py")
    args = ap.parse_args(argv)
    overrides = config_overrides(args.overrides)

    studio = Studio(load_model(args.model), scratch_dir("faces-control-"), restore=False,
                    persist_state=False)
    base = FacesBase.build(studio, range(args.seed_start, args.seed_start + args.seeds))
    instances = [FaceInstance(None, base.seeds[i]) for i in base.novel[: args.controls]]
    config = studio.default_config().with_overrides(**overrides)
    records = []
    for inst in instances:
        fix = fix_face(studio, inst, config, args.surrogate)
        m = fix.result.run.metrics()
        ev = evaluate_face_fix(studio, inst, base, [fix.result.run.run_id])
        studio.remove_fix(fix.result.run.run_id)
        records.append({"seed": inst.seed, "seconds": round(fix.seconds, 1), "steps_done": m["steps_done"],
                        "judge_forgotten": m.get("flagged_seed_fixed"), "flagged_after": ev["flagged_seed_after"],
                        "relative_change": ev["other_faces_relative_change"], "ssim_mean": ev["ssim_mean"],
                        "verdicts_unchanged": ev["verdicts_unchanged"]})
        print(json.dumps(records[-1]), flush=True)

    faces = list(base.copy_rates)
    header = ["novel seed fixed", "steps", "judge: forgotten", *faces, "max |change|", "SSIM novel",
              "verdicts unchanged"]
    table = [[f"#{r['seed']}", r["steps_done"], r["judge_forgotten"],
              *(f"{r['relative_change'][f]:+.0%}" for f in faces),
              f"{max(map(abs, r['relative_change'].values())):.0%}", f"{r['ssim_mean']:.3f}",
              f"{r['verdicts_unchanged']:.3f}"] for r in records]
    within = [abs(v) <= OTHER_FACES_TOLERANCE for r in records for v in r["relative_change"].values()]
    notes = [f"Build: {build_name(studio.model)}. Flagged: the first {len(instances)} novel outputs (the matcher "
             f"calls them copies of no face) from seed {args.seed_start}; surrogate: {SURROGATE_WORDS[args.surrogate]}.",
             "Config: the studio's faces defaults" + (f" with {json.dumps(overrides)}" if overrides else "")
             + "; each fix measured as trained (the judge's verdict does not switch it off here).",
             f"Measured on seeds {base.seeds[0]}-{base.seeds[-1]}; copy rates before: "
             + ", ".join(f"{k} {v:.1%}" for k, v in base.copy_rates.items()) + ".",
             f"Memorised faces within +-{OTHER_FACES_TOLERANCE:.0%}: {sum(within)}/{len(within)} "
             f"(face x fix); mean relative change {np.mean([v for r in records for v in r['relative_change'].values()]):+.1%}."]
    write_markdown(args.out / f"{args.name}.md", "Control: fixes of novel faces, and the memorised faces' copy rates",
                   command_line(), header, table, notes, [{"records": records}], model=studio.model)
    print((args.out / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
