"""Which flagged-seed score tells a forgotten face? Trajectories of faces fixes, scored every way (tuning seeds).

The judge calls the flagged seed forgotten when its re-render has moved far enough from the flagged
image toward the surrogate inside the region the user changed. Today "far enough" is a ratio of mean
absolute differences (core.judge, `l1_ratio`). A blurred or noisy re-render is far from both images,
so the ratio drifts to 0.5 (the faces world's bar) while the picture is still the flagged face: the
held-out fix of face 27 (seed 1005) stopped on such a render.

This bench trains each fix for all its steps (no stop), keeps every monitor render of the flagged
seed, and scores each render with every candidate of `core.judge.SCORE_KINDS` beside the matcher's
verdict (still a copy of the face or not). The matcher only measures here, on tuning seeds (< 1000),
to choose the judge's score; it never decides a fix.

    PYTHONPATH=. python bench/faces_judge_score.py [--per-face 3] [--surrogates other_face,paint,sdedit]
                                                   [--fix-seed 0] [--name faces_judge_score]
    PYTHONPATH=. python bench/faces_judge_score.py --render-md --name faces_judge_score
    PYTHONPATH=. python bench/faces_judge_score.py --pool RUN1 RUN2 ... --name POOLED

Writes bench/results/<name>.json (every render's scores and verdict) and <name>.md: for each score
kind and bar, per render the precision (of "forgotten" calls, the share the matcher agrees with) and
recall, and per fix whether the first render called forgotten was one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import command_line, scratch_dir  # noqa: E402
from bench.faceseval import (SURROGATES, FaceInstance, build_name, find_face_instances, make_surrogate,  # noqa: E402
                             write_lines)
from core.generate import generate, parse_seeds  # noqa: E402
from core.judge import SCORE_KINDS, ForgettingJudge, pick_descriptor  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import Studio  # noqa: E402
from core.world import faces as W  # noqa: E402

BARS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
# The judge's two bars together: the ratio at the faces world's forget_threshold and projection_centred
# at each bar (UnlearnConfig.forget_projection), as core.judge decides when both are set.
RATIO_BAR = 0.5
BOTH = f"l1_ratio >= {RATIO_BAR} and projection_centred"


def _score(render: dict, score: str) -> float:
    """A render's score by one kind, or (BOTH) its projection where the ratio passes, else -1."""
    if score == BOTH:
        return render["projection_centred"] if render["l1_ratio"] >= RATIO_BAR else -1.0
    return render[score]


def trajectory(studio: Studio, inst: FaceInstance, kind: str, fix_seed: int) -> dict:
    flagged = generate(studio.model, "", [inst.seed])[0].image
    surrogate, info = make_surrogate(kind, flagged, studio)
    config = studio.default_config().with_overrides(stop_when_fixed=False, keep_best=False, settle_patience=0,
                                                    seed=fix_seed)
    res = studio.unlearn("", flagged, surrogate, inst.seed, config, info)
    studio.remove_fix(res.run.run_id)  # each fix is scored on the base model alone
    judge = ForgettingJudge(flagged, surrogate, pick_descriptor(studio.model))
    renders = []
    for step, img in res.monitor:
        renders.append({"step": step, "copy": W.verdict(img)["flag"] == inst.target,
                        **{k: round(judge.progress(img, k), 5) for k in SCORE_KINDS}})
    return {"face": inst.face, "seed": inst.seed, "surrogate": kind, "renders": renders}


def summarise(fixes: list[dict]) -> list[dict]:
    rows = []
    for kind in sorted({f["surrogate"] for f in fixes}):
        fs = [f for f in fixes if f["surrogate"] == kind]
        for score in (*SCORE_KINDS, BOTH):
            for bar in BARS:
                calls = [(_score(r, score) >= bar, not r["copy"]) for f in fs for r in f["renders"]]
                said = [gone for call, gone in calls if call]
                gone_total = sum(gone for _, gone in calls)
                firsts = [next((not r["copy"] for r in f["renders"] if _score(r, score) >= bar), None) for f in fs]
                rows.append({"surrogate": kind, "score": score, "bar": bar,
                             "precision": float(np.mean(said)) if said else None,
                             "recall": sum(said) / gone_total if gone_total else None,
                             "first_call_right": sum(x is True for x in firsts),
                             "first_call_wrong": sum(x is False for x in firsts),
                             "never_called": sum(x is None for x in firsts), "fixes": len(fs)})
    return rows


def write_md(out: Path, name: str, data: dict) -> None:
    fixes = data["fixes"]
    lines = ["# Faces: which flagged-seed score tells a forgotten face? (tuning seeds)", "",
             f"Made by: `{data['command']}`", "", f"Model: {data['build']}", "",
             f"{len(fixes)} fixes (the first {data['per_face']} copies of each memorised face among seeds "
             f"{data['flag_seeds']}, training seed{'s' if data.get('pooled') else ''} {data['fix_seed']}), each "
             "trained for all its steps with no stop; "
             f"every monitor render of the flagged seed ({sum(len(f['renders']) for f in fixes)} in all) scored by each "
             "kind and labelled by the matcher (still a copy of the face, or not). Tuning seeds only: this chooses, it "
             "reports nothing.", "",
             "Per render: precision = of the renders a score calls forgotten, the share the matcher calls no copy; "
             "recall = of the renders the matcher calls no copy, the share the score calls forgotten. Per fix: the "
             "first render the score calls forgotten (where a fix would stop) is right (no copy) or wrong (a copy); "
             "never = the score never reached the bar.", "",
             "| surrogate | score | bar | precision | recall | first call right / wrong / never |", "|---|---|---|---|---|---|"]
    f3 = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in data["summary"]:
        lines.append(f"| {r['surrogate']} | {r['score']} | {r['bar']} | {f3(r['precision'])} | {f3(r['recall'])} | "
                     f"{r['first_call_right']} / {r['first_call_wrong']} / {r['never_called']} (of {r['fixes']}) |")
    write_lines(out, name, lines)


def save(out: Path, name: str, data: dict) -> None:
    """<name>.json (every render) and <name>.md (the tables) under out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1))
    write_md(out, name, data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="faces")
    ap.add_argument("--flag-seeds", default="0-255")
    ap.add_argument("--per-face", type=int, default=3)
    ap.add_argument("--surrogates", default="other_face,paint,sdedit")
    ap.add_argument("--fix-seed", type=int, default=0, help="the fixes' training seed (UnlearnConfig.seed)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="faces_judge_score")
    ap.add_argument("--render-md", action="store_true", help="only rewrite <name>.md from <name>.json")
    ap.add_argument("--pool", nargs="+", default=None, metavar="NAME",
                    help="write <name>.json/.md from these results' fixes together (e.g. one per training seed)")
    args = ap.parse_args()
    if args.render_md:
        data = json.loads((args.out / f"{args.name}.json").read_text())
        data["summary"] = summarise(data["fixes"])
        write_md(args.out, args.name, data)
        return 0
    if args.pool:
        runs = [json.loads((args.out / f"{n}.json").read_text()) for n in args.pool]
        if len({r["build"] for r in runs}) > 1 or len({r["flag_seeds"] for r in runs}) > 1:
            raise SystemExit("--pool: the results differ in build or flagged seeds; pool runs of one setup only")
        fixes = [f for r in runs for f in r["fixes"]]
        fix_seeds = ", ".join(str(r["fix_seed"]) for r in runs)
        save(args.out, args.name, {**runs[0], "command": command_line(), "fix_seed": fix_seeds,
                                   "pooled": list(args.pool), "fixes": fixes, "summary": summarise(fixes)})
        return 0
    flag_seeds = parse_seeds(args.flag_seeds, max_count=100_000)
    if max(flag_seeds) >= 1000:
        raise SystemExit("tuning uses seeds < 1000 only: seeds >= 1000 are kept for the report")
    kinds = [k for k in args.surrogates.split(",") if k]
    for k in kinds:
        if k not in SURROGATES:
            raise SystemExit(f"--surrogates: {k!r} is not one of {', '.join(SURROGATES)}")
    model = load_model(args.model)
    studio = Studio(model, data_dir=scratch_dir("faces-judge-score-"), restore=False, persist_state=False)
    fixes = []
    # the matcher only picks which outputs to flag, as a user flags copies they saw
    for inst in find_face_instances(studio, flag_seeds, per_face=args.per_face):
        for kind in kinds:
            fixes.append(trajectory(studio, inst, kind, args.fix_seed))
            print(inst.label, kind, "done", flush=True)
    data = {"command": command_line(), "build": build_name(model), "flag_seeds": args.flag_seeds,
            "per_face": args.per_face, "fix_seed": args.fix_seed, "fixes": fixes, "summary": summarise(fixes)}
    save(args.out, args.name, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
