"""The held-out benchmark: fixes on seeds no default was chosen on, judged by the flags checker
(the faces world: by the copy matcher, in bench/heldout_faces.py; `--model faces`).

Every default of the fix (thresholds of core/judge.py, learning rate, shares, guard) was chosen on
seeds 0-63 and remember seeds >= 100000. This bench flags the first misdrawn seeds of "ireland flag"
and "japan flag" from seed 1000 on (4 each; painted surrogates, as a person with a brush would) and
measures each fix with the world's checker, which plays no part in the fix unless a row says so:

    fixed                 the checker's verdict on the flagged seed after the fix
    right kept            the prompt's correctly drawn seeds (of --prompt-seeds) still correct
    spread                the prompt's other misdrawn seeds now correct
    others unchanged      checker verdicts unchanged over every other prompt (--other-seeds each)
    SSIM others           mean SSIM of those other outputs, before vs after
    judge vs checker      precision / recall of the judge's "forgotten" against the checker's
                          "correct" on every monitor render of the flagged seed
    seconds               the whole fix (look-alikes, remember set, training, renders)

Rows: judge (the studio's default: the judge decides), checker (the same with the checker as the
oracle: an ablation no user has) and paper (100 steps, remember set of 100 from the flagged prompt,
no filter, no look-alike shares, no guard).

    python bench/heldout.py            # bench/results/heldout.md (+ .json); about an hour on 2 cores
    python bench/heldout.py --quick    # 1 instance per prompt, 16/8 seeds: a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_set_option, config_overrides, scratch_dir  # noqa: E402
from bench.faceseval import SURROGATES  # noqa: E402
from bench.report import command_line, write_markdown  # noqa: E402
from bench.worldeval import PLANTED_PROMPTS, BaseCache, render_with_fixes, scripted_paint_layers  # noqa: E402

ROWS = ("judge", "checker", "paper")
TARGETS = {"fixed": 7 / 8, "right_kept_mean": 0.95, "right_kept_min": 0.85, "others_unchanged": 0.97,
           "median_seconds": 30.0}


OVERRIDES: dict = {}  # --set FIELD=VALUE, applied to every row's config (an A/B of one default)


def row_config(studio, row: str):
    if row == "judge":
        return studio.default_config().with_overrides(**OVERRIDES)
    if row == "checker":
        return studio.default_config(oracle="checker").with_overrides(**OVERRIDES)
    from core.unlearn.presets import apply_preset

    return apply_preset("paper", studio.default_config()).with_overrides(**OVERRIDES)  # 100 steps, 100 of the flagged prompt, no guard


def find_instances(cache: BaseCache, per_prompt: int) -> list[tuple[str, int]]:
    out = []
    for p in PLANTED_PROMPTS:
        bad = [s for s, v in zip(cache.seeds, cache.verdicts[p]) if v == "planted_error"]
        out += [(p, s) for s in bad[:per_prompt]]
    return out


def evaluate(studio, prompt: str, seed: int, run_id: str, own: BaseCache, others: BaseCache) -> dict:
    """Checker verdicts and SSIM of the model with exactly this fix on, against the base caches."""
    from core.compare import integrity_pair, mean_abs_diff

    own_after = render_with_fixes(studio, own, [run_id])[prompt]
    other_after = render_with_fixes(studio, others, [run_id])
    i = own.seeds.index(seed)
    v_after = [studio.check(prompt, g.image)["verdict"] for g in own_after]
    right = [k for k, v in enumerate(own.verdicts[prompt]) if v == "correct"]
    wrong = [k for k, v in enumerate(own.verdicts[prompt]) if v == "planted_error" and k != i]
    same, ssims, flipped, drift = [], [], {}, {}
    for p, base in others.renders.items():
        moved = []  # what the product could see without a checker: how far each prompt's outputs moved
        for s, b, a, vb in zip(others.seeds, base, other_after[p], others.verdicts[p]):
            va = studio.check(p, a.image)["verdict"]
            same.append(va == vb)
            if va != vb:  # which prompts a fix moves: look-alikes of the flagged flag, or any?
                flipped.setdefault(p, []).append(f"{s}: {vb} -> {va}")
            ssims.append(integrity_pair(b.image, a.image)["ssim"])
            moved.append(mean_abs_diff(b.image, a.image))
        drift[p] = round(float(np.mean(moved)), 5)
    return {"fixed": v_after[i] == "correct",
            "right_kept": float(np.mean([v_after[k] == "correct" for k in right])) if right else None,
            "right_n": len(right),
            "flipped_right_seeds": [own.seeds[k] for k in right if v_after[k] != "correct"],
            "spread": float(np.mean([v_after[k] == "correct" for k in wrong])) if wrong else None,
            "spread_n": len(wrong),
            "others_unchanged": float(np.mean(same)), "ssim_others": float(np.mean(ssims)),
            "others_flipped": flipped, "others_drift": drift}


def fix(studio, row: str, prompt: str, seed: int, own: BaseCache, surrogate: str = "paint") -> tuple[dict, list]:
    """One fix of (prompt, seed) with the row's config; returns (record, [(judge forgotten, checker correct)]).
    `surrogate`: paint (scripted, as a person with a brush) or other_seed (the studio's 'Other seed': the
    first seed of the prompt drawn right, as a person picks a right output by eye; the checker is that eye)."""
    from core.judge import ForgettingJudge

    flagged = own.renders[prompt][own.seeds.index(seed)].image
    if surrogate == "other_seed":
        right = next(s for s, v in zip(own.seeds, own.verdicts[prompt]) if v == "correct")
        sur = studio.surrogate("other_seed", flagged, {"seed": right, "prompt": prompt})
    else:
        sur = studio.surrogate("paint", flagged, {"layers": scripted_paint_layers(prompt, flagged)})
    t0 = time.perf_counter()
    res = studio.unlearn(prompt, flagged, sur.image, seed, row_config(studio, row), sur.info)
    seconds = time.perf_counter() - t0
    judge = ForgettingJudge.for_model(studio.model, flagged, sur.image)
    agree = [(judge.judge_flagged_seed(img).forgotten, studio.check(prompt, img)["verdict"] == "correct")
             for _, img in res.monitor]
    m = res.run.metrics()
    record = {"row": row, "prompt": prompt, "seed": seed, "run_id": res.run.run_id, "seconds": seconds,
              "steps_done": m["steps_done"], "kept_step": m.get("kept_step"), "remember_drift": m.get("remember_drift"),
              "judge_fixed": m.get("flagged_seed_fixed"), "forgetting": m.get("forgetting"),
              "lookalike_prompts": m.get("lookalike_prompts"), "remember_excluded": m.get("remember_excluded")}
    return record, agree


def precision_recall(pairs: list[tuple[bool, bool]]) -> tuple[float | None, float | None, int]:
    tp = sum(j and c for j, c in pairs)
    said, truly = sum(j for j, _ in pairs), sum(c for _, c in pairs)
    return (tp / said if said else None), (tp / truly if truly else None), len(pairs)


def summarise(recs: list[dict], agree: list) -> dict:
    kept = [r["right_kept"] for r in recs if r["right_kept"] is not None]
    spread = [r["spread"] for r in recs if r["spread"] is not None]
    prec, rec, n = precision_recall(agree)
    return {"n": len(recs), "fixed": sum(r["fixed"] for r in recs), "right_kept_mean": float(np.mean(kept)),
            "right_kept_min": float(np.min(kept)), "spread_mean": float(np.mean(spread)) if spread else None,
            "others_unchanged": float(np.mean([r["others_unchanged"] for r in recs])),
            "ssim_others": float(np.mean([r["ssim_others"] for r in recs])),
            "median_seconds": statistics.median(r["seconds"] for r in recs),
            "judge_precision": prec, "judge_recall": rec, "monitor_renders": n}


def verdicts(s: dict, oracle: dict | None) -> list[str]:
    """Each target of the issue, met or missed (within 2 points of the oracle row too)."""
    out = [f"fixed {s['fixed']}/{s['n']} (target >= 7/8 of instances, {TARGETS['fixed'] * s['n']:.2f} of {s['n']}): "
           f"{'met' if s['fixed'] >= TARGETS['fixed'] * s['n'] - 1e-9 else 'MISSED'}",
           f"right seeds kept {s['right_kept_mean']:.3f} mean, {s['right_kept_min']:.3f} min (targets 0.95, 0.85): "
           f"{'met' if s['right_kept_mean'] >= 0.95 and s['right_kept_min'] >= 0.85 else 'MISSED'}",
           f"other prompts unchanged {s['others_unchanged']:.3f} (target 0.97): "
           f"{'met' if s['others_unchanged'] >= 0.97 else 'MISSED'}",
           f"median fix {s['median_seconds']:.1f} s (target 30 s on 2 cores): "
           f"{'met' if s['median_seconds'] <= 30 else 'MISSED'}"]
    if oracle:
        gaps = {k: oracle[k] - s[k] for k in ("right_kept_mean", "others_unchanged")}
        gaps["fixed"] = (oracle["fixed"] - s["fixed"]) / s["n"]
        out.append("within 2 points of the checker-driven row: " + ", ".join(
            f"{k} {'met' if g <= 0.02 + 1e-9 else 'MISSED'} ({-g:+.3f})" for k, g in gaps.items()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="held-out fixes (seeds >= 1000), judged by the checker")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--rows", default=None, help=f"comma list of {', '.join(ROWS)} (faces: judge, paper); default all")
    ap.add_argument("--per-prompt", type=int, default=None,
                    help="instances per planted prompt (default 4, quick 1); faces: memorised faces flagged (4, quick 1)")
    ap.add_argument("--seed-start", type=int, default=1000,
                    help="first seed; >= 1000 is held out (never used to choose a default), < 1000 a tuning run")
    ap.add_argument("--prompt-seeds", type=int, default=None,
                    help="seeds of the flagged prompt (default 64, quick 16); faces: report seeds (1024, quick 256)")
    ap.add_argument("--other-seeds", type=int, default=None, help="seeds of each other prompt (default 32, quick 8)")
    ap.add_argument("--surrogate", default="paint", choices=SURROGATES + ("other_seed",),
                    help="faces: paint (a band over the eyes), other_face, sdedit, paint_until_no_copy / "
                         "sdedit_until_no_copy (a user who follows the near-copy warning) or other_seed_<policy> "
                         "(bench/faceseval.py); flags: paint (scripted) or other_seed (a seed drawn right)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default=None)
    add_set_option(ap, "override a field of every row's UnlearnConfig (JSON value), e.g. --set remember_sampling_steps=20")
    ap.add_argument("--combine", type=Path, nargs="+", default=None,
                    help="write the report from these .partial.json files (rows run as separate processes)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)  # partial results are written after each instance
    OVERRIDES.update(config_overrides(args.overrides))
    if args.combine:
        return combine(args)
    import torch

    from core.models import load_model
    from core.studio import Studio
    from core.world.prompts import PROMPTS

    if args.threads:
        torch.set_num_threads(args.threads)
    studio = Studio(load_model(args.model), scratch_dir("heldout-"), restore=False, persist_state=False)
    if studio.model.info.world == "faces":
        from bench.heldout_faces import run

        if args.surrogate not in SURROGATES:
            raise SystemExit(f"--surrogate {args.surrogate}: the faces world takes {', '.join(SURROGATES)}")
        return run(args, studio, OVERRIDES)
    if args.surrogate not in ("paint", "other_seed"):
        raise SystemExit(f"--surrogate {args.surrogate}: the flags world takes paint or other_seed")
    rows = [r for r in (args.rows or ",".join(ROWS)).split(",") if r]
    if set(rows) - set(ROWS):
        raise SystemExit(f"--rows: choose from {', '.join(ROWS)}")
    n_own, n_other = args.prompt_seeds or (16 if args.quick else 64), args.other_seeds or (8 if args.quick else 32)
    per_prompt = args.per_prompt or (1 if args.quick else 4)
    own = BaseCache.build(studio, PLANTED_PROMPTS, range(args.seed_start, args.seed_start + n_own))
    others = BaseCache.build(studio, [ps[0] for ps in PROMPTS.values() if ps[0] not in PLANTED_PROMPTS],
                             range(args.seed_start, args.seed_start + n_other))
    instances = find_instances(own, per_prompt)
    print(f"instances: {instances}", flush=True)
    records, agree = [], {r: [] for r in rows}
    for row in rows:
        for prompt, seed in instances:
            rec, pairs = fix(studio, row, prompt, seed, own, args.surrogate)
            rec.update(evaluate(studio, prompt, seed, rec["run_id"], own, others))
            studio.remove_fix(rec["run_id"])
            rec.update(agree=pairs, prompt_seeds=n_own, other_seeds=n_other, other_prompts=len(others.renders),
                       surrogate=args.surrogate)
            records.append(rec)
            agree[row] += pairs
            (args.out / f"{args.name or 'heldout'}.partial.json").write_text(json.dumps(records, default=str))
            print({k: rec[k] for k in ("row", "prompt", "seed", "fixed", "right_kept", "spread", "others_unchanged",
                                       "steps_done", "kept_step", "seconds")}, flush=True)
    summary = {row: summarise([r for r in records if r["row"] == row], agree[row]) for row in rows}
    write_report(args, summary, records, studio.model, "run in one process")
    return 0


def combine(args) -> int:
    """One report from the records of several processes (e.g. one per row, to use every core)."""
    from core.models import load_model

    records = [r for path in args.combine for r in json.loads(path.read_text())]
    # the surrogate is the records' own (files written before it was recorded: --surrogate says it)
    kinds = {r.get("surrogate", args.surrogate) for r in records}
    if len(kinds) > 1:
        raise SystemExit(f"--combine: these files mix surrogates ({', '.join(sorted(kinds))}); combine one kind at a time")
    args.surrogate = kinds.pop() if kinds else args.surrogate
    rows = list(dict.fromkeys(r["row"] for r in records))
    summary = {row: summarise([r for r in records if r["row"] == row],
                              [tuple(a) for r in records if r["row"] == row for a in r["agree"]]) for row in rows}
    write_report(args, summary, records, load_model(args.model), "combined from " + ", ".join(p.name for p in args.combine))
    return 0


def write_report(args, summary: dict, records: list[dict], model, how: str) -> None:
    header = ["row", "fixed", "right kept (mean / min)", "spread", "others unchanged", "SSIM others",
              "judge vs checker (precision / recall, n)", "median s"]
    table = [[row, f"{s['fixed']}/{s['n']}", f"{s['right_kept_mean']:.3f} / {s['right_kept_min']:.3f}",
              "-" if s["spread_mean"] is None else f"{s['spread_mean']:.3f}", f"{s['others_unchanged']:.3f}",
              f"{s['ssim_others']:.3f}",
              f"{_f(s['judge_precision'])} / {_f(s['judge_recall'])}, {s['monitor_renders']}", f"{s['median_seconds']:.1f}"]
             for row, s in summary.items()]
    instances = list(dict.fromkeys((r["prompt"], r["seed"]) for r in records))
    notes = [f"Instances (the first misdrawn seeds from seed {min(s for _, s in instances) if instances else '-'}, "
             "by the checker): " + ", ".join(f"{p} #{s}" for p, s in instances)
             + (". Surrogates: the first seed of the prompt drawn right (the studio's 'Other seed')"
                if getattr(args, "surrogate", "paint") == "other_seed" else ". Surrogates: scripted paint (bench/worldeval.py)")
             + ". Rows " + how + ".",
             ("Defaults were tuned on seeds 0-63 (and remember seeds >= 100000); no seed here chose anything."
              if args.seed_start >= 1000 else f"Seeds from {args.seed_start} (< 1000): a tuning run, its figures may "
              "choose a default; held-out figures come from seeds >= 1000."),
             (f"Right kept over {records[0]['prompt_seeds']} seeds of the flagged prompt; others unchanged over "
              f"{records[0]['other_prompts']} prompts x {records[0]['other_seeds']} seeds.") if records else ""]
    if "judge" in summary:
        notes += ["Targets, judge row: " + "; ".join(verdicts(summary["judge"], summary.get("checker")))]
    notes += [f"{r['row']} {r['prompt']} #{r['seed']}: fixed {r['fixed']}, right kept {_f(r['right_kept'])} "
              f"(flipped {r['flipped_right_seeds']}), spread {_f(r['spread'])}, others {r['others_unchanged']:.3f}, "
              f"steps {r['steps_done']}, kept step {r['kept_step']}, look-alikes {r['lookalike_prompts']}, "
              f"{r['seconds']:.1f} s" for r in records]
    flips = Counter(p for r in records for p, seeds in r.get("others_flipped", {}).items() for _ in seeds)
    if flips:
        notes.append("Other prompts' verdicts that changed, all fixes together (the prompts a fix moves): "
                     + ", ".join(f"{p} {n}" for p, n in flips.most_common()) + ".")
    name = args.name or ("heldout_quick" if args.quick else "heldout")
    write_markdown(args.out / f"{name}.md", "Held-out fixes: judge-driven vs checker-driven vs paper",
                   command_line(), header, table, notes, [{"summary": summary, "records": records}], model=model)
    print((args.out / f"{name}.md").read_text())


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
