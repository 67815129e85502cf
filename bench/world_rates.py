"""The embedded model measured: checker verdict rates per prompt over 64 seeds, the time to
generate 16 images, the time of one fix at default settings, and the end-to-end demo
(fix one misrepresented "ireland flag" seed, then re-check every prompt).

    python bench/world_rates.py            # writes bench/results/world_rates.md (+ .json)
    python bench/world_rates.py --quick    # 16 seeds, 4 prompts, 40-step fix
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.report import command_line, write_markdown  # noqa: E402
from bench.worldeval import scripted_paint_layers  # noqa: E402


def rates_table(studio, prompts, seeds, fix_names=()):
    from core.generate import generate
    from core.world.checker import check_images

    out = {}
    with studio.fixes.only(list(fix_names)):
        for p in prompts:
            gens = generate(studio.model, p, seeds)
            out[p] = check_images(p, [g.image for g in gens], seeds)
    return out


def _reuse_base(path: Path, prompts: list[str], seeds: list[int]) -> dict:
    """Base verdicts from an earlier run's JSON (its rows hold the raw record); refuses a mismatch."""
    data = json.loads(path.read_text())
    raw = data["rows"][0] if isinstance(data, dict) and "rows" in data else data[0]
    base = raw["base"]
    if set(base) != set(prompts) or any(sorted(map(int, base[p]["seeds"])) != seeds for p in prompts):
        raise SystemExit(f"{path}: its base covers other prompts or seeds")
    return base


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="embedded model: rates, timings, the Ireland demo")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per prompt (default 64, quick 16)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    add_set_option(ap, "override a field of the studio's default UnlearnConfig (JSON value), e.g. "
                       "--set flagged_prompt_share=0.2; repeatable")
    ap.add_argument("--base-from", type=Path, default=None,
                    help="reuse the base verdicts of an earlier world_rates JSON of the same model and seeds")
    ap.add_argument("--name", default=None, help="output name (default world_rates or world_rates_quick)")
    args = ap.parse_args(argv)
    overrides = config_overrides(args.overrides)
    from core.generate import generate
    from core.models import load_model
    from core.studio import Studio
    from core.world.prompts import PROMPTS

    studio = Studio(load_model(args.model), scratch_dir("rates-"), restore=False, persist_state=False)
    if studio.model.info.world == "faces":
        return faces_rates(args, studio, overrides)
    seeds = list(range(args.seeds or (16 if args.quick else 64)))
    prompts = [ps[0] for ps in PROMPTS.values()]
    if args.quick:
        prompts = ["ireland flag", "japan flag", "italy flag", "cote d'ivoire flag"]

    generate(studio.model, "italy flag", [0])  # warm-up
    t0 = time.perf_counter()
    generate(studio.model, "italy flag", list(range(16)))
    gen16 = time.perf_counter() - t0

    base = _reuse_base(args.base_from, prompts, seeds) if args.base_from else rates_table(studio, prompts, seeds)
    # The demo instance: the first planted prompt that shows its error (the shipped model draws the
    # Japan error; see the model card for Ireland).
    demo = next(p for p in ("ireland flag", "japan flag") if base[p]["rates"]["planted_error"] > 0)
    flagged_seed = next(int(s) for s, v in base[demo]["seeds"].items() if v["verdict"] == "planted_error")
    flagged = generate(studio.model, demo, [flagged_seed])[0].image
    cfg = studio.default_config(**({"steps": 40} if args.quick else {}), **overrides)
    t0 = time.perf_counter()
    sur = studio.surrogate("paint", flagged, {"layers": scripted_paint_layers(demo, flagged)})
    res = studio.unlearn(demo, flagged, sur.image, flagged_seed, cfg, sur.info)
    fix_s = time.perf_counter() - t0
    after = rates_table(studio, prompts, seeds, [res.run.run_id])

    rows, raw = [], {"demo_prompt": demo, "base": base, "after": after, "flagged_seed": flagged_seed, "gen16_s": gen16, "fix_s": fix_s,
                     "fix_metrics": res.run.metrics()}
    others_unchanged = others_seeds = 0  # every prompt but the demo's: the ">= 95% unchanged"
    for p in prompts:
        b, a = base[p], after[p]
        unchanged = sum(b["seeds"][k]["verdict"] == a["seeds"][k]["verdict"] for k in b["seeds"])
        same = unchanged / len(b["seeds"])
        if p != demo:
            others_unchanged += unchanged
            others_seeds += len(b["seeds"])
        rows.append([p, f"{b['rates']['correct']:.2f}", f"{b['rates']['planted_error']:.2f}", f"{b['rates']['other']:.2f}",
                     f"{a['rates']['correct']:.2f}", f"{a['rates']['planted_error']:.2f}", f"{same:.2f}"])
    ire_b, ire_a = base[demo]["seeds"], after[demo]["seeds"]
    errs = [k for k, v in ire_b.items() if v["verdict"] == "planted_error" and int(k) != flagged_seed]
    correct_b = [k for k, v in ire_b.items() if v["verdict"] == "correct"]
    notes = [
        *([f"Config overrides of the studio defaults: {json.dumps(overrides)}."] if overrides else []),
        *([f"Base verdicts reused from {args.base_from.name} (same model, same seeds)."] if args.base_from else []),
        f"{len(seeds)} seeds per prompt at the model's default sampling settings; verdicts from the geometric flag checker.",
        f"Generating 16 images: {gen16:.2f} s. One fix at {'40 steps (quick)' if args.quick else 'default settings'}: "
        f"{fix_s:.1f} s in all (remember set + training + renders), {res.run.metrics().get('seconds_per_step')} s/step.",
        f"Demo: fixed '{demo}' seed {flagged_seed} (planted error) with a scripted paint surrogate: after the fix it is "
        f"'{ire_a[str(flagged_seed)]['verdict']}'. Of the {len(correct_b)} correct '{demo}' seeds, "
        f"{sum(ire_a[k]['verdict'] == 'correct' for k in correct_b)} stay correct. Spread to the prompt's other "
        f"{len(errs)} misrepresented seeds: {sum(ire_a[k]['verdict'] == 'correct' for k in errs)} now correct.",
    ]
    notes.append(f"Other prompts' verdicts unchanged: {others_unchanged} of {others_seeds} seeds "
                 f"({others_unchanged / others_seeds:.1%}).")
    header = ["prompt", "base correct", "base planted error", "base other", "after correct", "after planted error",
              "verdict unchanged"]
    name = args.name or ("world_rates_quick" if args.quick else "world_rates")
    write_markdown(args.out / f"{name}.md", "Embedded flags model: checker rates and the Ireland fix", command_line(),
                   header, rows, notes, [raw], model=studio.model)
    print((args.out / f"{name}.md").read_text())
    return 0


def faces_rates(args, studio, overrides: dict) -> int:
    """The faces world measured: the matcher's verdict and copy rates over report seeds (from 1000),
    the time to generate 16 images and of one default fix, and the demo: the first copy of face 3
    among seeds 0-255 fixed with a painted band over the eyes, then every seed re-checked."""
    from bench.faceseval import FacesBase, build_name, evaluate_face_fix, find_face_instances, fix_face
    from core.generate import generate
    from core.world import faces as W

    seeds = list(range(1000, 1000 + (args.seeds or (256 if args.quick else 1024))))
    generate(studio.model, "", [0])  # warm-up
    t0 = time.perf_counter()
    generate(studio.model, "", list(range(16)))
    gen16 = time.perf_counter() - t0
    base = FacesBase.build(studio, seeds)
    demo = find_face_instances(studio, range(256), faces=[W.MEMORISED[0]])[0]
    cfg = studio.default_config(**({"steps": 40} if args.quick else {}), **overrides)
    fix = fix_face(studio, demo, cfg)
    ev = evaluate_face_fix(studio, demo, base, [fix.result.run.run_id])
    before_rates = base.verdict_rates
    rows = [[k, f"{base.copy_rates[k]:.2%}", f"{ev['copy_rate_after'][k]:.2%}"] for k in base.copy_rates]
    rows += [[f"all: {k}", f"{before_rates[k]:.2%}", f"{ev['verdict_rates_after'][k]:.2%}"] for k in before_rates]
    m = fix.result.run.metrics()
    notes = [*([f"Config overrides of the studio defaults: {json.dumps(overrides)}."] if overrides else []),
             f"Build: {build_name(studio.model)}. Seeds {seeds[0]}-{seeds[-1]} (no default was chosen on them); "
             "verdicts from the copy matcher (core/world/faces.py): planted_error = a copy of a memorised face, "
             "correct = a novel face, other = anything else.",
             f"Generating 16 images: {gen16:.2f} s. One fix at {'40 steps (quick)' if args.quick else 'default settings'}: "
             f"{fix.seconds:.1f} s in all, {m.get('steps_done')} steps, {m.get('seconds_per_step')} s/step.",
             f"Demo: {demo.label} (the first copy of {demo.target} among seeds 0-255) fixed with a grey band painted "
             f"over the eyes; the judge called it forgotten: {m.get('flagged_seed_fixed')}; the matcher says the "
             f"flagged seed is now '{ev['flagged_seed_after']['verdict']}' ({ev['flagged_seed_after']['flag']}). "
             f"Verdicts unchanged on the other seeds: {ev['verdicts_unchanged']:.1%}; SSIM of the novel outputs to the "
             f"base: {ev['ssim_mean']:.3f}."]
    name = args.name or ("world_rates_faces_quick" if args.quick else "world_rates_faces")
    raw = {"base_copy_rates": base.copy_rates, "base_verdict_rates": before_rates, "gen16_s": gen16,
           "fix_s": fix.seconds, "demo": demo.label, "fix_metrics": m, **ev}
    write_markdown(args.out / f"{name}.md", "Embedded faces model: matcher rates and the face 3 fix", command_line(),
                   ["memorised face / verdict", "before", "after the demo fix"], rows, notes, [raw], model=studio.model)
    print((args.out / f"{name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
