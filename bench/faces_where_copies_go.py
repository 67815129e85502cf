"""Where do the other memorised faces' copies go when one face is fixed? (faces world, a diagnosis)

    python bench/faces_where_copies_go.py [--model faces] [--faces 3,27,48,81] [--flag-seeds 0-255]
                                          [--report-seeds 256-767] [--set FIELD=VALUE ...] [--name NAME]

Every face fix at the studio's defaults (other-face surrogates) lowers the other memorised faces' copy
rates by about a third. This bench fixes each face in turn (each fix alone, removed before the next) and
follows the seeds that drew a copy of another memorised face before the fix: what the matcher calls them
after (still that face, a near miss that still resembles it, a novel face, another face), and their
correlation with that face before and after; and the fixed face's own copies: which face, if any, takes
its seeds. Near misses that keep most of the correlation mean the
face is drawn less sharply; a fall to novel faces means the seeds left its basin.
The copy matcher only measures here; the forgetting judge decides every fix, as in the studio.
Writes bench/results/<name>.json and <name>.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.faceseval import FacesBase, build_name, find_face_instances, fix_face, write_lines  # noqa: E402
from core.generate import parse_seeds  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import Studio  # noqa: E402
from core.world import faces as W  # noqa: E402

OUTCOMES = ("same face", "near miss", "novel face", "another face", "unclear")


def outcome(face: int, match: dict, verdict: dict) -> str:
    """What a seed that copied `face` draws now: the same face; a near miss (still nearest `face`, no
    longer a copy); a novel face; a copy of another face; or unclear."""
    if verdict["flag"] == W.face_name(face):
        return "same face"
    if match["copy"]:
        return "another face"
    if match["face"] == face:
        return "near miss"
    return "novel face" if verdict["verdict"] == "correct" else "unclear"


def follow(studio: Studio, base: FacesBase, corr_before: np.ndarray, fixed_face: int, fix_name: str) -> tuple[dict, dict]:
    """The base copies of every memorised face (`corr_before`: the base renders' correlations with each
    training face), followed through the fix `fix_name`: (the other faces' by name, the fixed face's own)."""
    with studio.fixes.only([fix_name]):
        images = [g.image for g in base.redraw(studio)]
    corr_after, _ = W.correlations(images)
    matches = W.match_many(images)
    out = {}
    for face in W.MEMORISED:
        rows = [i for i, v in enumerate(base.verdicts) if v["flag"] == W.face_name(face)]
        after = [(outcome(face, matches[i], W.verdict(images[i], matches[i])), i) for i in rows]
        counts = collections.Counter(o for o, _ in after)
        out[W.face_name(face)] = {
            "copies_before": len(rows), **{k: counts.get(k, 0) for k in OUTCOMES},
            # which faces the "another face" seeds copy now
            "to_faces": dict(collections.Counter(W.face_name(matches[i]["face"]) for o, i in after if o == "another face")),
            "corr_before_median": round(float(np.median(corr_before[rows, face])), 3) if rows else None,
            "corr_after_median": round(float(np.median(corr_after[rows, face])), 3) if rows else None,
        }
    own = out.pop(W.face_name(fixed_face))
    return out, own


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="faces")
    ap.add_argument("--faces", default=",".join(str(f) for f in W.MEMORISED))
    ap.add_argument("--flag-seeds", default="0-255")
    ap.add_argument("--report-seeds", default="256-767", help="tuning seeds by default (this bench chooses nothing)")
    add_set_option(ap, "override a field of every fix's UnlearnConfig (JSON value); repeatable")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="faces_where_copies_go")
    args = ap.parse_args()

    model = load_model(args.model)
    studio = Studio(model, data_dir=scratch_dir("faces-copies-"), restore=False, persist_state=False)
    overrides = config_overrides(args.overrides)
    config = studio.default_config().with_overrides(**overrides)
    base = FacesBase.build(studio, parse_seeds(args.report_seeds, max_count=100_000))
    corr_before, _ = W.correlations([g.image for g in base.renders])
    rows = []
    for inst in find_face_instances(studio, parse_seeds(args.flag_seeds), faces=[int(f) for f in args.faces.split(",")]):
        fix = fix_face(studio, inst, config, "other_face")
        name = fix.result.run.run_id
        others, own = follow(studio, base, corr_before, inst.face, name)
        rows.append({"fixed": inst.target, "seed": inst.seed, "judge_forgotten": fix.result.run.metrics().get("flagged_seed_fixed"),
                     "others": others, "own": own})
        studio.fixes.remove(name)
    totals = {k: sum(o[k] for r in rows for o in r["others"].values()) for k in ("copies_before", *OUTCOMES)}
    record = {"build": build_name(model), "report_seeds": args.report_seeds, "flag_seeds": args.flag_seeds,
              "overrides": overrides, "fixes": rows, "totals": totals}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    cmd = " ".join(["python bench/faces_where_copies_go.py", *sys.argv[1:]])
    lines = ["# Where the other memorised faces' copies go when one face is fixed", "",
             f"Build: {record['build']}. Command: `{cmd}`. Followed on seeds {args.report_seeds}; flagged seeds "
             f"from {args.flag_seeds}; other-face surrogates, the studio's defaults"
             + (f" with {json.dumps(overrides)}" if overrides else "") + ". The judge decided each fix; the matcher only measured.",
             "", "Each row: the seeds that drew a copy of another memorised face before the fix, and what they draw after "
             "(near miss = still nearest that face, no longer a copy).", "",
             "| fixed | judge: forgotten | face | copies before | " + " | ".join(OUTCOMES)
             + " | correlation before / after (median) |", "|---" * (5 + len(OUTCOMES)) + "|"]
    for r in rows:
        for face, o in r["others"].items():
            lines.append(f"| {r['fixed']} (seed {r['seed']}) | {r['judge_forgotten']} | {face} | {o['copies_before']} | "
                         + " | ".join(str(o[k]) for k in OUTCOMES)
                         + f" | {o['corr_before_median']} / {o['corr_after_median']} |")
    lines.append(f"| all | | | {totals['copies_before']} | " + " | ".join(str(totals[k]) for k in OUTCOMES) + " | |")
    lines += ["", "The fixed face's own copies: where its seeds go (another face: which one).", "",
              "| fixed | judge: forgotten | copies before | " + " | ".join(OUTCOMES) + " | another face: which |",
              "|---" * (4 + len(OUTCOMES)) + "|"]
    for r in rows:
        o = r["own"]
        lines.append(f"| {r['fixed']} (seed {r['seed']}) | {r['judge_forgotten']} | {o['copies_before']} | "
                     + " | ".join(str(o[k]) for k in OUTCOMES) + f" | {json.dumps(o['to_faces']) if o['to_faces'] else '-'} |")
    write_lines(args.out, args.name, lines + [""])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
