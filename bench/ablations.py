"""Ablations of the paper's method on the flags world, one factor at a time.

  surgery: off / forget-only projection (paper) / PCGrad-both
  lambda: constant 0.5 vs timestep-aware s**k for k in a sweep
  surrogate: paint (scripted repaint), SDEdit at 3 strengths, CLIP edit at w = 0.5/2/8/32, flip,
             noise at sigma 0.2 and 0.6 of the pixel range (the paper's levels)
  remember-set size

The instance is a Japan flag drawn with a blue disc: there the scripted paint (disc repainted
red) and the flip (the image mirrored, disc still blue) are different surrogates; on a reversed
Ireland the paint *is* the mirror image, so those two rows would be one.

    python bench/ablations.py --quick     # fewer settings, 40 steps
    python bench/ablations.py --preset paper,studio   # both row sets (core/unlearn/presets.py)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_dir  # noqa: E402
from bench.report import command_line, plot_settings, write_markdown  # noqa: E402
from bench.worldeval import BaseCache, Instance, evaluate_fix, fix_instance, mean_std  # noqa: E402
from core.unlearn.presets import apply_preset, parse_presets  # noqa: E402

# A japan flag seed the shipped build draws with a blue disc (seeds 9, 13, 18, 27, 28, 40, 57 of 0-63;
# seed 29 has an off-centre disc; `python -m core.cli check --prompt
# "japan flag" --seeds 0-63`), so paint != flip.
DEFAULT_INSTANCE = "japan flag#13"


def settings(quick: bool, prompt: str):
    s = [("surgery", "off", {"surgery": "off"}, "paint", {}), ("surgery", "forget (paper)", {"surgery": "forget"}, "paint", {}),
         ("surgery", "pcgrad (both)", {"surgery": "pcgrad"}, "paint", {}),
         ("lambda", "constant 0.5", {"lambda_scheme": "constant", "lambda_constant": 0.5}, "paint", {})]
    for k in ((1.0, 2.0) if quick else (0.5, 1.0, 2.0, 4.0)):
        # The paper's k did not survive extraction: k=2 is the studio's assumed default, not the paper's.
        s.append(("lambda", f"timestep k={k:g}" + (" (assumed default)" if k == 2.0 else ""), {"lambda_exponent": k},
                  "paint", {}))
    s.append(("surrogate", "paint (scripted)", {}, "paint", {}))
    for st in ((0.5,) if quick else (0.3, 0.5, 0.7)):
        s.append(("surrogate", f"sdedit {st}", {}, "sdedit", {"strength": st, "prompt": prompt}))
    for w in ((2.0,) if quick else (0.5, 2.0, 8.0, 32.0)):
        s.append(("surrogate", f"clip w={w:g}", {}, "clip", {"text": prompt, "clip_weight": w}))
    s.append(("surrogate", "flip", {}, "flip", {}))
    for sigma in (0.2, 0.6):  # the paper's noise levels, as a fraction of the pixel range
        s.append(("surrogate", f"noise sigma={sigma:g}", {}, "noise", {"sigma": sigma}))
    for n in ((10, 50) if quick else (10, 25, 50, 100)):
        s.append(("remember size", str(n), {"remember_set_size": n}, "paint", {}))
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="ablations on the flags world")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--eval-seeds", type=int, default=None, help="seeds per prompt for integrity (quick 16, full 32)")
    ap.add_argument("--instance", default=DEFAULT_INSTANCE,
                    help="PROMPT#SEED of the misrepresented output to fix; a comma list runs every setting on each")
    ap.add_argument("--name", default=None, help="result file name (default from --quick, --preset and --groups)")
    ap.add_argument("--groups", default=None, help="comma list of factors to run (surgery, lambda, surrogate, "
                    "remember size); default all")
    ap.add_argument("--preset", default="studio", help="comma list of row sets: paper, studio (core/unlearn/presets.py)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--replot", type=Path, default=None, metavar="JSON",
                    help="only redraw the PNG from an earlier run's JSON (no training)")
    args = ap.parse_args(argv)
    if args.replot:
        print(plot(json.loads(args.replot.read_text()), args.replot.with_suffix(".png")))
        return 0
    from core.models import load_model
    from core.studio import Studio

    steps = args.steps or (40 if args.quick else 100)
    repeats = args.repeats or (1 if args.quick else 2)
    presets = parse_presets(args.preset)
    all_groups = list(dict.fromkeys(g for g, *_ in settings(args.quick, "")))
    groups = [g.strip() for g in args.groups.split(",")] if args.groups else all_groups
    if set(groups) - set(all_groups):
        raise SystemExit(f"--groups {args.groups!r}: choose from {', '.join(all_groups)}")
    chosen = [s for s in settings(args.quick, "") if s[0] in groups]
    studio = Studio(load_model(args.model), scratch_dir("ablate-"), restore=False, persist_state=False)
    instances = [Instance(p, int(s)) for p, _, s in (i.strip().rpartition("#") for i in args.instance.split(","))]
    prompts = list(dict.fromkeys([i.prompt for i in instances]
                                 + ["japan flag", "ireland flag", "italy flag", "bangladesh flag"]))
    seeds = sorted(set(range(args.eval_seeds or (16 if args.quick else 32))) | {i.seed for i in instances})
    cache = BaseCache.build(studio, prompts, seeds)
    for inst in instances:
        verdict = cache.verdicts[inst.prompt][cache.seeds.index(inst.seed)]
        if verdict != "planted_error":
            raise SystemExit(f"--instance {inst.prompt}#{inst.seed}: the base model draws it {verdict!r}, "
                             "not the planted error")
    rows = []
    for preset, inst in itertools.product(presets, instances):
        for group, label, overrides, kind, params in settings(args.quick, inst.prompt):
            if group not in groups:
                continue
            for rep in range(repeats):
                base = apply_preset(preset, studio.default_config(seed=rep, monitor_every=10))
                cfg = base.with_overrides(steps=steps, stop_when_fixed=False, **overrides)
                try:
                    res, to_fix, secs = fix_instance(studio, inst, cache, cfg, kind, params)
                except Exception as err:  # e.g. a surrogate that equals the flagged image
                    rows.append({"preset": preset, "group": group, "setting": label, "repeat": rep,
                                 "instance": f"{inst.prompt}#{inst.seed}", "error": str(err)})
                    continue
                ev = evaluate_fix(studio, inst, cache, [res.run.run_id])
                studio.remove_fix(res.run.run_id)
                rows.append({"preset": preset, "group": group, "setting": label, "repeat": rep,
                             "instance": f"{inst.prompt}#{inst.seed}", "steps_to_fix": to_fix,
                             "seconds": secs, "remember_set": len(res.remember_seeds), **ev})
                print(rows[-1], flush=True)
    table = []
    for preset in presets:
        for group, label, *_ in chosen:
            mine = [r for r in rows if r["preset"] == preset and r["setting"] == label and r["group"] == group]
            sel = [r for r in mine if "error" not in r]
            err = next((r["error"] for r in mine if "error" in r), "")
            table.append([preset, group, label, len(sel), mean_std(sel, "flagged_fixed"), mean_std(sel, "steps_to_fix"),
                          mean_std(sel, "same_prompt_verdict_kept"), mean_std(sel, "other_prompts_verdict_kept"),
                          mean_std(sel, "spread_to_other_error_seeds"), mean_std(sel, "ssim_mean"),
                          mean_std(sel, "clip_fd"), mean_std(sel, "remember_set"), err[:60]])
    header = ["preset", "factor", "setting", "runs", "fix rate", "steps to fix", "same-prompt kept", "other prompts kept",
              "spread", "SSIM vs base", "world-CLIP FD", "remember set", "error"]
    notes = [f"Instances: {', '.join(f'{i.prompt} seed {i.seed}' for i in instances)} (each drawn with the planted "
             f"error; runs = instances x training seeds); {steps} steps, no early stop; "
             f"{repeats} training seed(s) per setting and instance; other settings at the preset's values (paper: 100 generations "
             "of the flagged prompt, unfiltered; studio: the model's defaults), scripted paint surrogate unless the row "
             "says otherwise.",
             "lambda k: the paper's exponent was not recoverable; k=2 is the studio's assumed default. noise sigma: "
             "fraction of the pixel range (the paper's levels are about 0.2 and 0.6).",
             "paint (scripted): bench.worldeval.scripted_paint_layers, an RGBA layer composited by core's paint "
             "surrogate, standing in for a person's brush strokes (blue disc pixels painted red)."]
    name = args.name or (("ablations_quick" if args.quick else "ablations") + ("" if presets == ["studio"] else "_" + "_".join(presets))
            + ("" if groups == all_groups else "_" + "_".join(g.replace(" ", "-") for g in groups)))
    write_markdown(args.out / f"{name}.md", "Ablations on the flags world", command_line(), header, table,
                   notes + [f"Plot: {name}.png (bars: mean over training seeds; dots: each run)."], rows, model=studio.model)
    plot(rows, args.out / f"{name}.png")
    print((args.out / f"{name}.md").read_text())
    return 0


def plot(rows: list[dict], path: Path) -> Path:
    ok = [dict(r) for r in rows if "error" not in r]
    for r in ok:
        r["fixed_at_end"] = float(bool(r["flagged_fixed"]))
        if r.get("preset", "studio") != "studio":  # one bar per preset and setting
            r["group"] = f"{r['preset']}/{r['group']}"
    return plot_settings(path, ok, {"fixed_at_end": "flagged seed fixed at the end", "same_prompt_verdict_kept":
                                    "same-prompt verdicts kept", "other_prompts_verdict_kept": "other prompts' verdicts kept",
                                    "ssim_mean": "SSIM vs base (other seeds)"}, "Ablations on the flags world")


if __name__ == "__main__":
    raise SystemExit(main())
