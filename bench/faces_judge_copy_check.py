"""Would a copy check catch the judge's false "forgotten"? Reads the faces tuning grids' JSON (nothing is run).

The judge calls the flagged seed forgotten when its re-render moved far enough toward the surrogate
in the edited region. It also records how similar that re-render still is to the flagged image, by
the product's copy descriptor. This table asks one question of every tuning fix the judge called
forgotten: if the judge also required the re-render to be no near copy of the flagged image
(similarity under the build's copy threshold), which of them would it have kept training? The
matcher's verdict at the flagged seed (the world's ground truth) says which were copies still.

    PYTHONPATH=. python bench/faces_judge_copy_check.py
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import command_line, markdown_table, write_report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# the builds' thumbnail copy thresholds (their cards): the seed-0 build (shipped until 2026-12-04) and the seed-1 build
THRESHOLDS = {"seed 0": 0.984, "seed 1": 0.965}


def judged_fixes(paths) -> list[dict]:
    """One row per tuning fix the judge called forgotten: surrogate kind, build, copy similarity, matcher."""
    out = []
    for path in paths:
        data = json.loads(path.read_text())
        build = "seed 1" if "build_seed1" in path.name else "seed 0"
        for row in data.get("rows", []):
            judge = row.get("judge")
            judge = ast.literal_eval(judge) if isinstance(judge, str) else judge
            if not judge or not row.get("judge_forgotten") or judge.get("copy_similarity") is None:
                continue
            kind = row["surrogate"]["kind"] if isinstance(row["surrogate"], dict) else row["surrogate"]
            out.append({"kind": kind, "build": build, "similarity": float(judge["copy_similarity"]),
                        "matcher_copy": row["flagged_seed_after"]["verdict"] == "planted_error"})
    return out


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[len(values) // 2]:.3f} ({values[0]:.3f}-{values[-1]:.3f}), n {len(values)}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--name", default="faces_judge_copy_check")
    args = ap.parse_args(argv)
    paths = sorted(args.results.glob("faces_tune_*.json"))
    fixes = judged_fixes(paths)
    counts = Counter((f["kind"], f["similarity"] >= THRESHOLDS[f["build"]], f["matcher_copy"]) for f in fixes)
    kinds = sorted({f["kind"] for f in fixes})
    table = [[k, counts[(k, False, True)] + counts[(k, True, True)], counts[(k, True, True)], counts[(k, True, False)],
              _spread([f["similarity"] for f in fixes if f["kind"] == k and f["matcher_copy"]]),
              _spread([f["similarity"] for f in fixes if f["kind"] == k and not f["matcher_copy"]])]
             for k in kinds]
    blocks = [f"{len(fixes)} fixes the judge called forgotten, from {len(paths)} tuning grids (faces_tune_*.json; "
              "seeds < 1000). Thresholds: " + ", ".join(f"build {b} {t}" for b, t in THRESHOLDS.items()) + ".",
              markdown_table(["surrogate", "still a copy (matcher)", "of those, a copy check would catch",
                              "a copy check would also stop (matcher: not a copy)",
                              "similarity, still a copy: median (min-max)",
                              "similarity, not a copy: median (min-max)"], table),
              "A check at the threshold misses every copy left by another face: their similarity overlaps that of "
              "the fixes that did forget. With a painted band the re-render is meant to stay a near copy "
              "outside the band, so a check there would stop fixes that worked."]
    write_report(args.results / f"{args.name}.md", "Faces: would a copy check catch the judge's false 'forgotten'?",
                 command_line(), blocks)
    print((args.results / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
