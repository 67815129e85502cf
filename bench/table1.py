"""Table I on either embedded world: the paper's method vs NegGrad, EraseDiff and SISS.

Each method fixes each instance over a learning-rate grid and several training seeds, monitored,
and stops at the first monitor step where the flagged seed counts as forgotten (equal forgetting);
integrity is reported over the runs that forgot, with 95% intervals, each method at its best
learning rate, and a verdict per preset. Row sets per preset (core/unlearn/presets.py): `paper`
(100 generations of the flagged prompt, unfiltered, no guard) and `studio` (the model's defaults).

    python bench/table1.py --quick               # <= 10 min: 1 flags instance, lr 1x and 3x
    python bench/table1.py                       # flags: 2 instances per planted prompt, 2 training seeds
    python bench/table1.py --model faces         # faces: the first copy of each memorised face
    python bench/table1.py --fixed-steps         # also every method at matched steps, no stop

Worlds (bench/worldeval.py, bench/faceseval.py):
  flags  instances = misdrawn seeds of the planted prompts, scripted paint surrogate; integrity =
         the checker's verdicts kept on other seeds and prompts, SSIM and world-CLIP FD to the base.
  faces  instances = copies of the memorised faces (seeds 0-255), painted band over the eyes;
         integrity = the other memorised faces' copy rates (within +-20%) and the SSIM of novel
         outputs, on report seeds from 1000 on.

Forgetting is decided by the model-agnostic forgetting judge (core/judge.py), never by the
world's ground truth: by default (--forgetting copy) the flagged seed is forgotten once its render
is no longer a near copy of the flagged image by the judge's descriptor, the same bar for every
method. The world's checker or matcher reports beside it and judges every other output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import markdown_table, scratch_dir  # noqa: E402
from bench.report import command_line, plot_pareto, write_markdown  # noqa: E402
from bench.faceseval import SURROGATE_WORDS, SURROGATES  # noqa: E402
from bench.worldeval import mean_std  # noqa: E402
from core.unlearn.config import METHODS, UnlearnConfig  # noqa: E402  (the one list of method names)
from core.unlearn.presets import apply_preset, parse_presets  # noqa: E402

OURS = "surrogate"


class FlagsWorld:
    """Table I's view of the flags world (bench/worldeval.py): the checker judges the outputs."""

    name, monitor_every, lr_factors = "flags", 10, "1,3"
    # (key, label) of the per-setting table's ground-truth columns, then of the integrity measures
    columns = (("flagged_fixed", "fix rate (checker)"), ("steps_to_fix", "steps to fix (checker)"),
               ("same_prompt_verdict_kept", "same-prompt kept"), ("other_prompts_verdict_kept", "other prompts kept"),
               ("spread_to_other_error_seeds", "spread to other errors"), ("ssim_mean", "SSIM vs base"),
               ("clip_fd", "world-CLIP FD"), ("lpips_mean", "LPIPS"))
    measures = (("other_prompts_verdict_kept", "other prompts kept"), ("same_prompt_verdict_kept", "same-prompt kept"),
                ("ssim_mean", "SSIM vs base"), ("clip_fd", "world-CLIP FD"))
    primary = "other_prompts_verdict_kept"  # what "best" ranks by (higher is better)
    # what the verdict compares, (key, label, higher is better): integrity, and forgetting by the truth
    verdict_on = (("other_prompts_verdict_kept", "other prompts kept", True), ("ssim_mean", "SSIM vs base", True),
                  ("flagged_fixed", "flagged seed drawn right (checker)", True))
    truth = "the flags checker"

    def __init__(self, studio, args):
        from bench.worldeval import CONTROL_PROMPTS, PLANTED_PROMPTS, BaseCache, find_instances

        self.studio, quick = studio, args.quick
        self.seeds = list(range(args.eval_seeds or (16 if quick else 32)))
        self.prompts = list(PLANTED_PROMPTS) + list(CONTROL_PROMPTS[: args.controls or (2 if quick else 6)])
        self.cache = BaseCache.build(studio, self.prompts, self.seeds)
        self.instances = find_instances(self.cache, per_prompt=args.per_prompt or (1 if quick else 2))
        if quick and not args.per_prompt:
            self.instances = self.instances[:1]

    def label(self, inst) -> str:
        return f"{inst.prompt}#{inst.seed}"

    def fix(self, inst, config):
        from bench.worldeval import fix_instance

        return fix_instance(self.studio, inst, self.cache, config)

    def evaluate(self, inst, fix_names) -> dict:
        from bench.worldeval import evaluate_fix

        return evaluate_fix(self.studio, inst, self.cache, fix_names)

    def notes(self) -> list[str]:
        return [f"Instances: {', '.join(f'{i.prompt} seed {i.seed}' for i in self.instances)}; eval seeds "
                f"0-{self.seeds[-1]} over {len(self.prompts)} prompts; scripted paint surrogate (bench.worldeval).",
                "'kept' = the checker's verdict after the fix equals the base model's verdict (flagged seed and the "
                "prompt's other misrepresented seeds excluded); 'spread' = fraction of the prompt's other "
                "misrepresented seeds that the fix also corrected. Integrity is measured on every seed and prompt but "
                "the flagged instance: SSIM per same-seed pair, world-CLIP FD = Frechet distance between the before "
                "and after sets in the world's own CLIP image space (lower = less moved), LPIPS per pair."]


class FacesWorld:
    """Table I's view of the faces world (bench/faceseval.py): the copy matcher judges the outputs."""

    name, monitor_every, lr_factors = "faces", 2, "0.3,1"
    columns = (("flagged_fixed", "flagged seed not a copy (matcher)"), ("steps_to_fix", "steps to not a copy (matcher)"),
               ("face_rate_after", "face's copy rate after"), ("other_faces_kept", "other faces within 20%"),
               ("other_faces_max_change", "other faces' largest change"), ("ssim_mean", "SSIM novel vs base"))
    measures = (("other_faces_kept", "other faces within 20%"), ("other_faces_max_change", "other faces' largest change"),
                ("ssim_mean", "SSIM novel vs base"), ("face_rate_after", "face's copy rate after"))
    primary = "ssim_mean"
    verdict_on = (("ssim_mean", "SSIM novel vs base", True), ("other_faces_kept", "other faces within 20%", True),
                  ("face_rate_after", "the face's copy rate after (matcher)", False),
                  ("flagged_fixed", "flagged seed no longer a copy (matcher)", True))
    truth = "the copy matcher"
    FLAG_SEEDS = range(256)

    def __init__(self, studio, args):
        from bench.faceseval import FacesBase, build_name, find_face_instances

        self.studio, quick = studio, args.quick
        self.seeds = list(range(1000, 1000 + (args.eval_seeds or (256 if quick else 512))))
        self.base = FacesBase.build(studio, self.seeds)
        self.instances = find_face_instances(studio, self.FLAG_SEEDS)[: args.per_prompt or (1 if quick else 4)]
        self.build = build_name(studio.model)
        self.surrogate = args.surrogate

    def label(self, inst) -> str:
        return inst.label

    def fix(self, inst, config):
        from bench.faceseval import fix_face

        fix = fix_face(self.studio, inst, config, self.surrogate)
        return fix.result, fix.first_not_copy, fix.seconds

    def evaluate(self, inst, fix_names) -> dict:
        from bench.faceseval import evaluate_face_fix

        return evaluate_face_fix(self.studio, inst, self.base, fix_names)

    def notes(self) -> list[str]:
        before = ", ".join(f"{k} {v:.1%}" for k, v in self.base.copy_rates.items())
        return [f"Build: {self.build}. Instances: {', '.join(i.label for i in self.instances)} (the first copy of each "
                f"memorised face among seeds 0-255); surrogate: "
                f"{SURROGATE_WORDS[self.surrogate]} (bench.faceseval).",
                f"Measured on seeds {self.seeds[0]}-{self.seeds[-1]}, which chose nothing; copy rates before: {before}. "
                "'other faces within 20%' = share of the other memorised faces whose copy rate stayed within +-20% "
                "(relative; issue 13's target); 'largest change' = the largest relative change among them; SSIM over "
                "the outputs the matcher calls novel faces before the fix (issue 13's target: >= 0.90); 'face's copy "
                "rate after' = copies of the forgotten face (target <= 0.5%)."]


WORLDS = {"flags": FlagsWorld, "faces": FacesWorld}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="embedded", help="embedded (flags), faces, or a folder of either world")
    ap.add_argument("--steps", type=int, default=None, help="steps per fix at most (quick: 60; full: 100)")
    ap.add_argument("--repeats", type=int, default=None, help="training seeds per setting (quick 1, full 2)")
    ap.add_argument("--lr-factors", default=None,
                    help="comma list of multiples of the model's default lr (flags: 1,3; faces: 0.3,1)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--per-prompt", type=int, default=None,
                    help="flags: misrepresented seeds per planted prompt (quick: 1 in all; full: 2 each); "
                         "faces: memorised faces (quick 1, full 4)")
    ap.add_argument("--eval-seeds", type=int, default=None,
                    help="flags: seeds per prompt for integrity (quick 16, full 32); faces: report seeds from 1000 "
                         "(quick 256, full 512)")
    ap.add_argument("--controls", type=int, default=None, help="flags: control prompts evaluated (quick 2, full 6)")
    ap.add_argument("--surrogate", default="paint", choices=SURROGATES,
                    help="faces: the surrogate of every fix (bench/faceseval.py; flags always uses the scripted paint)")
    ap.add_argument("--fixed-steps", action="store_true",
                    help="also run every method for the full --steps without stopping (matched steps)")
    ap.add_argument("--preset", default="paper,studio", help="comma list of row sets: paper, studio")
    ap.add_argument("--forgetting", choices=("copy", "judge"), default="copy",
                    help="what 'forgotten' means (the '+stop' rows stop there): copy = the flagged seed's render is no "
                         "longer a near copy of the flagged image by the judge's descriptor, the same bar for every "
                         "method (default; the paper judges forgetting by copy similarity); judge = the studio's own "
                         "bar, progress toward the user's surrogate, which only our method trains toward")
    ap.add_argument("--name", default=None, help="results file stem (default table1[_faces][_quick])")
    ap.add_argument("--rows-from", type=Path, default=None, metavar="JSON",
                    help="write the report from an earlier run's rows (its .json; give that run's other arguments): "
                         "no training")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from core.models import load_model
    from core.studio import Studio

    quick = args.quick
    studio = Studio(load_model(args.model), scratch_dir("table1-"), restore=False, persist_state=False)
    world = WORLDS[studio.model.info.world or "flags"](studio, args)
    steps = args.steps or (60 if quick else 100)
    repeats = args.repeats or (1 if quick else 2)
    factors = [float(x) for x in (args.lr_factors or world.lr_factors).split(",")]
    presets = parse_presets(args.preset)
    # (lr factor, stop when forgotten): the equal-forgetting runs, then the matched-step ones if asked.
    variants = [(f, True) for f in factors] + ([(f, False) for f in factors] if args.fixed_steps else [])
    base_lr = studio.default_config().learning_rate
    methods = args.methods.split(",")
    if args.rows_from:
        rows = json.loads(args.rows_from.read_text())
    else:
        grid = itertools.product(world.instances, presets, methods, variants, range(repeats))
        rows = [one_run(world, studio, args, steps, base_lr, *point) for point in grid]
    header, table = per_setting_table(rows, presets, methods, variants, base_lr, world.columns)
    notes = [FORGETTING_NOTE[args.forgetting],
             f"Model: {args.model} ({world.name} world); at most {steps} steps, monitored every {world.monitor_every}; "
             f"{repeats} training seed(s) per setting; mean ± std over instances and training seeds."
             + (" Quick mode: remember sets of 50." if quick else ""),
             *world.notes(),
             "Presets (core/unlearn/presets.py): paper = generations of the flagged prompt only, unfiltered, no look-alike "
             "shares, no guard; studio = the model's defaults (flags: every prompt remembered, look-alike and flagged "
             "shares; both worlds: the judge's remember filter). '+stop' rows stop at the first monitor step where the "
             "flagged seed counts as forgotten (first note); rows without '+stop' run every step. s / fix includes "
             "building the remember set only for the first fix of an instance and preset (the studio caches it).",
             "Baselines as their public code calibrates them: EraseDiff eta 1e-2; SISS lambda 0.5, squared errors "
             "summed over latent elements, g = g_x - (750/||g_a||) g_a then clipped to norm 1 (claserken/SISS "
             "config/delete_sd.yaml), conditioned on the flagged prompt with remember samples of that prompt."]
    if args.rows_from:
        notes.insert(0, f"Rows from {args.rows_from.name}: the run made by the command above without --rows-from.")
    lpips_missing = next((r["lpips_unavailable"] for r in rows if r.get("lpips_unavailable")), None)
    if lpips_missing:
        notes.append(f"LPIPS: n/a here, {lpips_missing}")
    name = args.name or "table1" + ("_faces" if world.name == "faces" else "") + ("_quick" if quick else "")
    path = write_markdown(args.out / f"{name}.md", f"Table I on the {world.name} world", command_line(), header, table,
                          notes, rows, model=studio.model)
    with path.open("a") as fh:
        fh.write("\n" + verdict_section(rows, presets, methods, world.primary, world.verdict_on))
        fh.write("\n" + forgot_section(rows, presets, methods, world.measures, world.truth))
        fh.write("\n" + best_section(rows, presets, methods, world.measures[:3], world.primary))
    plot_pareto(args.out / f"{name}.png", [r | {"row": f"{r['preset']}: {r['method']}"} for r in rows if r["forgot"]],
                x="judge_score", y=world.primary, group="row", filled="flagged_fixed",
                title=f"{world.name}: forgetting against integrity, one point per fix that forgot",
                xlabel="forgetting (judge score at the flagged seed)",
                ylabel=dict(world.measures)[world.primary] + f" ({world.truth})")
    print(path.read_text())
    return 0


def run_config(defaults: UnlearnConfig, preset: str, steps: int, stop: bool, forgetting: str,
               quick: bool) -> UnlearnConfig:
    """A grid point's config: `preset` over the studio's `defaults`, then the row's steps and stop rule."""
    cfg = apply_preset(preset, defaults)
    # Without the guard (the paper preset) a stopped run stops at its first forgotten state: settling on
    # only serves a guard choosing among settled states (and patience needs one).
    settle = {} if cfg.keep_best else {"settle_steps": 0, "settle_patience": 0}
    return cfg.with_overrides(steps=steps, stop_when_fixed=stop, oracle=forgetting, **settle,
                              **({"remember_set_size": 50} if quick else {}))


def one_run(world, studio, args, steps: int, base_lr: float, inst, preset: str, method: str, variant, rep: int) -> dict:
    """One fix of `inst` at one grid point, measured by the world, then removed; its table row."""
    f, stop = variant
    cfg = run_config(studio.default_config(method=method, learning_rate=base_lr * f, seed=rep,
                                           monitor_every=world.monitor_every),
                     preset, steps, stop, args.forgetting, args.quick)
    res, to_fix, secs = world.fix(inst, cfg)
    metrics = res.run.metrics()  # before remove_fix deletes the run
    forgetting = metrics.get("forgetting") or {}
    ev = world.evaluate(inst, [res.run.run_id])
    studio.remove_fix(res.run.run_id)
    row = {"preset": preset, "instance": world.label(inst),
           "forgot": bool(metrics.get("flagged_seed_fixed")),  # by the run's oracle
           "judge_score": forgetting.get("score"), "copy_similarity": forgetting.get("copy_similarity"),
           "method": method + ("+stop" if stop else ""), "lr": base_lr * f, "repeat": rep,
           "steps_to_fix": to_fix, "steps_done": res.train.steps_done, "seconds": secs,
           "remember_set": len(res.remember_seeds), **ev}
    print({k: v for k, v in row.items() if not isinstance(v, dict) and k != "lpips_unavailable"}, flush=True)
    return row


FORGETTING_NOTE = {
    "copy": "Forgotten (--forgetting copy, the default) = the flagged seed's render is no longer a near copy of the "
            "flagged image by the forgetting judge's copy descriptor (core/judge.py: shows_error), the same bar for "
            "every method, as the paper judges forgetting by copy similarity; '+stop' runs stop there.",
    "judge": "Forgotten (--forgetting judge) = the studio's own bar: the flagged seed's render moved at least the model's "
             "forget_threshold (flags 0.7, faces 0.5) of the way from the flagged image to the user's surrogate inside the edited region. Only our method trains "
             "toward the surrogate, so this bar favours it; use --forgetting copy to compare methods.",
}


def per_setting_table(rows, presets, methods, variants, base_lr, columns=FlagsWorld.columns):
    table = []
    for preset in presets:
        for stop in (False, True):
            for method in methods:
                for f in sorted({f for f, st in variants if st == stop}):
                    label = method + ("+stop" if stop else "")
                    sel = [r for r in rows if r["preset"] == preset and r["method"] == label and abs(r["lr"] - base_lr * f) < 1e-12]
                    if sel:
                        table.append([preset, label, f"{base_lr * f:.2g}", len(sel), mean_std(sel, "forgot")]
                                     + [mean_std(sel, k) for k, _ in columns]
                                     + [mean_std(sel, "steps_done"), mean_std(sel, "seconds")])
    header = ["preset", "method", "lr", "runs", "forgot"] + [label for _, label in columns] + ["steps run", "s / fix"]
    return header, table


def mean_ci95(values: list[float]) -> str:
    """Mean [95% t-interval]; the interval needs two runs."""
    m, lo, hi = ci95(values)
    if m is None:
        return "n/a"
    return f"{m:.3f} [n=1]" if lo is None else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def ci95(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high) of a 95% t-interval; (mean, None, None) for one value, all None for none."""
    import numpy as np
    from scipy import stats

    if not values:
        return None, None, None
    m = float(np.mean(values))
    if len(values) < 2:
        return m, None, None
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return m, m - half, m + half


def forgot_section(rows: list[dict], presets, methods, measures=FlagsWorld.measures, truth="the flags checker") -> str:
    """Integrity at the first forgotten step, over the '+stop' runs that forgot, all learning rates pooled."""
    table = []
    for preset in presets:
        for method in methods:
            runs = [r for r in rows if r["preset"] == preset and r["method"] == method + "+stop"]
            if not runs:
                continue
            forgot = [r for r in runs if r.get("forgot")]
            agree = sum(bool(r["flagged_fixed"]) for r in forgot)
            table.append([preset, method, len(runs), len(forgot), f"{agree}/{len(forgot)}", mean_std(forgot, "steps_done")]
                         + [mean_ci95([float(r[k]) for r in forgot if r.get(k) is not None]) for k, _ in measures])
    header = ["preset", "method", "runs", "forgot (n)", "truth agrees", "steps at forgotten"] + [f"{label} (95% CI)" for _, label in measures]
    return ("## At equal forgetting: the first forgotten step\n\n"
            "Each '+stop' run stopped at the first monitor step where the flagged seed counted as "
            f"forgotten by the bar named in the notes (--forgetting); 'truth agrees' counts those runs {truth} also "
            "calls fixed. Integrity is averaged only over runs that forgot, "
            "learning rates pooled; intervals are 95% t-intervals over those runs (n=1: no interval). A method "
            "whose runs never forgot has no integrity here.\n\n"
            + markdown_table(header, table) + "\n")


def best_setting(rows: list[dict], preset: str, method: str, primary: str):
    """(lr, runs at it, runs that forgot) of `method`'s best '+stop' learning rate: among those whose
    runs forgot in at least half the runs, the one with the highest mean `primary` over the runs that
    forgot; None if no learning rate qualifies."""
    import numpy as np

    runs = [r for r in rows if r["preset"] == preset and r["method"] == method + "+stop"]
    best = None
    for lr in sorted({r["lr"] for r in runs}):
        at = [r for r in runs if r["lr"] == lr]
        forgot = [r for r in at if r.get("forgot")]
        if len(forgot) * 2 < len(at) or not forgot:
            continue
        score = float(np.mean([r[primary] for r in forgot if r.get(primary) is not None] or [float("-inf")]))
        if best is None or score > best[0]:
            best = (score, lr, at, forgot)
    return None if best is None else best[1:]


def best_section(rows: list[dict], presets, methods, measures=FlagsWorld.measures[:3],
                 primary="other_prompts_verdict_kept") -> str:
    """Each method at its best learning rate (best_setting)."""
    table = []
    for preset in presets:
        for method in methods:
            found = best_setting(rows, preset, method, primary)
            if found is None:
                table.append([preset, method, "none forgot in half its runs", ""] + [""] * len(measures))
                continue
            lr, at, forgot = found
            table.append([preset, method, f"{lr:.2g}", f"{len(forgot)}/{len(at)}"]
                         + [mean_ci95([float(r[k]) for r in forgot if r.get(k) is not None]) for k, _ in measures])
    header = ["preset", "method", "best lr", "forgot"] + [f"{label} (95% CI)" for _, label in measures]
    return ("## Each method at its best learning rate\n\n"
            f"Per method, the learning rate (of the grid) whose '+stop' runs forgot in at least half the "
            f"runs and scored best on `{primary}` over those runs. The choice is made on the same seeds it is "
            "reported on, so it is optimistic, equally for every method; the held-out benches "
            "(bench/heldout.py, bench/faces_forget.py: seeds >= 1000) are the unbiased figures for the studio's defaults.\n\n"
            + markdown_table(header, table) + "\n")


def verdict_section(rows: list[dict], presets, methods, primary: str, criteria) -> str:
    """Does our method beat every baseline at equal forgetting? Each method at its best lr (by
    `primary`), compared on each (key, label, higher is better) of `criteria` over the runs that
    forgot; 'better' / 'worse' only when the 95% intervals do not overlap."""
    lines = ["## Verdict: ours against each baseline at equal forgetting", "",
             f"Each method at its best learning rate (by `{primary}`, next sections), over its runs that forgot. "
             "'better' or 'worse' only when the two 95% intervals do not overlap; otherwise 'no decision'.", ""]
    for preset in presets:
        ours = best_setting(rows, preset, OURS, primary)
        if ours is None:
            lines.append(f"- **{preset}**: ours never forgot in half its runs at any learning rate: it beats no baseline.")
            continue
        for key, label, higher in criteria:
            m, lo, hi = ci95([float(r[key]) for r in ours[2] if r.get(key) is not None])
            calls = []
            for method in (x for x in methods if x != OURS):
                theirs = best_setting(rows, preset, method, primary)
                if theirs is None:
                    calls.append(f"{method}: better (it never forgot in half its runs)")
                    continue
                tm, tlo, thi = ci95([float(r[key]) for r in theirs[2] if r.get(key) is not None])
                if None in (lo, tlo, m, tm):
                    word = "no decision (n=1)"
                elif (lo > thi) if higher else (hi < tlo):
                    word = "better"
                elif (hi < tlo) if higher else (lo > thi):
                    word = "worse"
                else:
                    word = "no decision"
                calls.append(f"{method}: {word} ({m:.3f} vs {tm:.3f})")
            beats = all(c.split(": ")[1].startswith("better") for c in calls)
            lines.append(f"- **{preset}**, {label} ({'higher' if higher else 'lower'} is better): ours "
                         f"{'beats every baseline' if beats else 'does not beat every baseline'} — " + "; ".join(calls) + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
