"""Choose the faces world's unlearning defaults on tuning seeds only (seeds < 1000).

    python bench/faces_tune.py [--model faces] [--faces 3,27] [--flag-seeds 0-255] [--per-face 1]
                               [--tune-seeds 256-767] [--grid learning_rate=1e-3,3e-3 --grid steps=60,150 ...]

For each memorised face and surrogate kind: flag the first copy (the first --per-face copies) among
--flag-seeds, fix it with every config of the grid (a product over the --grid fields, over the model's
defaults) and measure on
--tune-seeds: the face's copy rate after, the flagged seed after, the other faces' relative change
and the SSIM of non-copies to the base (bench/faces_forget.py's measures and targets). The copy matcher
measures; the forgetting judge decides every fix, as in the studio. Report seeds (>= 1000) are never
touched here: bench/faces_forget.py reports the chosen defaults on them.
Writes bench/results/<name>.json and <name>.md; `--render-md` rewrites the .md from the .json.
The rule that picks a default from these tables (written down after the first two grids): most fixes meeting all
four targets, then most forgotten fixes with SSIM >= 0.90, then the higher mean SSIM. When the grid
tunes the judge's own bar (forget_threshold), "forgotten" is the matcher's "face gone": the judge's count
grows by lowering its bar, whether or not the face went.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import grid_values, scratch_dir  # noqa: E402
from core.generate import parse_seeds  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import Studio  # noqa: E402
from core.world import faces as W  # noqa: E402
from bench.faceseval import SURROGATES, FacesBase, build_name, find_face_instances, retried_words  # noqa: E402
from bench.faces_forget import met, one_fix  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="faces")
    ap.add_argument("--faces", default=f"{W.MEMORISED[0]},{W.MEMORISED[1]}")
    ap.add_argument("--surrogates", default=",".join(SURROGATES))
    ap.add_argument("--flag-seeds", default="0-255")
    ap.add_argument("--per-face", type=int, default=1,
                    help="flag this many copies of each face (the first ones among --flag-seeds): one instance "
                         "per face chose the defaults until 2026-12-06, and other instances fared worse")
    ap.add_argument("--tune-seeds", default="256-767")
    ap.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                    help="UnlearnConfig field and its values (JSON each); repeatable: the grid is their product")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="faces_tune")
    ap.add_argument("--render-md", action="store_true", help="only rewrite <name>.md from <name>.json")
    args = ap.parse_args()
    if args.render_md:
        out = json.loads((args.out / f"{args.name}.json").read_text())
        grid = list({json.dumps(r["overrides"], sort_keys=True): r["overrides"] for r in out["rows"]}.values())
        write_md(args.out / f"{args.name}.md", out, grid)
        return 0

    tune_seeds = parse_seeds(args.tune_seeds, max_count=100_000)
    if max(tune_seeds) >= 1000 or max(parse_seeds(args.flag_seeds, max_count=100_000)) >= 1000:
        raise SystemExit("tuning uses seeds < 1000 only: seeds >= 1000 are kept for the report")
    if args.per_face < 1:
        raise SystemExit(f"--per-face {args.per_face}: give 1 or more")
    bad = [g for g in args.grid if "=" not in g]
    if bad:
        raise SystemExit(f"--grid {bad[0]!r}: write FIELD=V1,V2, e.g. --grid steps=40,80")
    fields = [(k, grid_values(vs)) for k, vs in (g.split("=", 1) for g in args.grid)]
    grid = [dict(zip([k for k, _ in fields], combo)) for combo in itertools.product(*[v for _, v in fields])] or [{}]
    model = load_model(args.model)
    studio = Studio(model, data_dir=scratch_dir("faces-tune-"), restore=False, persist_state=False)
    base = FacesBase.build(studio, tune_seeds)
    before = base.copy_rates
    rows = []
    faces = [int(f) for f in args.faces.split(",")]
    for inst in find_face_instances(studio, parse_seeds(args.flag_seeds), faces, args.per_face, args.flag_seeds):
        target = W.face_name(inst.face)
        for overrides in grid:
            config = studio.default_config(**overrides)
            for kind in args.surrogates.split(","):
                row = one_fix(studio, kind, inst, base, config)
                row.update(face=target, flagged_seed=inst.seed, overrides=overrides, met=met(row, target),
                           surrogate_request=kind)
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("face", "overrides", "fix_seconds", "judge_forgotten", "met")}
                                 | {"kind": kind, "rate_after": row["copy_rate_after"][target]}), flush=True)
    out = {"build": build_name(model), "flag_seeds": args.flag_seeds, "per_face": args.per_face,
           "tune_seeds": args.tune_seeds,
           "command": "python bench/faces_tune.py " + " ".join(sys.argv[1:]), "copy_rate_before": before, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    write_md(args.out / f"{args.name}.md", out, grid)
    print((args.out / f"{args.name}.md").read_text())
    return 0


def surrogate_label(row: dict) -> str:
    """The surrogate kind the row asked for (older files: its info's kind, with the warning-following
    ladders told apart by the step they stopped at)."""
    info = row["surrogate"]
    return row.get("surrogate_request") or (f"{info['kind']}_until_no_copy" if "ladder_step" in info else info["kind"])


def _copies(n: int) -> str:
    return "copy" if n == 1 else f"{n} copies"


def write_md(path: Path, out: dict, grid: list[dict]) -> None:
    lines = ["# Faces world: choosing the unlearning defaults (tuning seeds only)", "",
             f"Build: {out['build']}. Flagged: the first {_copies(out.get('per_face', 1))} of each face among seeds "
             f"{out['flag_seeds']}; measured "
             f"on tuning seeds {out['tune_seeds']}. Seeds >= 1000 were not used.", "", f"Command: `{out['command']}`", "",
             "Before: " + ", ".join(f"{k} {v:.1%}" for k, v in out["copy_rate_before"].items()), "",
             "'others within 20%', 'SSIM >= 0.90' and 'mean SSIM' count the fixes where the face went (a fix that "
             "forgot nothing is switched off, and leaves every output as it was).", "",
             "| config | fixes | judge: forgotten | face gone (rate <= 0.5%, flagged seed) | others within 20% | "
             "SSIM >= 0.90 | all four targets | mean SSIM | median fix s |", "|---|---|---|---|---|---|---|---|---|"]
    # one row per config, or per config and surrogate when the grid ran several surrogates
    labels = list(dict.fromkeys(surrogate_label(r) for r in out["rows"]))
    for overrides, label in [(o, lab) for o in grid for lab in (labels if len(labels) > 1 else [None])]:
        rs = [r for r in out["rows"] if r["overrides"] == overrides and label in (None, surrogate_label(r))]
        if not rs:
            continue
        n = len(rs)
        cnt = lambda key: sum(r["met"][key] for r in rs)  # noqa: E731
        gone = [r for r in rs if r["met"]["forgotten_rate"]]
        ssim = [r["ssim_novel_outputs_mean"] for r in gone if r["ssim_novel_outputs_mean"] is not None]
        config = json.dumps(overrides) if overrides else "model defaults"
        lines.append(f"| {config}{f' · {label}' if label else ''} | {n} | "
                     f"{sum(bool(r['judge_forgotten']) for r in rs)}/{n} | {cnt('forgotten_rate')}/{n} | "
                     f"{sum(r['met']['other_faces'] for r in gone)}/{len(gone)} | {sum(r['met']['ssim'] for r in gone)}/{len(gone)} | "
                     f"{sum(all(r['met'].values()) for r in rs)}/{n} | "
                     f"{np.mean(ssim) if ssim else float('nan'):.3f} | "
                     f"{np.median([r['fix_seconds'] for r in rs]):.1f} |")
    lines += ["", "Per fix (face, surrogate: rate after, flagged seed after, judge score):", ""]
    for r in out["rows"]:
        j = r.get("judge") or {}
        lines.append(f"- {json.dumps(r['overrides'])} {r['face']} {surrogate_label(r)}: "
                     f"{r['copy_rate_after'][r['face']]:.2%}, {r['flagged_seed_after']['verdict']} "
                     f"({r['flagged_seed_after']['flag']}), score {j.get('score', 'n/a')}, kept step {r['kept_step']}"
                     + (f", {retried_words(r['retried_seeds'])}" if r.get("retried_seeds") else "")
                     + (f", flagged seed {r['flagged_seed']}" if out.get("per_face", 1) > 1 else ""))
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
