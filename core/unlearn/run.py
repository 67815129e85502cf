"""One fix from start to finish: remember set, latents, adapter, training, run folder.

    flagged + surrogate images  ->  LoRA fix in <runs>/<run_id>/ (config.json, LoRA file,
                                     loss_log.csv, flagged/surrogate/before/after PNGs, metrics.json)

The run folder is published only on success. On cancel, NaN, error or a full disk the new adapter
is removed and the partial folder deleted: the base model and earlier fixes are untouched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..adapters import FixManager
from ..compare import mean_abs_diff
from ..generate import encode, generate, initial_noise
from ..images import ImageInputError, fit_to_model, to_array
from ..models.loading import LoadedModel
from ..runs import CONFIG_FILE, METRICS_FILE, RunInfo, RunStore, environment_versions, new_run_id
from .config import UnlearnConfig
from .remember import KeepFn, ProgressFn, RememberCache, build_remember_set, encode_prompts
from .trainer import ForgetData, StepReport, TrainResult, train

__all__ = ["AlreadyFixedError", "FixRequest", "FixResult", "unlearn", "build_remember_set", "encode_prompts",
           "RememberCache"]


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
    progress: ProgressFn | None = None,
    remember_cache: RememberCache | None = None,
    keep_key: str | None = None,
    model_defaults_applied: dict | None = None,
    run_id: str | None = None,
) -> FixResult:
    """Train one fix for `request` and publish it as a run; see the module docstring."""
    # 1. Check inputs before any work.
    res = model.info.resolution
    flagged = fit_to_model(request.flagged, res, "flagged image")
    surrogate = fit_to_model(request.surrogate, res, "surrogate")
    if np.array_equal(to_array(flagged), to_array(surrogate)):
        raise ImageInputError("the surrogate is identical to the flagged image: edit it so the unwanted part is gone")
    if not request.prompt.strip():
        raise ValueError("the prompt is empty")
    t_start = time.perf_counter()
    # The flagged seed as the model draws it now (earlier fixes on): already right means nothing to
    # unlearn, and is cheap to learn before the remember set is built.
    noise = initial_noise(model, request.seed) if request.seed is not None else None
    if progress and noise is not None:
        progress(0.0, "drawing the flagged seed as the model draws it now")
    before = _render(model, request, noise, config) if noise is not None else None
    if before is not None and is_fixed is not None and is_fixed(before):
        enabled = [f.name for f in fixes.fixes.values() if f.enabled]
        raise AlreadyFixedError(
            f"{request.prompt!r} seed {request.seed} is already drawn correctly with the enabled fixes "
            f"({', '.join(enabled) or 'none'}): nothing to unlearn. Switch fixes off to fix it against "
            "the base model instead.")

    # 2. Remember set from the model as it is (earlier fixes included), flagged seed excluded.
    excluded = {request.seed} if request.seed is not None else set()
    prompts = [request.prompt] + [p for p in config.remember_prompts if p != request.prompt]
    if remember_cache is not None:
        remember, kept, dropped = remember_cache.get_or_build(model, fixes, prompts, config, excluded,
                                                              keep_in_remember, keep_key, progress, cancel)
    else:
        remember, kept, dropped = build_remember_set(model, prompts, config, excluded, keep_in_remember, progress,
                                                     cancel)

    # 3. Latents and conditioning of the instance.
    x_f, x_s = encode(model, [flagged]), encode(model, [surrogate])
    forget = ForgetData(x_f, x_s, encode_prompts(model, [request.prompt]))

    # 4. A fresh adapter in a partial run folder; everything below is undone on failure.
    run_id = run_id or new_run_id()
    partial = store.begin(run_id)
    params = None
    monitor_images: list[tuple[int, Image.Image]] = []
    try:
        with torch.random.fork_rng(devices=[]):  # LoRA's gaussian init draws from the global RNG
            torch.manual_seed(config.seed)
            params = fixes.create(run_id, rank=config.lora_rank, alpha=config.lora_alpha)
        partial.save_image("flagged.png", flagged)
        partial.save_image("surrogate.png", surrogate)
        log = partial.loss_log()

        def step_cb(r: StepReport) -> None:
            log.append(r.row())
            if on_step:
                on_step(r)

        def monitor(step: int) -> bool:
            img = _render(model, request, noise, config)
            monitor_images.append((step, img))
            if on_monitor:
                on_monitor(step, img)
            return bool(is_fixed(img)) if is_fixed else False

        sigmas = _training_sigmas(model)
        result = train(model.pipe.transformer, params, sigmas, forget, remember, config, step_cb, cancel,
                       monitor if noise is not None else None)
        fixes.freeze()
        if progress:
            progress(1.0, "saving the fix and drawing the flagged seed with it")
        # 5. Outputs: the LoRA file, before/after of the flagged seed, config and metrics.
        fixes.save(run_id, partial.path)
        after = _render(model, request, noise, config) if noise is not None else None
        if before is not None:
            partial.save_image("before.png", before)
            partial.save_image("after.png", after)
        seconds = time.perf_counter() - t_start
        fixed = bool(is_fixed(after)) if (is_fixed is not None and after is not None) else None
        partial.write_json(METRICS_FILE, _metrics(result, seconds, flagged, after, kept, dropped, fixed))
        partial.write_json(CONFIG_FILE, _config_record(model, request, config, run_id, kept, model_defaults_applied))
        if cancel is not None:  # Stop pressed during the last step or the final render: keep nothing
            cancel.check(f"after step {result.steps_done} of {config.steps}, before saving")
        run = partial.commit()
    except BaseException:
        partial.abort()
        if params is not None and run_id in fixes.fixes:
            fixes.remove(run_id)
        raise
    return FixResult(run, result, kept, dropped, monitor_images)


def _render(model: LoadedModel, request: FixRequest, noise, config: UnlearnConfig) -> Image.Image:
    return generate(model, request.prompt, [request.seed], config.sampling_steps, config.guidance, noises=[noise])[0].image


def _training_sigmas(model: LoadedModel) -> torch.Tensor:
    """The scheduler's full (shifted) sigma table, as diffusers' SD3 training scripts use it."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler.from_config(model.pipe.scheduler.config)
    return sched.sigmas.float()


def _metrics(result: TrainResult, seconds: float, flagged, after, kept, dropped, fixed: bool | None) -> dict:
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
    }
    if after is not None:
        m["flagged_seed_mean_abs_change"] = round(mean_abs_diff(after, flagged), 5)
    if fixed is not None:  # the caller's checker on the final render of the flagged seed
        m["flagged_seed_fixed"] = fixed
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
