"""The remember set: generations of the model as it is now, which the fix must keep producing.

Building it is the slowest part of a small fix (~100 generations), and each generation depends
only on the model state, its prompt, seed, steps and guidance. So it is built in as few pipeline
calls as memory allows, with `remember_sampling_steps` (fewer than a user's renders where that was
measured not to hurt), and each generation is kept on disk by `RememberStore`: later fixes,
retries and restarts on the same model state reuse it. A `RememberCache` also keeps whole recent
sets in memory, so a retry of the same fix skips even the keep filter.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from PIL import Image

from ..adapters import FixManager
from ..generate import (Generated, decode_batched, generate_many, images_per_call, initial_noise, latent_shape,
                        sampling_precision)
from ..models.loading import LoadedModel
from .config import UnlearnConfig
from .objectives import Conditioning
from .remember_store import GenKey, RememberStore, model_state
from .trainer import CancelledError, RememberData

KeepFn = Callable[[str, Image.Image], bool]  # (prompt, image) -> keep in the remember set?
FractionProgressFn = Callable[[float, str], None]  # (fraction 0..1, message); generate.py counts instead


@torch.no_grad()
def encode_prompts(model: LoadedModel, prompts: list[str]) -> Conditioning:
    if model.unconditional:  # no text encoder: empty conditioning that batches like a real one
        from .forms import null_conditioning

        return null_conditioning(len(prompts), model.device)
    pipe = model.pipe
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompt=prompts, prompt_2=prompts, prompt_3=prompts, device=model.device,
        num_images_per_prompt=1, do_classifier_free_guidance=False,
        max_sequence_length=model.info.max_sequence_length,
    )
    return Conditioning(embeds.detach(), pooled.detach())


class RememberSet(tuple):
    """`(data, kept, excluded)` as callers unpack it, plus where the generations came from:
    `generated` new images made now (kept or not), `reused` kept ones taken from the store or cache,
    `pipeline_calls` the denoising calls it took."""

    generated: int
    reused: int
    pipeline_calls: int

    def __new__(cls, data: RememberData, kept: list, excluded: list, generated: int = 0, reused: int = 0,
                pipeline_calls: int = 0):
        obj = super().__new__(cls, (data, kept, excluded))
        obj.generated, obj.reused, obj.pipeline_calls = generated, reused, pipeline_calls
        return obj

    @property
    def data(self) -> RememberData:
        return self[0]

    @property
    def kept(self) -> list[tuple[str, int]]:
        return self[1]

    @property
    def excluded(self) -> list[tuple[str, int]]:
        return self[2]

    def message(self) -> str:
        return f"remember set: {len(self.kept)} ({self.reused} reused)"


def remember_precision(model: LoadedModel, config: UnlearnConfig) -> str:
    """The precision the remember set is drawn at, as it takes effect on this model."""
    return sampling_precision(model, config.remember_precision)


def remember_steps(model: LoadedModel, config: UnlearnConfig) -> int:
    """Denoising steps of the remember set: its own setting, else the fix's sampling steps, else the model's."""
    return config.remember_sampling_steps or config.sampling_steps or model.info.default_steps


def remember_prompts_for(model: LoadedModel, prompt: str, config: UnlearnConfig) -> list[str]:
    """The flagged prompt first, then the config's other remember prompts. An unconditional model
    has one "prompt" (""): its remember set is its own outputs at other seeds."""
    others = [] if model.unconditional else [p for p in config.remember_prompts if p != prompt]
    return [prompt] + others


def probes_lookalikes(prompts: list[str], config: UnlearnConfig) -> bool:
    """Does a fix of `prompts[0]` probe the other prompts for look-alikes? Not when the config names
    them already, has no other prompt, gives them no share or no probe seeds."""
    return (not config.lookalike_prompts and len(prompts) > 1 and config.lookalike_share > 0
            and config.lookalike_probe_seeds > 0)


def probe_requests(others: list[str], config: UnlearnConfig) -> list[tuple[str, int]]:
    """The look-alike probes: each other remember prompt's first `lookalike_probe_seeds` seeds."""
    seeds = range(config.remember_seed_start, config.remember_seed_start + config.lookalike_probe_seeds)
    return [(p, s) for p in others for s in seeds]


def first_requests(prompts: list[str], config: UnlearnConfig) -> list[tuple[str, int]]:
    """The generations a fix of `prompts[0]` asks for before anything about its images is known:
    the look-alike probes and every prompt's quota of seeds. Look-alikes found later shift quotas
    and the keep filter asks for refills, so a fix may still draw a few more (`Studio.prepare_fix`)."""
    quota = remember_quotas(prompts, config)
    own = [(p, config.remember_seed_start + k) for p in prompts for k in range(quota[p])]
    probes = probe_requests(prompts[1:], config) if probes_lookalikes(prompts, config) else []
    return list(dict.fromkeys(probes + own))


def build_remember_set(model: LoadedModel, prompts: list[str], config: UnlearnConfig, exclude_seeds: set[int],
                       keep: KeepFn | None = None, progress: FractionProgressFn | None = None, cancel=None,
                       store: RememberStore | None = None, fixes: FixManager | None = None,
                       keep_key: str | None = None) -> RememberSet:
    """Generate the remember set with the model as it is now (base + enabled fixes).

    `prompts[0]` is the flagged prompt. Flagged seeds are never used; `keep` can drop more (e.g.
    outputs showing the same error, which would fight the fix). Per prompt, seeds are taken in
    order until its quota (`remember_quotas`) is kept. All prompts are generated together, in
    rounds: the first asks for every prompt's quota, later ones only refill what `keep` dropped.
    Each round is as few pipeline calls as memory allows (`images_per_call`); only latents are kept,
    and images are decoded only for `keep` to look at. With a `store` (and `fixes`, the model's
    FixManager, which the key needs), stored generations are reused and new ones stored; a stored
    keep verdict is reused only under the same `keep_key`.
    """
    quota = remember_quotas(prompts, config)
    total = sum(quota.values())
    steps, precision = remember_steps(model, config), remember_precision(model, config)
    guidance = model.info.default_guidance if config.guidance is None else config.guidance
    state = model_state(model, fixes).digest if store is not None else ""
    shape = (1, *latent_shape(model))
    next_seed = {p: config.remember_seed_start for p in prompts}
    found: dict[str, list] = {p: [] for p in prompts}  # prompt -> kept Generated, in seed order
    excluded: list[tuple[str, int]] = []
    counts = {"generated": 0, "reused": 0, "calls": 0}
    while True:
        requests = []
        for p in prompts:
            want = quota[p] - len(found[p])
            while want > 0 and next_seed[p] < config.remember_seed_start + 20 * quota[p]:
                if next_seed[p] not in exclude_seeds:
                    requests.append((p, next_seed[p]))
                    want -= 1
                next_seed[p] += 1
        if not requests:
            break
        if cancel is not None and cancel.cancelled:
            raise CancelledError("cancelled while building the remember set")
        keys = _keys(model, requests, steps, guidance, state, precision)[2] if store else {}
        stored = {r: e for r in requests if store and (e := store.get(keys[r], shape)) is not None}
        new = _generate_cancellable(model, [r for r in requests if r not in stored], steps, guidance,
                                    keep is not None, cancel, counts, precision)
        verdicts = _verdicts(model, stored, new, keep, keep_key)
        for r in requests:  # in request order: seed order per prompt, as without a store
            g = new.get(r) or Generated(r[0], r[1], None, stored[r].latent, None)
            if r in new:
                counts["generated"] += 1
                if store:
                    store.put(keys[r], g.latent, {keep_key: verdicts[r]} if keep is not None and keep_key else None)
            if keep is not None and not verdicts[r]:
                excluded.append(r)
                continue
            found[r[0]].append(g)
            counts["reused"] += r in stored
        if progress:
            n = sum(map(len, found.values()))
            progress(n / total, f"remember set: {n}/{total} ({counts['reused']} reused)")
    if store:
        store.evict()
    gens = [g for p in prompts for g in found[p]]
    if not gens:
        raise RuntimeError("the remember set is empty: every candidate was excluded")
    cond = encode_prompts(model, [g.prompt for g in gens])
    kept = [(g.prompt, g.seed) for g in gens]
    flagged_rows = torch.tensor([g.prompt == prompts[0] for g in gens])  # SISS draws from these
    data = RememberData(torch.cat([g.latent for g in gens]).to(model.device), cond, flagged_rows)
    return RememberSet(data, kept, excluded, counts["generated"], counts["reused"], counts["calls"])


def probe_generations(model: LoadedModel, requests: list[tuple[str, int]], config: UnlearnConfig,
                      store: RememberStore | None = None, fixes: FixManager | None = None,
                      cancel=None) -> list[Generated]:
    """Decoded generations at the remember set's settings, in request order, reused from and added
    to `store`. What the judge looks at before the set is built (the look-alike probes draw each
    remember prompt's first seeds): made here, the set then reuses them instead of drawing them again."""
    steps, precision = remember_steps(model, config), remember_precision(model, config)
    guidance = model.info.default_guidance if config.guidance is None else config.guidance
    if store is None:
        new = _generate_cancellable(model, requests, steps, guidance, True, cancel, {"calls": 0}, precision)
        return [new[r] for r in requests]
    return stored_generations(model, requests, steps, guidance, store, model_state(model, fixes).digest, cancel=cancel,
                              precision=precision)


def stored_generations(model: LoadedModel, requests: list[tuple[str, int]], steps: int | None, guidance: float | None,
                       store: RememberStore, state: str, cancel=None, progress=None,
                       precision: str = "model") -> list[Generated]:
    """Decoded generations from each seed's own noise, in request order: taken from `store` where it
    holds them (only their latents are kept; decoding is cheap next to denoising), the rest generated
    and added. `state` is the `model_state(model, fixes).digest` of the weights drawing them now (inside
    `fixes.disabled()`, the base model's). `precision` as in `generate_many` (the remember set's, for
    its probes)."""
    steps, guidance, keys = _keys(model, requests, steps, guidance, state, precision)
    shape = (1, *latent_shape(model))
    stored = {r: e for r in requests if (e := store.get(keys[r], shape)) is not None}
    todo = [r for r in dict.fromkeys(requests) if r not in stored]
    if cancel is not None and todo:
        new = _generate_cancellable(model, todo, steps, guidance, True, cancel, {"calls": 0}, precision)
    else:
        new = {(g.prompt, g.seed): g for g in generate_many(model, todo, steps, guidance, progress=progress,
                                                            precision=precision)} if todo else {}
    for r, g in new.items():
        store.put(keys[r], g.latent, None)
    if new:
        store.evict()
    have = list(stored)
    images = decode_batched(model, torch.cat([stored[r].latent for r in have])) if have else []
    old = {r: Generated(r[0], r[1], img, stored[r].latent, initial_noise(model, r[1])) for r, img in zip(have, images)}
    return [new.get(r) or old[r] for r in requests]


def draw_into_store(model: LoadedModel, requests: list[tuple[str, int]], steps: int | None, guidance: float | None,
                    store: RememberStore, state: str, precision: str = "model") -> int:
    """Generate the requests `store` lacks and keep their latents there (nothing is decoded); returns
    how many were drawn. What `Studio.prepare_fix` does ahead of a fix, batch by batch: it evicts
    once when done (`store.evict` scans every entry), not here."""
    steps, guidance, keys = _keys(model, requests, steps, guidance, state, precision)
    todo = [r for r in dict.fromkeys(requests) if not store.has(keys[r])]
    if not todo:
        return 0
    for g in generate_many(model, todo, steps, guidance, batch_size=len(todo), decode_images=False,
                           precision=precision):
        store.put(keys[(g.prompt, g.seed)], g.latent, None)
    return len(todo)


def _keys(model: LoadedModel, requests: list[tuple[str, int]], steps: int | None, guidance: float | None,
          state: str, precision: str = "model") -> tuple[int, float, dict]:
    """(steps, guidance, {request: GenKey}) with the model's defaults filled in."""
    steps = steps or model.info.default_steps
    guidance = model.info.default_guidance if guidance is None else guidance
    precision = sampling_precision(model, precision)
    return steps, guidance, {r: GenKey(state, r[0], r[1], steps, float(guidance), precision) for r in requests}


def _verdicts(model: LoadedModel, stored: dict, new: dict, keep: KeepFn | None, keep_key: str | None) -> dict:
    """keep(prompt, image) per request: a verdict stored under the same keep_key is reused; the
    other stored generations are decoded (in memory-sized batches) for `keep` to look at."""
    if keep is None:
        return {}
    out = {r: e.verdicts[keep_key] for r, e in stored.items() if keep_key is not None and keep_key in e.verdicts}
    todo = [r for r in stored if r not in out]
    if todo:
        images = decode_batched(model, torch.cat([stored[r].latent for r in todo]))
        out.update({r: bool(keep(r[0], img)) for r, img in zip(todo, images)})
    out.update({r: bool(keep(r[0], g.image)) for r, g in new.items()})
    return out


def remember_quotas(prompts: list[str], config: UnlearnConfig) -> dict[str, int]:
    """How many generations each prompt contributes; they add up to exactly `remember_set_size`.
    `lookalike_prompts` among them share `lookalike_share` of the set; the rest is an even split,
    or, with `flagged_prompt_share`, that share for the flagged prompt (prompts[0]) and an even
    split of the remainder over the others. What does not divide evenly goes one each to
    the first prompts (the flagged one first), so a set smaller than the prompt list leaves the
    last prompts out rather than growing past the size asked for."""
    size = config.remember_set_size
    lookalikes = set(config.lookalike_prompts)
    look = [p for p in prompts[1:] if p in lookalikes]
    if look and config.lookalike_share > 0:
        # Look-alike prompts first take their share; the rest is split as usual over the others.
        n_look = min(size - 1, max(len(look), round(config.lookalike_share * size)))
        rest = [p for p in prompts if p not in look]
        quotas = _flagged_and_even(rest, size - n_look, config.flagged_prompt_share) | _even_split(look, n_look)
        return {p: quotas[p] for p in prompts}
    return _flagged_and_even(prompts, size, config.flagged_prompt_share)


def _flagged_and_even(prompts: list[str], size: int, share: float | None) -> dict[str, int]:
    if share is None or len(prompts) == 1:
        return _even_split(prompts, size)
    own = min(size, max(1, round(share * size)))
    return {prompts[0]: own} | _even_split(prompts[1:], size - own)


def _even_split(prompts: list[str], size: int) -> dict[str, int]:
    base, extra = divmod(size, len(prompts))
    return {p: base + (k < extra) for k, p in enumerate(prompts)}


def _generate_cancellable(model: LoadedModel, requests: list[tuple[str, int]], steps: int, guidance: float,
                          decode_images: bool, cancel, counts: dict, precision: str = "model") -> dict:
    """Generate in calls as large as memory allows, checking the cancel token between them (a
    remember set can take minutes); returns {(prompt, seed): Generated}."""
    chunk = images_per_call(model, guidance)
    out = {}
    for start in range(0, len(requests), chunk):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("cancelled while building the remember set")
        part = requests[start:start + chunk]
        for g in generate_many(model, part, steps, guidance, batch_size=chunk, decode_images=decode_images,
                               precision=precision):
            out[(g.prompt, g.seed)] = g
        counts["calls"] += 1
    return out


class RememberCache:
    """Remember sets of this session in memory, over an optional on-disk `RememberStore` of single
    generations. A set is keyed on everything it depends on: the base weights, the enabled fixes and
    their weights, the prompts, the config fields that shape the set, the excluded seeds and the
    exclusion rule. A keep function without a `keep_key` is never cached here (its rule is unknown);
    the store still serves its generations, and `keep` judges them again. In memory the latents of
    SD3-medium take ~1 MB per image, hence only `max_entries` sets."""

    def __init__(self, max_entries: int = 4, store: RememberStore | None = None):
        self.max_entries = max_entries
        self.store = store
        self._sets: OrderedDict[tuple, RememberSet] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget the sets held in memory (as a restart would); the on-disk store stays."""
        self._sets.clear()

    @staticmethod
    def key(model: LoadedModel, fixes: FixManager, prompts: list[str], config: UnlearnConfig,
            exclude_seeds: set[int], keep_key: str | None) -> tuple:
        active = tuple(sorted((f.name, float(f.weight)) for f in fixes.fixes.values() if f.enabled))
        return (model.fingerprint(), str(model.device), str(model.denoiser.dtype), active, tuple(prompts),
                config.remember_set_size, config.flagged_prompt_share, tuple(config.lookalike_prompts),
                config.lookalike_share, config.remember_seed_start, remember_steps(model, config), config.guidance,
                remember_precision(model, config),
                tuple(sorted(exclude_seeds)), keep_key)

    def get_or_build(self, model: LoadedModel, fixes: FixManager, prompts: list[str], config: UnlearnConfig,
                     exclude_seeds: set[int], keep: KeepFn | None = None, keep_key: str | None = None,
                     progress: FractionProgressFn | None = None, cancel=None) -> RememberSet:
        def build():
            return build_remember_set(model, prompts, config, exclude_seeds, keep, progress, cancel, self.store,
                                      fixes, keep_key)

        if keep is not None and keep_key is None:
            return build()
        k = self.key(model, fixes, prompts, config, exclude_seeds, keep_key)
        if k in self._sets:
            self.hits += 1
            self._sets.move_to_end(k)
            found = self._sets[k]
            return RememberSet(found.data, found.kept, found.excluded, 0, len(found.kept), 0)
        self.misses += 1
        found = build()
        self._sets[k] = found
        while len(self._sets) > self.max_entries:
            self._sets.popitem(last=False)
        return found
