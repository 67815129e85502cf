"""A remember set drawn from the base model while other fixes are on (`remember_from="base"`).

Stacked fixes each keep what the model drew just before them (`remember_from="current"`), so the
drift of every earlier fix is kept too and adds up. Drawn from the base model instead, the remember
set pulls what earlier fixes moved back toward the original outputs. Where an enabled fix removed a
picture, the base output must not be the target, or the new fix would teach the picture back: each
fix's run folder holds its flagged image and surrogate, a judge made from them says which base
outputs show it, and those seeds are remembered as the model draws them now, with the fixes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass

import torch

from ..adapters import Fix, FixManager
from ..images import fit_to_model, load_image, to_array
from ..judge import ForgettingJudge
from ..runs import CONFIG_FILE, RunStore
from .config import UnlearnConfig
from .objectives import Conditioning
from .remember import KeepFn, encode_prompts, probe_generations
from .trainer import RememberData

PICTURES = ("flagged.png", "surrogate.png")  # what every run folder holds beside its LoRA file
Requests = list[tuple[str, int]]  # (prompt, seed) pairs


@dataclass(frozen=True)
class EarlierFix:
    """One enabled fix: its prompt, the judge of its flagged picture, a key for cached verdicts, and its
    (flagged, surrogate) as read from its run folder."""
    name: str
    prompt: str
    judge: ForgettingJudge
    key: str
    pictures: tuple

    def shows_picture(self, prompt: str, image) -> bool:
        return prompt == self.prompt and bool(self.judge.shows_error([image])[0])


def earlier_fixes(model, fixes: FixManager, runs: RunStore, config: UnlearnConfig) -> list[EarlierFix]:
    """The enabled fixes whose pictures a base-drawn remember set must not teach back; [] under
    remember_from="current"."""
    if config.remember_from != "base":
        return []
    return [_earlier_fix(model, fix, runs, config) for fix in fixes.fixes.values() if fix.enabled]


def _earlier_fix(model, fix: Fix, runs: RunStore, config: UnlearnConfig) -> EarlierFix:
    record, flagged, surrogate = _fix_pictures(
        model, fix, runs, "remember_from='base' needs each enabled fix's flagged picture (its seeds are remembered "
        "as the fix draws them, not as the base model did)", "or set remember_from='current'")
    threshold = record.get("config", {}).get("forget_threshold", config.forget_threshold)
    projection = record.get("config", {}).get("forget_projection", 0.0)  # fixes saved before it existed: none
    digest = hashlib.sha256(to_array(flagged).tobytes() + to_array(surrogate).tobytes()).hexdigest()[:12]
    judge = ForgettingJudge.for_model(model, flagged, surrogate, threshold, projection)
    key = f"{digest}@{threshold}" + (f"/{projection}" if projection else "")
    return EarlierFix(fix.name, record.get("prompt", ""), judge, key, (flagged, surrogate))


def _fix_pictures(model, fix: Fix, runs: RunStore, why: str, or_else: str):
    """(config record, flagged, surrogate) from a fix's run folder: where its LoRA file was loaded from
    or saved to, else the run of its name. `why` and `or_else` say, in the error, what needs them."""
    folders = ([fix.path.parent] if fix.path is not None else []) + [runs.root / fix.name]
    folder = next((f for f in folders if all((f / n).is_file() for n in (*PICTURES, CONFIG_FILE))), None)
    if folder is None:
        raise ValueError(f"{why}, and fix {fix.name!r} has no run folder with {', '.join(PICTURES)} and "
                         f"{CONFIG_FILE}. Switch that fix off, {or_else}.")
    record = json.loads((folder / CONFIG_FILE).read_text())
    flagged, surrogate = (fit_to_model(load_image(folder / n), model.info.resolution, f"fix {fix.name}'s {n}")
                          for n in PICTURES)
    return record, flagged, surrogate


def earlier_pairs(model, fixes: FixManager, runs: RunStore, prompt: str, config: UnlearnConfig,
                  earlier: list[EarlierFix]) -> list[tuple]:
    """(flagged, surrogate) of each enabled fix of `prompt` (UnlearnConfig.earlier_forget_samples): the new
    fix's forget loss replays them. [] when earlier_forget_samples is 0 or the method is not the surrogate's.
    `earlier` (earlier_fixes' answer) already holds every enabled fix's pictures when it is not empty."""
    if not config.earlier_forget_samples or config.method != "surrogate":
        return []
    if earlier:  # remember_from "base" read every enabled fix's run folder already
        return [e.pictures for e in earlier if e.prompt == prompt]
    pairs = []
    for fix in fixes.fixes.values():
        if not fix.enabled:
            continue
        record, flagged, surrogate = _fix_pictures(
            model, fix, runs, "earlier_forget_samples replays each enabled fix's flagged picture and surrogate",
            "or set earlier_forget_samples 0")
        if record.get("prompt", "") == prompt:
            pairs.append((flagged, surrogate))
    return pairs


def drawing_from(fixes: FixManager, config: UnlearnConfig):
    """The model the remember set is drawn from: the base (every fix off for the block, their enabled
    flags untouched) or as it is. The studio's background preparation draws through it too."""
    return fixes.disabled() if config.remember_from == "base" else contextlib.nullcontext()


def leaving_out(earlier: list[EarlierFix], keep: KeepFn | None, keep_key: str | None,
                ) -> tuple[KeepFn | None, str | None]:
    """`keep` that also drops what any earlier fix removed, and the key its stored verdicts go under
    (None stays None: an external filter's verdicts are never reused)."""
    if not earlier:
        return keep, keep_key

    def keep_fn(prompt: str, image) -> bool:
        return (keep is None or keep(prompt, image)) and not any(e.shows_picture(prompt, image) for e in earlier)

    if keep is not None and keep_key is None:
        return keep_fn, None
    return keep_fn, f"{keep_key or 'no filter'}; without earlier fixes {', '.join(e.key for e in earlier)}"


def split_left_out(model, judge: ForgettingJudge, prompt: str, left_out: Requests, earlier: list[EarlierFix],
                   config: UnlearnConfig, store, fixes: FixManager) -> tuple[Requests, Requests]:
    """(own, theirs) of the seeds the remember filter left out: those showing this fix's picture (its
    twins come from these), and those left out only for an earlier fix's picture. Call it where the set
    was drawn: the images are drawn again at its settings (with a store, only decoded)."""
    if not earlier or not left_out:
        return list(left_out), []
    gens = probe_generations(model, left_out, config, store, fixes)
    own = [r for r, g in zip(left_out, gens)
           if config.remember_filter and r[0] == prompt and judge.shows_error([g.image])[0]]
    # At most a set's worth: a picture that fills its prompt's outputs must not crowd out the rest.
    return own, [r for r in left_out if r not in own][:config.remember_set_size]


def with_fixed_pictures(model, remember: RememberData, kept: Requests, theirs: Requests, prompt: str,
                        config: UnlearnConfig, store, fixes: FixManager) -> tuple[RememberData, Requests]:
    """The remember set plus `theirs` (seeds whose base output shows an earlier fix's picture) as the
    model draws them now, with the fixes on: the new fix keeps them fixed instead of drawing them back."""
    if not theirs:
        return remember, kept
    gens = probe_generations(model, theirs, config, store, fixes)
    latents = torch.cat([remember.latents, torch.cat([g.latent for g in gens]).to(remember.latents.device)])
    cond = Conditioning.cat([remember.cond, encode_prompts(model, [p for p, _ in theirs])])
    rows = remember.flagged_rows
    if rows is not None:
        rows = torch.cat([rows, torch.tensor([p == prompt for p, _ in theirs], dtype=rows.dtype)])
    as_fixed = torch.arange(len(latents)) >= len(remember.latents)  # the rows appended here
    return RememberData(latents, cond, rows, as_fixed=as_fixed), kept + list(theirs)
