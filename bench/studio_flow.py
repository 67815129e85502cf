"""The studio flow as one process, for whole-process timing: load -> generate 16 -> flag the first
seed the checker calls the planted error -> paint a surrogate (scripted strokes) -> fix at the
studio's defaults -> compare 16 seeds. Prints one JSON line of stage seconds.

    PYTHONPATH=. python bench/studio_flow.py [--data-dir DIR] [--prompt "ireland flag"]

With a fresh --data-dir (default: a new temp folder) the remember store starts cold; pass the same
folder again to time a later fix on the same model (the store beside its runs is then warm).

--think-s S models the person: as the studio does after a grid, the fix is prepared in the
background (`Studio.prepare_fix`) while they take S seconds to flag and paint; "fix" is then what
they wait after pressing Unlearn. The default 0 times the machine alone (no preparation).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--prompt", default="ireland flag")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--think-s", type=float, default=0.0,
                    help="seconds the person takes to flag and paint, with the fix prepared meanwhile (0: no preparation)")
    args = ap.parse_args(argv)
    from bench.common import scratch_dir
    from bench.worldeval import scripted_paint_layers
    from core.models import load_model
    from core.studio import Studio

    marks = {"imports": time.perf_counter() - T0}

    def stage(name, t):
        marks[name] = round(time.perf_counter() - t, 3)
        return time.perf_counter()

    t = time.perf_counter()
    studio = Studio(load_model("embedded"), args.data_dir or scratch_dir("flow-"), restore=False,
                    persist_state=False)
    t = stage("load", t)
    gens = studio.generate(args.prompt, range(args.seeds), save=False)
    t = stage(f"generate {args.seeds}", t)
    prep = studio.prepare_fix(args.prompt) if args.think_s > 0 else None
    prepared = None  # [done, total] of the preparation when Unlearn is pressed
    verdicts = [studio.check(args.prompt, g.image)["verdict"] for g in gens]
    seed = next((g.seed for g, v in zip(gens, verdicts) if v == "planted_error"), 0)
    flagged = gens[seed].image
    if prep is not None:  # flagged: the studio prepares again, now drawing ahead for likely look-alikes
        prep = studio.prepare_fix(args.prompt, flagged=flagged)
    sur = studio.surrogate("paint", flagged, {"layers": scripted_paint_layers(args.prompt, flagged)})
    t = stage("flag + paint", t)
    if prep is not None:
        time.sleep(max(0.0, args.think_s - marks["flag + paint"]))  # the person's time, the machine preparing
        prepared = [prep.done, prep.total, prep.lookalikes]
        t = stage("person", t)
    res = studio.unlearn(args.prompt, flagged, sur.image, seed, None, sur.info)
    t = stage("fix", t)
    cmps, _ = studio.compare([args.prompt], range(args.seeds), [res.run.run_id])
    stage(f"compare {args.seeds}", t)
    m = res.run.metrics()
    print(json.dumps({"seconds": marks, "total_s": round(time.perf_counter() - T0, 3), "flagged_seed": seed,
                      "prepared_at_unlearn": prepared,
                      "fixed": m.get("flagged_seed_fixed"), "steps_done": m.get("steps_done"),
                      "remember": [m.get("remember_set_size"), m.get("remember_reused")],
                      "after_rates": cmps[0].summary.get("after_rates")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
