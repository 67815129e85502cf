"""Relapse probe: after a fix, does the flagged output come back by another road?

No peer tool checks this. For a fix of (prompt, flagged seed) we re-ask the model in ways the
fix did not train on and count how often the error returns:
  - seeds: the prompt's other seeds that showed the same error before the fix;
  - steps: the flagged seed with fewer and more sampling steps;
  - guidance: the flagged seed with other guidance scales (text-to-image models only);
  - paraphrase: the flagged seed (and error seeds) under other phrasings of the prompt.
Each case is rendered before (fixes off) and after (fixes on) from the same initial noise. A
case counts toward the relapse rate only if it showed the error before the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from PIL import Image

from .adapters import FixManager
from .generate import generate
from .models.loading import LoadedModel

ShowsError = Callable[[str, Image.Image], bool]  # (prompt, image) -> does it show the flagged error?


@dataclass
class ProbeCase:
    kind: str  # seeds | steps | guidance | paraphrase
    prompt: str
    seed: int
    steps: int | None = None
    guidance: float | None = None


def probe_cases(model: LoadedModel, prompt: str, flagged_seed: int, error_seeds: Sequence[int],
                paraphrases: Sequence[str] = (), step_factors=(0.5, 2.0), guidance_values: Sequence[float] | None = None
                ) -> list[ProbeCase]:
    info = model.info
    cases = [ProbeCase("seeds", prompt, s) for s in error_seeds if s != flagged_seed]
    for f in step_factors:
        cases.append(ProbeCase("steps", prompt, flagged_seed, steps=max(2, round(info.default_steps * f))))
    # An unconditional model has no guidance (nor phrasings): its roads back are seeds and steps.
    guidance = () if model.unconditional else (guidance_values if guidance_values is not None
                                               else (1.0, info.default_guidance * 2))
    for g in guidance:
        if g != info.default_guidance:
            cases.append(ProbeCase("guidance", prompt, flagged_seed, guidance=g))
    for p in paraphrases:
        if p != prompt:
            cases += [ProbeCase("paraphrase", p, s) for s in [flagged_seed, *error_seeds]]
    return cases


def _render(model: LoadedModel, case: ProbeCase) -> Image.Image:
    return generate(model, case.prompt, [case.seed], case.steps, case.guidance)[0].image


def relapse_probe(model: LoadedModel, fixes: FixManager, fix_names: Sequence[str], cases: Sequence[ProbeCase],
                  shows_error: ShowsError, progress=None, cancel=None) -> dict:
    """Before/after each case; per kind: cases, errors before, errors after, relapse fraction.
    `progress(frac, message)` is told after each case; `cancel.check(where)` (a CancelToken) stops
    the probe between cases."""
    rows = []
    for i, case in enumerate(cases):
        if cancel is not None:
            cancel.check(f"after {i} of {len(cases)} relapse cases")
        if progress:
            progress(i / max(1, len(cases)), f"relapse probe: case {i + 1}/{len(cases)} ({case.kind})")
        with fixes.disabled():
            before = shows_error(case.prompt, _render(model, case))
        with fixes.only(list(fix_names)):
            after = shows_error(case.prompt, _render(model, case))
        rows.append({**vars(case), "error_before": before, "error_after": after})
    report: dict = {"kinds": {}, "cases": rows}
    for kind in sorted({r["kind"] for r in rows}) + ["all"]:
        sel = [r for r in rows if kind == "all" or r["kind"] == kind]
        had = [r for r in sel if r["error_before"]]
        report["kinds"][kind] = {
            "cases": len(sel),
            "error_before": len(had),
            "error_after": sum(r["error_after"] for r in sel),
            "relapsed": sum(r["error_after"] for r in had),
            "relapse_fraction": round(sum(r["error_after"] for r in had) / len(had), 4) if had else None,
            "new_errors": sum(r["error_after"] and not r["error_before"] for r in sel),
        }
    return report
