"""One fix from start to finish: remember set, latents, adapter, training, run folder.

    flagged + surrogate images  ->  LoRA fix in <runs>/<run_id>/ (config.json, LoRA file,
                                     loss_log.csv, flagged/surrogate/before/after PNGs, metrics.json)

The run folder is published only on success. On cancel, NaN, error or a full disk the new adapter
is removed and the partial folder deleted: the base model and earlier fixes are untouched.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..adapters import FixManager
from ..compare import mean_abs_diff
from ..generate import check_prompt_for, decode_batched, encode, generate, generate_many, initial_noise
from ..judge import ForgettingJudge, has_near_copy
from ..images import ImageInputError, fit_to_model, to_array
from ..limits import SEED_MAX, check_seed
from ..models.loading import LoadedModel
from ..runs import CONFIG_FILE, LORA_FILE, METRICS_FILE, RunInfo, RunStore, environment_versions
from .config import UnlearnConfig
from .earlier_fixes import (drawing_from, earlier_fixes, earlier_pairs, leaving_out, split_left_out,
                            with_fixed_pictures)
from .forms import form_for
from .guard import FixGuard, MonitorPoint
from .overlap import monitor_runner
from .passes import step_passes
from .remember import (FractionProgressFn, KeepFn, RememberCache, build_remember_set, encode_prompts,
                       probe_generations, probe_requests, probes_lookalikes, remember_precision,
                       remember_prompts_for, remember_steps, stored_generations)
from .remember_store import RememberStore, model_state
from .trainer import CancelledError, ForgetData, RememberData, StepReport, TrainResult, train

__all__ = ["AlreadyFixedError", "FixRequest", "FixResult", "new_try", "unlearn", "build_remember_set",
           "encode_prompts", "RememberCache"]


class AlreadyFixedError(ValueError):
    """The flagged seed is already drawn right with the enabled fixes (by the caller's `is_fixed`):
    training another fix on it only pulls the model toward its remember set (measured: a second
    Ireland fix on a seed the first had already corrected undid the first)."""


@dataclass
class FixRequest:
    prompt: str
    flagged: Image.Image
    surrogate: Image.Image
    seed: int | None = None  # the flagged seed, if the image came from this model
    surrogate_info: dict = field(default_factory=dict)  # how the surrogate was made


@dataclass
class FixResult:
    run: RunInfo
    train: TrainResult
    remember_seeds: list[tuple[str, int]]
    excluded_seeds: list[tuple[str, int]]
    monitor: list[tuple[int, Image.Image]]
    monitor_points: list[MonitorPoint] = field(default_factory=list)


TRY_PREFIX = "try "  # how unlearn's progress message announces a new try (retry_seeds)


def new_try(message: str) -> str | None:
    """The try's label ("try 2 of 2 (training seed 1)") when a progress message of unlearn announces a
    new try, else None: callers restart their step counts and plots there."""
    return message.split(":")[0] if message.startswith(TRY_PREFIX) else None


def unlearn(
    model: LoadedModel,
    fixes: FixManager,
    store: RunStore,
    request: FixRequest,
    config: UnlearnConfig,
    on_step: Callable[[StepReport], None] | None = None,
    cancel=None,
    is_fixed: Callable[[Image.Image], bool] | None = None,
    on_monitor: Callable[[int, Image.Image], None] | None = None,
    keep_in_remember: KeepFn | None = None,
    progress: FractionProgressFn | None = None,
    remember_cache: RememberCache | None = None,
    keep_key: str | None = None,
    model_defaults_applied: dict | None = None,
    run_id: str | None = None,
) -> FixResult:
    """Train one fix for `request` and publish it as a run; see the module docstring.

    The forgetting judge (core/judge.py) decides by default. `is_fixed` and `keep_in_remember`
    replace it with an external oracle (the flags world's checker in benches, `oracle="checker"`).
    With config.retry_seeds, a try that ends with the flagged seed not forgotten is discarded and
    trained again from the start with the next training seed; the last try is published either way.
    `on_monitor` and `is_fixed` judge the render they are given: with an overlapped monitor
    (config.overlap_monitor, core/unlearn/overlap.py) they run in its thread while the steps go on, so a
    callback that draws with the model itself needs overlap_monitor False.
    """
    tries: list[dict] = []  # the discarded tries, for the published fix's metrics
    while True:
        seed = (config.seed + len(tries)) % (SEED_MAX + 1)
        if tries and progress:
            progress(0.0, f"{TRY_PREFIX}{len(tries) + 1} of {config.retry_seeds + 1} (training seed {seed}): the one "
                          "before ended with the flagged seed not forgotten")
        result = _one_try(model, fixes, store, request, config.with_overrides(seed=seed), on_step, cancel, is_fixed,
                          on_monitor, keep_in_remember, progress, remember_cache, keep_key, model_defaults_applied,
                          run_id, tries)
        m = result.run.metrics()
        if m.get("flagged_seed_fixed") is not False or len(tries) == config.retry_seeds:
            return result
        tries.append({"seed": seed, "steps_done": m.get("steps_done"), "seconds_total": m.get("seconds_total"),
                      "score": (m.get("forgetting") or {}).get("score")})
        fixes.remove(result.run.run_id)  # a try that did not forget is not kept: its numbers are in `tries`
        store.remove(result.run.run_id)


def _one_try(model: LoadedModel, fixes: FixManager, store: RunStore, request: FixRequest, config: UnlearnConfig,
             on_step, cancel, is_fixed, on_monitor, keep_in_remember: KeepFn | None,
             progress: FractionProgressFn | None, remember_cache: RememberCache | None, keep_key: str | None,
             model_defaults_applied: dict | None, run_id: str | None, earlier_tries: list[dict]) -> FixResult:
    """One training of the fix at config.seed (unlearn's docstring)."""
    # 1. Check inputs before any work.
    res = model.info.resolution
    flagged = fit_to_model(request.flagged, res, "flagged image")
    surrogate = fit_to_model(request.surrogate, res, "surrogate")
    if np.array_equal(to_array(flagged), to_array(surrogate)):
        raise ImageInputError("the surrogate is identical to the flagged image: edit it so the unwanted part is gone")
    check_prompt_for(model, request.prompt)  # "" for an unconditional model: a fix named by its seed alone
    if config.lora_targets:  # a typo is said before the remember set is drawn, not after
        fixes.check_targets(config.lora_targets)
    if config.forget_snr_gamma and not model.unconditional:
        raise ValueError(f"UnlearnConfig.forget_snr_gamma={config.forget_snr_gamma!r}: it weights a DDPM (epsilon) "
                         f"model's forget loss, and {model.info.name} is a flow model, whose surrogate target does "
                         "not grow as the noise goes: set forget_snr_gamma 0")
    if request.seed is not None:
        check_seed(request.seed, "flagged seed")
    t_start = time.perf_counter()
    judge = ForgettingJudge.for_model(model, flagged, surrogate, config.forget_threshold, config.forget_projection)
    oracle = "external" if is_fixed else config.oracle
    if is_fixed is None and config.oracle == "copy":  # forgotten = no longer a near copy (any method)
        is_fixed = lambda img: not judge.shows_error([img])[0]  # noqa: E731
    forgotten = is_fixed or (lambda img: judge.judge_flagged_seed(img).forgotten)
    # The flagged seed as the model draws it now (earlier fixes on): already forgotten means nothing
    # to unlearn, and is cheap to learn before the remember set is built.
    noise = initial_noise(model, request.seed) if request.seed is not None else None
    if progress and noise is not None:
        progress(0.0, "drawing the flagged seed as the model draws it now")
    before = _render(model, request, noise, config) if noise is not None else None
    if before is not None and forgotten(before):
        enabled = [f.name for f in fixes.fixes.values() if f.enabled]
        raise AlreadyFixedError(
            f"{request.prompt!r} seed {request.seed} is already drawn without the flagged content with the enabled "
            f"fixes ({', '.join(enabled) or 'none'}): nothing to unlearn. Switch fixes off to fix it against "
            "the base model instead.")

    # 2. Remember set from the model as it is (earlier fixes included) or, with remember_from="base",
    # from the base (earlier_fixes.py); flagged seed excluded. The judge finds look-alike prompts
    # (remembered most) and keeps the flagged prompt's outputs that show the flagged picture out
    # (they would fight the fix).
    excluded = {request.seed} if request.seed is not None else set()
    prompts = remember_prompts_for(model, request.prompt, config)
    remember_store = remember_cache.store if remember_cache is not None else None
    earlier = earlier_fixes(model, fixes, store, config)  # remember_from="base": what they removed stays out
    replayed = earlier_pairs(model, fixes, store, request.prompt, config, earlier)  # now: a missing folder fails first
    with drawing_from(fixes, config):
        if keep_in_remember is None:
            config = _with_lookalikes(model, fixes, judge, prompts, config, progress, cancel, remember_store)
        if keep_in_remember is None and config.remember_filter:
            keep_in_remember = lambda p, img: p != request.prompt or not judge.shows_error([img])[0]  # noqa: E731
            keep_key = f"judge {judge.descriptor.name}: flagged {_image_digest(flagged)} surrogate {_image_digest(surrogate)}"
        keep_in_remember, keep_key = leaving_out(earlier, keep_in_remember, keep_key)
        if remember_cache is not None:
            found = remember_cache.get_or_build(model, fixes, prompts, config, excluded, keep_in_remember, keep_key,
                                                progress, cancel)
        else:
            found = build_remember_set(model, prompts, config, excluded, keep_in_remember, progress, cancel)
        remember, kept, dropped = found
        if progress:
            progress(1.0, found.message())
        # The guard's remember seeds and their images before the fix (drawn where the set was).
        guard_rows = _guard_rows(kept, request.prompt, config) if noise is not None else []
        guard_requests = [kept[i] for i in guard_rows]
        guard_base = _guard_base(model, remember, guard_rows, guard_requests, config, remember_store, fixes)
        own, theirs = split_left_out(model, judge, request.prompt, dropped, earlier, config, remember_store, fixes)
    # Seeds that showed an earlier fix's picture: remembered as the fixes draw them, not as the base did.
    remember, kept = with_fixed_pictures(model, remember, kept, theirs, request.prompt, config, remember_store, fixes)
    if progress and theirs:
        progress(1.0, f"{found.message()} + {len(theirs)} as the earlier fixes draw them")
    if config.remember_mode_weight > 1:
        remember = _weigh_modes(model, judge, remember, config.remember_mode_weight)
    # Pictures the model repeats, from its own remember outputs: the flagged seed landing on one is no fix.
    repeated = judge.with_modes(decode_batched(model, remember.latents)) if config.mode_guard else None
    # Other seeds that drew the flagged picture (the filter left them out): forgotten means them too.
    twin_requests = [r for r in own if r[0] == request.prompt][:config.twin_seeds] if noise is not None else []

    # 3. Latents and conditioning of the instance.
    x_f, x_s = encode(model, [flagged]), encode(model, [surrogate])
    forget = ForgetData(x_f, x_s, encode_prompts(model, [request.prompt]))
    if config.twin_forget and twin_requests:
        forget = _with_twins(model, forget, twin_requests, config, remember_store, fixes)
    if replayed:  # earlier fixes' pairs last: the trainer draws earlier_forget_samples more samples there
        if progress:
            progress(1.0, f"the forget loss also replays {len(replayed)} earlier fix(es) of this prompt, "
                          f"{config.earlier_forget_samples} sample(s) a step, so their pictures stay away")
        forget = ForgetData(torch.cat([forget.x_f, encode(model, [f for f, _ in replayed])]),
                            torch.cat([forget.x_s, encode(model, [s for _, s in replayed])]), forget.cond,
                            earlier=len(replayed))

    # 4. A fresh adapter in a partial run folder; everything below is undone on failure.
    partial = store.begin(run_id)  # claims the id (a generated one is redrawn on a clash)
    run_id = partial.run_id
    params = None
    try:
        with torch.random.fork_rng(devices=[]):  # LoRA's gaussian init draws from the global RNG
            torch.manual_seed(config.seed)
            params = fixes.create(run_id, rank=config.lora_rank, alpha=config.lora_alpha,
                                  targets=tuple(config.lora_targets) or None)
        guard = FixGuard(params)
        partial.save_image("flagged.png", flagged)
        partial.save_image("surrogate.png", surrogate)
        log = partial.loss_log()

        def step_cb(r: StepReport) -> None:
            log.append(r.row())
            if on_step:
                on_step(r)

        monitor = _FixMonitor(model, request, noise, config, judge, is_fixed, guard, guard_requests, guard_base,
                              twin_requests, on_monitor)
        form = form_for(model)  # SD3: rectified flow; a DDPM: the epsilon form
        runner = (monitor_runner(model, params, config, lambda net: replace(monitor, model=net))
                  if noise is not None and config.monitor_every else None)
        passes = None
        try:
            passes = step_passes(model.device, config)  # halves the intra-op threads too when parallel
            threads = torch.get_num_threads()  # float sums follow it: a fix repeats value for value at the same count
            result = train(model.denoiser, params, form.timestep_table(), forget, remember, config, step_cb, cancel,
                           runner, form=form, guard=guard if config.keep_best else None,
                           reference=lambda: fixes.muted(run_id),
                           base_reference=(lambda: fixes.muted(run_id, *[e.name for e in earlier])) if earlier else None,
                           passes=passes)
        finally:
            if passes is not None:
                passes.close()  # first: the threads each halved are given back in turn
            if runner is not None:
                runner.close()
        kept_point = guard.best() if config.keep_best else None
        if kept_point is not None:
            guard.restore(kept_point)
        fixes.freeze()
        if progress:
            progress(1.0, "saving the fix and drawing the flagged seed with it")
        # 5. Outputs: the LoRA file, before/after of the flagged seed, config and metrics.
        fixes.save(run_id, partial.path)
        after, drift = None, (kept_point.drift if kept_point is not None and config.keep_best else None)
        if noise is not None and drift is None:  # the published state's drift was not measured yet
            after, drift = _monitor_render(model, request, noise, config, guard_requests, guard_base)
        elif noise is not None:
            after = _render(model, request, noise, config)
        if before is not None:
            partial.save_image("before.png", before)
            partial.save_image("after.png", after)
        seconds = time.perf_counter() - t_start
        after_verdict = judge.judge_flagged_seed(after) if after is not None else None
        fixed = None if after is None else (bool(is_fixed(after)) if is_fixed else after_verdict.forgotten)
        outcome = {"after_verdict": after_verdict, "after": after, "fixed": fixed, "oracle": oracle,
                   "surrogate_copy": judge.surrogate_check(), "guard": guard, "drift": drift, "twins": twin_requests,
                   "repeated": repeated, "kept": kept_point or (guard.points[-1] if guard.points else None)}
        partial.write_json(METRICS_FILE, _metrics(result, seconds, flagged, kept, dropped, outcome, config)
                           | {"remember_reused": found.reused, "remember_generated": found.generated}
                           | {"intra_op_threads": threads, "parallel_passes": passes.parallel}
                           | ({"monitor_overlapped": runner.overlapped} if runner is not None else {})
                           | ({"earlier_tries": list(earlier_tries)} if earlier_tries else {})
                           | ({"remember_drawn_from": "base", "remember_as_fixed": len(theirs)} if earlier else {})
                           | ({"earlier_forget_rows": len(replayed)} if replayed else {}))
        partial.write_json(CONFIG_FILE, _config_record(model, request, config, run_id, kept, model_defaults_applied))
        if cancel is not None:  # Stop pressed during the last step or the final render: keep nothing
            last = result.reports[-1].total if result.reports else config.steps  # near_miss_steps may have moved it
            cancel.check(f"after step {result.steps_done} of {last}, before saving")
        run = partial.commit(required=[LORA_FILE])
        fixes.fixes[run_id].path = run.lora_path  # the partial folder it was saved in is gone
    except BaseException:
        partial.abort()
        if params is not None and run_id in fixes.fixes:
            fixes.remove(run_id)
        raise
    return FixResult(run, result, kept, dropped, monitor.images, guard.points)


def _with_lookalikes(model: LoadedModel, fixes: FixManager, judge: ForgettingJudge, prompts: list[str],
                     config: UnlearnConfig, progress, cancel, store: RememberStore | None) -> UnlearnConfig:
    """Fill `lookalike_prompts` with the judge: the other remember prompts whose first remember
    seeds mostly show the flagged picture. Left alone when the config names them already. The
    probes are the remember set's own first generations (same seeds and steps, through the store),
    so building the set afterwards reuses them."""
    if not probes_lookalikes(prompts, config):
        return config
    others = prompts[1:]
    if cancel is not None and cancel.cancelled:
        raise CancelledError("cancelled while looking for look-alike prompts")
    if progress:
        progress(0.0, f"looking for look-alike prompts ({len(others)} prompts)")
    gens = probe_generations(model, probe_requests(others, config), config, store, fixes, cancel)
    outputs: dict[str, list] = {}
    for g in gens:
        outputs.setdefault(g.prompt, []).append(g.image)
    return config.with_overrides(lookalike_prompts=judge.lookalike_prompts(outputs))


def _weigh_modes(model: LoadedModel, judge: ForgettingJudge, remember: RememberData, weight: int) -> RememberData:
    """The remember set with each output that has a near copy among the others counted `weight` times."""
    e = np.asarray(judge.descriptor.embed(decode_batched(model, remember.latents)), np.float64)
    modes = torch.from_numpy(has_near_copy(e, judge.descriptor.copy_threshold))
    return RememberData(remember.latents, remember.cond, remember.flagged_rows,
                        torch.where(modes, weight, 1).to(torch.long), remember.as_fixed)


def _guard_rows(kept: list[tuple[str, int]], prompt: str, config: UnlearnConfig) -> list[int]:
    """Remember rows the guard re-renders: look-alike prompts' first (a fix drags them first), then
    the flagged prompt's, then one per other prompt, up to `guard_seeds`."""
    looks = set(config.lookalike_prompts)
    order = ([i for i, (p, _) in enumerate(kept) if p in looks] + [i for i, (p, _) in enumerate(kept) if p == prompt]
             + list(range(len(kept))))
    rows, seen_prompt = [], {}
    for i in order:
        p = kept[i][0]
        if i in rows or (p not in looks and p != prompt and seen_prompt.get(p)):
            continue
        rows.append(i)
        seen_prompt[p] = True
        if len(rows) == config.guard_seeds:
            break
    return rows


@dataclass
class _FixMonitor:
    """A fix's check at each monitor step: the flagged seed re-rendered and judged; at steps where it
    is forgotten, also the guard seeds' drift and the twin seeds. `guard` records every point."""
    model: LoadedModel
    request: FixRequest
    noise: torch.Tensor
    config: UnlearnConfig
    judge: ForgettingJudge
    is_fixed: Callable[[Image.Image], bool] | None  # an external oracle, else the judge decides
    guard: FixGuard
    guard_requests: list[tuple[str, int]]
    guard_base: list[Image.Image]
    twin_requests: list[tuple[str, int]]
    on_monitor: Callable[[int, Image.Image], None] | None = None
    images: list[tuple[int, Image.Image]] = field(default_factory=list)

    def __call__(self, step: int, weights: list[torch.Tensor]) -> bool:
        """Judge the flagged seed as `self.model` draws it; `weights` are the fix's LoRA weights it draws
        with (the guard keeps them with the point)."""
        img = _render(self.model, self.request, self.noise, self.config)
        self.images.append((step, img))
        if self.on_monitor:  # first: the GUI shows the render while it is judged
            self.on_monitor(step, img)
        verdict = self.judge.judge_flagged_seed(img)  # once per render: it embeds the image
        now = bool(self.is_fixed(img)) if self.is_fixed else verdict.forgotten
        # Drift decides only among forgotten states (FixGuard.best), so the guard and twin seeds are
        # re-drawn only then: most monitor steps render one image instead of 1 + guard_seeds.
        drift, twins_left = None, None
        if now:
            extra = self.guard_requests + self.twin_requests
            gens = generate_many(self.model, extra, self.config.sampling_steps, self.config.guidance,
                                 batch_size=len(extra)) if extra else []
            drift = _drift(self.guard_base, gens[:len(self.guard_requests)])
            if self.twin_requests:
                twins_left = self._twins_left([g.image for g in gens[len(self.guard_requests):]])
                now = twins_left == 0
        self.guard.record(MonitorPoint(step, now, verdict.score, drift, twins_left, verdict.projection), weights)
        return now

    def _twins_left(self, twins: list[Image.Image]) -> int:
        """A twin was a near copy of the flagged image, so it is judged like the flagged seed: moved
        toward the surrogate where the user edited (a weak copy descriptor stops calling it a copy long
        before the picture is gone: faces_tune_twins.md)."""
        forgotten = self.is_fixed or (lambda t: self.judge.judge_flagged_seed(t).forgotten)
        return int(sum(not forgotten(t) for t in twins))


def _guard_base(model: LoadedModel, remember: RememberData, rows: list[int], requests: list[tuple[str, int]],
                config: UnlearnConfig, store: RememberStore | None = None,
                fixes: FixManager | None = None) -> list[Image.Image]:
    """The guard seeds as the model drew them before the fix, at the monitor's settings: decoded from
    the remember set's latents when it was drawn at those settings (steps and precision), else drawn."""
    if not rows:
        return []
    if (remember_steps(model, config) == (config.sampling_steps or model.info.default_steps)
            and remember_precision(model, config) == "model"):
        return decode_batched(model, remember.latents[rows])
    return _draw_now(model, requests, config, store, fixes)


def _draw_now(model: LoadedModel, requests: list[tuple[str, int]], config: UnlearnConfig,
              store: RememberStore | None, fixes: FixManager | None) -> list[Image.Image]:
    """The requests as the model draws them now, at the monitor's settings; through the store when
    there is one (a second fix of the prompt reuses them)."""
    if store is not None:
        return [g.image for g in stored_generations(model, requests, config.sampling_steps, config.guidance, store,
                                                    model_state(model, fixes).digest)]
    return [g.image for g in generate_many(model, requests, config.sampling_steps, config.guidance,
                                           batch_size=len(requests))]


def _with_twins(model: LoadedModel, forget: ForgetData, twins: list[tuple[str, int]], config: UnlearnConfig,
                store: RememberStore | None, fixes: FixManager) -> ForgetData:
    """The forget data with the twin seeds as more rows: each twin as the model draws it now (at the
    monitor's settings, through the store), its target the twin plus the user's edit (surrogate minus
    flagged, in latent space). A twin is a near copy of the flagged image, so the edit carries over."""
    x_t = encode(model, _draw_now(model, twins, config, store, fixes))
    edit = forget.x_s - forget.x_f
    return ForgetData(torch.cat([forget.x_f, x_t]), torch.cat([forget.x_s, x_t + edit]), forget.cond)


def _drift(base: list[Image.Image], renders: list) -> float:
    return float(np.mean([mean_abs_diff(b, g.image) for b, g in zip(base, renders)])) if base else 0.0


def _monitor_render(model: LoadedModel, request: FixRequest, noise, config: UnlearnConfig,
                    guard_requests: list[tuple[str, int]], guard_base: list[Image.Image]) -> tuple[Image.Image, float]:
    """The flagged seed and the guard seeds in one call; returns (flagged render, guard drift)."""
    reqs = [(request.prompt, request.seed)] + list(guard_requests)
    noises = [noise] + [initial_noise(model, s) for _, s in guard_requests]
    gens = generate_many(model, reqs, config.sampling_steps, config.guidance, batch_size=len(reqs), noises=noises)
    return gens[0].image, _drift(guard_base, gens[1:])


def _image_digest(img: Image.Image) -> str:
    return hashlib.sha256(to_array(img).tobytes()).hexdigest()[:12]


def _render(model: LoadedModel, request: FixRequest, noise, config: UnlearnConfig) -> Image.Image:
    return generate(model, request.prompt, [request.seed], config.sampling_steps, config.guidance, noises=[noise])[0].image


def _training_sigmas(model: LoadedModel) -> torch.Tensor:
    """The scheduler's full (shifted) sigma table, as diffusers' SD3 training scripts use it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler.from_config(model.pipe.scheduler.config)
    return sched.sigmas.float()


def _metrics(result: TrainResult, seconds: float, flagged, kept, dropped, outcome: dict,
             config: UnlearnConfig) -> dict:
    reports = result.reports
    m = {
        "steps_done": result.steps_done,
        "stopped_early": result.stopped_early,
        "seconds_total": round(seconds, 3),
        "seconds_per_step": round(float(np.mean([r.seconds for r in reports])), 4) if reports else None,
        "final_L_f": reports[-1].L_f if reports else None,
        "final_L_r": reports[-1].L_r if reports else None,
        "projected_fraction": (float(np.mean([bool(r.projected) for r in reports])) if reports and reports[0].projected is not None else None),
        "remember_set_size": len(kept),
        "remember_excluded": len(dropped),
        "oracle": outcome["oracle"],
        "lookalike_prompts": list(config.lookalike_prompts),
        "surrogate_copy": outcome["surrogate_copy"].to_dict(),  # the surrogate itself a near copy of the flagged image?
    }
    after, after_verdict, point = outcome["after"], outcome["after_verdict"], outcome["kept"]
    if after is not None:
        m["flagged_seed_mean_abs_change"] = round(mean_abs_diff(after, flagged), 5)
        m["forgetting"] = after_verdict.to_dict()
    if outcome["fixed"] is not None:  # the deciding oracle on the final render of the flagged seed
        m["flagged_seed_fixed"] = outcome["fixed"]
    if point is not None:
        m["kept_step"] = point.step if config.keep_best else result.steps_done
        m["remember_drift"] = round(outcome["drift"], 5) if outcome["drift"] is not None else None
        m["monitor"] = [p.to_dict() for p in outcome["guard"].points]
    if outcome["repeated"] is not None:  # mode_guard: remember outputs that count as pictures the model repeats
        m["repeated_pictures"] = outcome["repeated"]
    if outcome["twins"]:  # other seeds that drew the flagged picture, and how many still do at the kept step
        m["twin_seeds"] = [s for _, s in outcome["twins"]]
        m["twins_left"] = point.twins_left if point is not None else None
    return m


def _config_record(model: LoadedModel, request: FixRequest, config: UnlearnConfig, run_id: str, kept, defaults) -> dict:
    return {
        "run_id": run_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prompt": request.prompt,
        "seed": request.seed,
        "flagged_image": "flagged.png",
        "surrogate_image": "surrogate.png",
        "surrogate": request.surrogate_info,
        "config": config.to_dict(),
        "model_defaults_applied": defaults or {},
        "remember_seeds": [[p, s] for p, s in kept],
        "model": {
            "name": model.source,
            "location": model.location,
            "base_fingerprint": model.fingerprint(),
            "resolution": model.info.resolution,
            "max_sequence_length": model.info.max_sequence_length,
            "sampling_steps": config.sampling_steps or model.info.default_steps,
            "guidance": model.info.default_guidance if config.guidance is None else config.guidance,
        },
        "versions": environment_versions(),
    }
