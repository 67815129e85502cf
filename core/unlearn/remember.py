"""The remember set: generations of the model as it is now, which the fix must keep producing.

Building it is the slowest part of a small fix (100 generations at full sampling steps), and it
depends only on the model state and a few config fields, so a `RememberCache` keeps recent sets:
a second attempt at the same fix (other surrogate, other learning rate) skips it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from PIL import Image

from ..adapters import FixManager
from ..generate import generate_many
from ..models.loading import LoadedModel
from .config import UnlearnConfig
from .objectives import Conditioning
from .trainer import CancelledError, RememberData

KeepFn = Callable[[str, Image.Image], bool]  # (prompt, image) -> keep in the remember set?
ProgressFn = Callable[[float, str], None]  # (fraction 0..1, message)


@torch.no_grad()
def encode_prompts(model: LoadedModel, prompts: list[str]) -> Conditioning:
    pipe = model.pipe
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompt=prompts, prompt_2=prompts, prompt_3=prompts, device=model.device,
        num_images_per_prompt=1, do_classifier_free_guidance=False,
        max_sequence_length=model.info.max_sequence_length,
    )
    return Conditioning(embeds.detach(), pooled.detach())


def build_remember_set(model: LoadedModel, prompts: list[str], config: UnlearnConfig, exclude_seeds: set[int],
                       keep: KeepFn | None = None, progress: ProgressFn | None = None, cancel=None):
    """Generate the remember set with the model as it is now (base + enabled fixes).

    `prompts[0]` is the flagged prompt. Flagged seeds are never used; `keep` can drop more (e.g.
    outputs showing the same error, which would fight the fix). Per prompt, seeds are taken in
    order until its quota (`remember_quotas`) is kept. All prompts are generated together, in
    rounds: the first asks for every prompt's quota, later ones only refill what `keep` dropped.
    """
    quota = remember_quotas(prompts, config)
    total = sum(quota.values())
    next_seed = {p: config.remember_seed_start for p in prompts}
    found: dict[str, list] = {p: [] for p in prompts}  # prompt -> kept Generated, in seed order
    excluded: list[tuple[str, int]] = []
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
        def drawing(done: int) -> None:  # per chunk: a first round can take a minute on a CPU
            if progress:
                n = sum(map(len, found.values()))
                progress(n / total, f"remember set: drawing images {done + 1}-"
                         f"{min(done + chunk, len(requests))} of {len(requests)} (kept {n}/{total})")

        chunk = _chunk(model)
        for g in _generate_cancellable(model, requests, config, cancel, drawing):
            if keep is not None and not keep(g.prompt, g.image):
                excluded.append((g.prompt, g.seed))
                continue
            found[g.prompt].append(g)
        if progress:
            n = sum(map(len, found.values()))
            progress(n / total, f"remember set {n}/{total}")
    gens = [g for p in prompts for g in found[p]]
    if not gens:
        raise RuntimeError("the remember set is empty: every candidate was excluded")
    cond = encode_prompts(model, [g.prompt for g in gens])
    kept = [(g.prompt, g.seed) for g in gens]
    return RememberData(torch.cat([g.latent for g in gens]).to(model.device), cond), kept, excluded


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


def _chunk(model: LoadedModel) -> int:
    """Small models batch 32 images per call (per-call overhead dominates); large ones 4, to bound memory."""
    return 32 if model.info.resolution <= 128 else 4


def _generate_cancellable(model: LoadedModel, requests: list[tuple[str, int]], config: UnlearnConfig, cancel,
                          before_chunk: Callable[[int], None] | None = None):
    """Generate in chunks, checking the cancel token between them (a remember set can take minutes);
    `before_chunk(done)` is told how many were drawn before each chunk starts."""
    chunk = _chunk(model)
    for start in range(0, len(requests), chunk):
        if cancel is not None and cancel.cancelled:
            raise CancelledError("cancelled while building the remember set")
        if before_chunk:
            before_chunk(start)
        yield from generate_many(model, requests[start:start + chunk], config.sampling_steps, config.guidance,
                                 batch_size=chunk)


class RememberCache:
    """Recent remember sets, keyed on everything they depend on: the base weights, the enabled
    fixes and their weights, the prompts, the config fields that shape the set, the excluded seeds
    and the exclusion rule. A keep function without a `keep_key` is never cached (its rule is
    unknown). In memory only: the latents of SD3-medium take ~1 MB per image."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._sets: OrderedDict[tuple, tuple] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model: LoadedModel, fixes: FixManager, prompts: list[str], config: UnlearnConfig,
            exclude_seeds: set[int], keep_key: str | None) -> tuple:
        active = tuple(sorted((f.name, float(f.weight)) for f in fixes.fixes.values() if f.enabled))
        return (model.fingerprint(), str(model.device), str(model.pipe.transformer.dtype), active, tuple(prompts),
                config.remember_set_size, config.flagged_prompt_share, tuple(config.lookalike_prompts),
                config.lookalike_share, config.remember_seed_start, config.sampling_steps, config.guidance,
                tuple(sorted(exclude_seeds)), keep_key)

    def get_or_build(self, model: LoadedModel, fixes: FixManager, prompts: list[str], config: UnlearnConfig,
                     exclude_seeds: set[int], keep: KeepFn | None = None, keep_key: str | None = None,
                     progress: ProgressFn | None = None, cancel=None):
        if keep is not None and keep_key is None:
            return build_remember_set(model, prompts, config, exclude_seeds, keep, progress, cancel)
        k = self.key(model, fixes, prompts, config, exclude_seeds, keep_key)
        if k in self._sets:
            self.hits += 1
            self._sets.move_to_end(k)
            if progress:
                progress(1.0, f"remember set {len(self._sets[k][1])} (cached)")
            return self._sets[k]
        self.misses += 1
        found = build_remember_set(model, prompts, config, exclude_seeds, keep, progress, cancel)
        self._sets[k] = found
        while len(self._sets) > self.max_entries:
            self._sets.popitem(last=False)
        return found
