"""One face fixed on top of earlier face fixes, once per remember_from choice: does the stacked fix
fail because of where its remember set is drawn, or because of the stack itself?

    python bench/faces_stacked_fix.py [--earlier 3,27,48] [--face 81] [--flag-seeds 0-255]

The earlier faces are fixed in turn at the faces defaults with other-face surrogates (as
bench/faces_sequential.py does), then --face is fixed with each remember_from choice, each time from
the same stack. Prints and writes bench/results/<name>.md: whether the judge saw the flagged seed
forgotten, the steps, the remember set and the judge's score at every 10th monitor step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_dir  # noqa: E402
from bench.faceseval import (add_stack_args, build_name, find_face_instances, fix_earlier_faces,  # noqa: E402
                             fix_face, write_lines)
from core.generate import parse_seeds  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import Studio  # noqa: E402
from core.unlearn.config import REMEMBER_FROM  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    add_stack_args(ap, earlier="3,27,48", face=81)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="faces_stacked_fix")
    args = ap.parse_args()
    model = load_model(args.model)
    studio = Studio(model, data_dir=scratch_dir("faces-stacked-"), restore=False, persist_state=False)
    seeds = parse_seeds(args.flag_seeds)
    lines = [f"# Face {args.face} fixed on top of faces {args.earlier}", "",
             f"Build: {build_name(model)}. Command: `python bench/faces_stacked_fix.py {' '.join(sys.argv[1:])}`. "
             "Other-face surrogates, the faces defaults otherwise; the judge decides.", ""]
    for inst, fix in fix_earlier_faces(studio, args.earlier, seeds):
        lines.append(f"- earlier: face {inst.face} seed {inst.seed}, forgotten {fix.result.run.metrics().get('flagged_seed_fixed')}")
    found = find_face_instances(studio, seeds, faces=[args.face])
    if not found:
        lines.append(f"- face {args.face}: no copy among seeds {args.flag_seeds} with the earlier fixes on")
    for mode in REMEMBER_FROM if found else ():
        fix = fix_face(studio, found[0], studio.default_config(remember_from=mode), "other_face")
        m = fix.result.run.metrics()
        scores = ", ".join(f"{p['score']:.2f}" for p in m.get("monitor", [])[4::5])
        lines.append(f"- face {args.face} seed {found[0].seed}, remember_from {mode}: forgotten {m.get('flagged_seed_fixed')} "
                     f"after {m.get('steps_done')} steps; remember set {m.get('remember_set_size')} (left out "
                     f"{m.get('remember_excluded')}, as the fixes draw them {m.get('remember_as_fixed', 0)}); "
                     f"judge's score every 10 steps: {scores} (bar {m['forgetting']['threshold']})")
        studio.remove_fix(fix.result.run.run_id)
    write_lines(args.out, args.name, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
