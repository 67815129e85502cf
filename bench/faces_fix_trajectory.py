"""How a stacked face fix moves the other outputs while it trains: SSIM of novel outputs at every
monitor step, beside what the fix itself sees (the judge's score, forgotten, the guard's drift).

    python bench/faces_fix_trajectory.py [--earlier 3,27] [--face 48] [--set settle_steps=30 ...]

The earlier faces are fixed in turn at the faces defaults with other-face surrogates (as
bench/faces_sequential.py does); then --face is fixed with the --set overrides, and at each monitor
step the first --n novel outputs among --tune-seeds are drawn with the fix as it is at that step and
compared with the base model's (the matcher picks the novel ones; it only measures, never decides).
Writes bench/results/<name>.md. Tuning seeds only: this is for choosing, not for reporting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.faceseval import (BATCH, FacesBase, add_stack_args, build_name, find_face_instances,  # noqa: E402
                             fix_earlier_faces, make_surrogate, write_lines)
from core.generate import generate, parse_seeds  # noqa: E402
from core.metrics.integrity import ssim_pair  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import Studio  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    add_stack_args(ap, earlier="3,27", face=48)
    ap.add_argument("--tune-seeds", default="256-767")
    ap.add_argument("--n", type=int, default=128, help="novel outputs drawn at every monitor step")
    add_set_option(ap, "override a field of the traced fix's UnlearnConfig (JSON value), e.g. --set settle_steps=30")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="faces_fix_trajectory")
    args = ap.parse_args()
    if max(parse_seeds(args.tune_seeds, max_count=100_000)) >= 1000:
        raise SystemExit("tuning uses seeds < 1000 only: seeds >= 1000 are kept for the report")
    model = load_model(args.model)
    studio = Studio(model, data_dir=scratch_dir("faces-trajectory-"), restore=False, persist_state=False)
    flag_seeds = parse_seeds(args.flag_seeds)
    base = FacesBase.build(studio, parse_seeds(args.tune_seeds, max_count=100_000))
    novel = base.novel[:args.n]

    def ssim_now() -> float:
        after = generate(model, "", [base.seeds[i] for i in novel], noises=[base.renders[i].noise for i in novel],
                         batch_size=BATCH)
        return float(np.mean([ssim_pair(base.renders[i].image, a.image) for i, a in zip(novel, after)]))

    fix_earlier_faces(studio, args.earlier, flag_seeds)
    before = ssim_now()
    found = find_face_instances(studio, flag_seeds, faces=[args.face])
    if not found:
        raise SystemExit(f"no copy of face {args.face} among seeds {args.flag_seeds} with the earlier fixes on")
    inst = found[0]
    flagged = generate(model, "", [inst.seed])[0].image
    surrogate, info = make_surrogate("other_face", flagged, studio)
    ssims: dict[int, float] = {}
    overrides = config_overrides(args.overrides)
    res = studio.unlearn("", flagged, surrogate, inst.seed, studio.default_config(**overrides), info,
                         on_monitor=lambda step, img: ssims.__setitem__(step, ssim_now()))
    m = res.run.metrics()
    lines = [f"# The face {args.face} fix on top of faces {args.earlier}, step by step", "",
             f"Build: {build_name(model)}. Command: `python bench/faces_fix_trajectory.py {' '.join(sys.argv[1:])}`. "
             f"Flagged seed {inst.seed}; SSIM of the first {len(novel)} novel outputs among tuning seeds "
             f"{args.tune_seeds} against the base model's; {before:.3f} with the earlier fixes, before this one. "
             f"Overrides of the faces defaults: {overrides or 'none'}. Published: step {m.get('kept_step')}.", "",
             "| step | SSIM novel | judge's score | forgotten | guard drift |", "|---|---|---|---|---|"]
    for p in m.get("monitor", []):
        drift = f"{p['drift']:.4f}" if p.get("drift") is not None else ""
        lines.append(f"| {p['step']} | {ssims.get(p['step'], float('nan')):.3f} | {p['score']:.3f} | {p['forgotten']} | {drift} |")
    write_lines(args.out, args.name, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
