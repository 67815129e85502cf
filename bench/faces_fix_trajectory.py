"""How a stacked face fix moves the other outputs while it trains: SSIM of novel outputs at every
monitor step, beside what the fix itself sees (the judge's score, forgotten, the guard's drift).

    python bench/faces_fix_trajectory.py [--earlier 3,27] [--face 48] [--set settle_steps=30 ...] [--rates]

--rates adds the memorised faces' copy rates on all --tune-seeds at every monitor step: whether any
state the fix passes through keeps the other faces within +-20% (so a choice among its states could).

The earlier faces are fixed in turn at the faces defaults with other-face surrogates (as
bench/faces_sequential.py does); then --face is fixed with the --set overrides, and at each monitor
step the first --n novel outputs among --tune-seeds are drawn with the fix as it is at that step and
compared with the base model's (the matcher picks the novel ones; it only measures, never decides).
Writes bench/results/<name>.md. Tuning seeds only: this is for choosing, not for reporting.
"""

from __future__ import annotations

import argparse
import shlex
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
from core.world import faces as W  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    add_stack_args(ap, earlier="3,27", face=48)
    ap.add_argument("--tune-seeds", default="256-767")
    ap.add_argument("--n", type=int, default=128, help="novel outputs drawn at every monitor step")
    ap.add_argument("--rates", action="store_true",
                    help="also every memorised face's copy rate on all --tune-seeds at every monitor step")
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

    def rates_now() -> dict[str, float]:
        return W.check_images([g.image for g in base.redraw(studio)])["copy_rates"]

    fix_earlier_faces(studio, args.earlier, flag_seeds)
    before = ssim_now()
    rates_before = rates_now() if args.rates else {}
    found = find_face_instances(studio, flag_seeds, faces=[args.face])
    if not found:
        raise SystemExit(f"no copy of face {args.face} among seeds {args.flag_seeds} with the earlier fixes on")
    inst = found[0]
    flagged = generate(model, "", [inst.seed])[0].image
    surrogate, info = make_surrogate("other_face", flagged, studio)
    ssims: dict[int, float] = {}
    rates: dict[int, dict[str, float]] = {}

    def on_monitor(step, img) -> None:
        ssims[step] = ssim_now()
        if args.rates:
            rates[step] = rates_now()

    overrides = config_overrides(args.overrides)
    # on_monitor draws with the model itself, so the training must wait for it: inline monitor (an
    # overlapped one calls it while the steps go on, core/unlearn/overlap.py)
    res = studio.unlearn("", flagged, surrogate, inst.seed,
                         studio.default_config(**{"overlap_monitor": False, **overrides}), info, on_monitor=on_monitor)
    m = res.run.metrics()
    on_top = f"on top of faces {args.earlier}" if args.earlier else "alone"
    earlier = f"{before:.3f} with the earlier fixes, before this one" if args.earlier else "no earlier fixes"
    lines = [f"# The face {args.face} fix {on_top}, step by step", "",
             f"Build: {build_name(model)}. Command: `python bench/faces_fix_trajectory.py {shlex.join(sys.argv[1:])}`. "
             f"Flagged seed {inst.seed}; SSIM of the first {len(novel)} novel outputs among tuning seeds "
             f"{args.tune_seeds} against the base model's; {earlier}. "
             f"Overrides of the faces defaults: {overrides or 'none'}. Published: step {m.get('kept_step')}.", ""]
    faces = sorted(rates_before, key=lambda k: int(k.split()[-1]))
    others = [f for f in faces if f != f"face {args.face}"]
    if args.rates:
        lines += [f"Copy rates on all {len(base.seeds)} tuning seeds before this fix: "
                  + ", ".join(f"{f} {100 * rates_before[f]:.1f}%" for f in faces)
                  + ". 'others in 20%': how many of the other memorised faces keep their rate within +-20%.", ""]
    head = ["step", "SSIM novel", "judge's score", "forgotten", "guard drift"]
    head += [f"{f}" for f in faces] + (["others in 20%"] if args.rates else [])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in m.get("monitor", []):
        drift = f"{p['drift']:.4f}" if p.get("drift") is not None else ""
        row = [str(p["step"]), f"{ssims.get(p['step'], float('nan')):.3f}", f"{p['score']:.3f}", str(p["forgotten"]), drift]
        if args.rates and p["step"] in rates:
            now = rates[p["step"]]
            row += [f"{100 * now[f]:.1f}%" for f in faces]
            row.append(f"{sum(abs(now[f] - rates_before[f]) <= 0.2 * rates_before[f] for f in others)}/{len(others)}")
        lines.append("| " + " | ".join(row) + " |")
    write_lines(args.out, args.name, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
