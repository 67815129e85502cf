"""Several fixes in sequence: flagged instances fixed one after another as stacked adapters,
with integrity measured after each: the paper's multi-instance setting, for every method.

    python bench/sequential.py --quick                 # 2 instances, 40 steps, every method
    python bench/sequential.py --methods surrogate     # 4 instances, 100 steps, our method only
    python bench/sequential.py --methods surrogate --seed-start 1000 --set remember_from=base --name NAME
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.report import command_line, write_markdown  # noqa: E402
from bench.worldeval import CONTROL_PROMPTS, PLANTED_PROMPTS, BaseCache, evaluate_fix, find_instances, fix_instance, render_with_fixes  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="stacked fixes, integrity after each")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds per prompt to find instances and evaluate on (default 32, quick 16); one fix "
                         "often corrects its prompt's other error seeds, so a sequence of 4 may need more")
    ap.add_argument("--methods", default="surrogate,neggrad,erasediff,siss",
                    help="comma list of methods (core.unlearn.config.METHODS); each runs the same candidate "
                         "sequence from the base model, at the studio's defaults otherwise")
    ap.add_argument("--seed-start", type=int, default=0,
                    help="first seed of each prompt (instances and evaluation); >= 1000: seeds no default was "
                         "chosen on")
    add_set_option(ap, "override a field of every fix's UnlearnConfig (JSON value), e.g. --set remember_from=base")
    ap.add_argument("--name", default=None, help="results file name (default sequential or sequential_quick)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    overrides = config_overrides(args.overrides)
    from core.unlearn.config import METHODS
    from core.models import load_model
    from core.studio import AlreadyFixedError, Studio

    steps = args.steps or (40 if args.quick else 100)
    studio = Studio(load_model(args.model), scratch_dir("seq-"), restore=False, persist_state=False)
    prompts = list(PLANTED_PROMPTS) + list(CONTROL_PROMPTS[:2 if args.quick else 4])
    cache = BaseCache.build(studio, prompts, list(range(args.seed_start, args.seed_start + (args.seeds or (16 if args.quick else 32)))))
    # Two per prompt even in quick mode: the shipped model shows only the Japan error, and a
    # sequence needs at least two instances.
    found = find_instances(cache, per_prompt=2 if args.quick else 8)
    # interleave prompts so a Japan fix lands on top of an Ireland fix
    rank = [sum(j.prompt == i.prompt for j in found[:k]) for k, i in enumerate(found)]  # k-th of its prompt
    candidates = [found[k] for k in sorted(range(len(found)), key=lambda k: (rank[k], found[k].prompt))]
    wanted = 2 if args.quick else 4
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if bad := [m for m in methods if m not in METHODS]:
        raise SystemExit(f"--methods: unknown {', '.join(bad)}; choose from {', '.join(METHODS)}")
    rows, notes_per_method = [], []
    for method in methods:
        seq = run_sequence(studio, cache, candidates, method, steps, wanted, AlreadyFixedError, overrides)
        rows += seq["rows"]
        notes_per_method.append(
            f"{method}: {len(seq['instances'])} fixed in order; skipped as already drawn right by the fixes before "
            f"them (the studio refuses to fix those): {', '.join(seq['skipped']) or 'none'}; ended unfixed, so the "
            f"studio switched the fix off and it is not in the stack: {', '.join(seq['switched_off']) or 'none'}.")
        for name in seq["names"]:  # the next method starts from the base model
            studio.remove_fix(name)
    table = [[r["method"], r["after_fix"], r["instance"], "yes" if r["flagged_fixed"] else "no", _f(r["same_prompt_verdict_kept"]),
              _f(r["other_prompts_verdict_kept"]), _f(r["ssim_mean"]), _f(r["clip_fd"])] for r in rows]
    header = ["method", "fixes stacked", "instance checked", "still fixed", "same-prompt kept", "other prompts kept", "SSIM vs base", "world-CLIP FD"]
    notes = [f"Instances fixed in order, each a LoRA stacked on the earlier ones, at the studio's defaults for the "
             f"model (at most {steps} steps, stop at the forgetting judge's first forgotten monitor step); scripted "
             "paint surrogate; each row re-checks one earlier instance (checker) with all fixes so far enabled. "
             "Every method walks the same candidate list from the base model."
             + (f" Config overrides: {overrides}." if overrides else "")] + notes_per_method
    name = args.name or ("sequential_quick" if args.quick else "sequential")
    write_markdown(args.out / f"{name}.md", "Several fixes in sequence", command_line(), header, table, notes, rows, model=studio.model)
    print((args.out / f"{name}.md").read_text())
    return 0


def run_sequence(studio, cache, candidates, method: str, steps: int, wanted: int, already_fixed,
                 overrides: dict | None = None) -> dict:
    """Fix candidates one after another with `method` until `wanted` are in the stack; after each,
    re-check every instance fixed so far on one render of the whole stack."""
    names, rows, instances, skipped, switched_off = [], [], [], [], []
    for inst in candidates:
        if len(instances) == wanted:
            break
        # the studio defaults, stop-when-fixed included
        cfg = studio.default_config(steps=steps, method=method).with_overrides(**(overrides or {}))
        try:
            res, _, secs = fix_instance(studio, inst, cache, cfg)
        except already_fixed:  # an earlier fix of the prompt already corrected this seed
            skipped.append(f"{inst.prompt}#{inst.seed}")
            continue
        if not studio.fixes.fixes[res.run.run_id].enabled:  # ended unfixed: the studio keeps it off
            switched_off.append(f"{inst.prompt}#{inst.seed}")
            studio.remove_fix(res.run.run_id)
            continue
        instances.append(inst)
        names.append(res.run.run_id)
        renders = render_with_fixes(studio, cache, names)  # one render of the stack, judged per instance
        for j, earlier in enumerate(instances, 1):
            ev = evaluate_fix(studio, earlier, cache, names, renders)
            rows.append({"method": method, "after_fix": len(instances), "instance": f"{earlier.prompt}#{earlier.seed}",
                         "fix_index": j, "seconds": secs, **ev})
            print(rows[-1], flush=True)
    return {"names": names, "rows": rows, "instances": instances, "skipped": skipped, "switched_off": switched_off}


def _f(v):
    return "n/a" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
