"""The training loop of a fix: sampling, method step, clipping, AdamW, progress, cancel, monitor.

It knows nothing of files or prompts: it gets latents and embeddings, trains the LoRA
parameters it is given, and reports each step. NaN/inf stops it with DivergedError before the
bad update is applied; a cancel token is checked every step. With an overlapped monitor
(overlap.py) the steps go on while a verdict is rendered; one that changes the course (settle,
stop) sends the training back to the step it judged, so the fix is the same as inline.
"""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch

from .config import UnlearnConfig
from .guard import FixGuard
from .methods import METHODS, Batch
from .overlap import MonitorRunner
from .passes import StepPasses
from .objectives import Conditioning
from .weighting import sample_sigmas


class DivergedError(RuntimeError):
    """The loss or gradient became NaN/inf; nothing from this run is kept."""


class CancelledError(RuntimeError):
    """The caller cancelled the run; nothing from this run is kept."""


class CancelToken:
    """Thread-safe stop flag a GUI's Stop button sets and the loop checks every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, where: str) -> None:
        """Raise CancelledError if Stop was pressed; `where` says how far the run got."""
        if self.cancelled:
            raise CancelledError(f"cancelled {where}")


@dataclass
class StepReport:
    step: int  # 1-based
    total: int
    L_f: float
    L_r: float
    lam: float | None
    cos: float | None
    projected: bool | None
    grad_norm: float
    seconds: float

    def row(self) -> dict:
        return {"step": self.step, "L_f": self.L_f, "L_r": self.L_r, "lambda": self.lam, "cos_fr": self.cos,
                "projected": self.projected, "grad_norm": self.grad_norm, "seconds": self.seconds}


@dataclass
class ForgetData:
    # (K, C, h, w): row 0 the flagged latent; then twin seeds' latents (UnlearnConfig.twin_forget); the
    # last `earlier` rows are enabled earlier fixes' flagged latents (UnlearnConfig.earlier_forget_samples)
    x_f: torch.Tensor
    x_s: torch.Tensor  # (K, C, h, w) their targets: the surrogate, each twin with the user's edit, each fix's surrogate
    cond: Conditioning  # batch 1: the flagged prompt (twins and those earlier fixes are of the same prompt)
    earlier: int = 0


@dataclass
class RememberData:
    latents: torch.Tensor  # (N, C, h, w)
    cond: Conditioning  # batch N, aligned with latents
    # (N,) bool: rows generated from the flagged prompt. None = every row is (a remember set of
    # the flagged prompt only, the paper's). SISS draws its remember samples from these rows only.
    flagged_rows: torch.Tensor | None = None
    # (N,) int: how many times each row counts when a step draws remember samples. None = once each.
    repeats: torch.Tensor | None = None
    # (N,) bool: rows remembered as the enabled fixes draw them (remember_from "base": seeds that showed an
    # earlier fix's picture). remember_target "model" anchors these on the model as it is, the rest on the
    # base. None = no such rows.
    as_fixed: torch.Tensor | None = None


@dataclass
class TrainResult:
    steps_done: int
    stopped_early: bool
    reports: list[StepReport] = field(default_factory=list)


StepCallback = Callable[[StepReport], None]


@dataclass
class _Checkpoint:
    """Everything a step changes, so an overlapped monitor's verdict can send the training back to it."""
    step: int
    params: list[torch.Tensor]
    optim: dict
    gen: torch.Tensor

    @classmethod
    def take(cls, step: int, weights: list[torch.Tensor], optim: torch.optim.Optimizer,
             gen: torch.Generator) -> "_Checkpoint":
        """`weights`: a copy of the LoRA weights at `step`, which nothing writes to (only read back)."""
        return cls(step, weights, copy.deepcopy(optim.state_dict()), gen.get_state())

    @torch.no_grad()
    def restore(self, params, optim: torch.optim.Optimizer, gen: torch.Generator) -> None:
        for p, saved in zip(params, self.params):
            p.copy_(saved)
        optim.load_state_dict(copy.deepcopy(self.optim))
        gen.set_state(self.gen)


@dataclass
class _Pending:
    """A monitor step whose verdict is still being rendered (overlapped monitor)."""
    step: int
    verdict: Future
    checkpoint: _Checkpoint | None  # None inline: the training waits, there is nothing to go back from


def train(
    transformer,
    params: list[torch.nn.Parameter],
    scheduler_sigmas: torch.Tensor,
    forget: ForgetData,
    remember: RememberData,
    config: UnlearnConfig,
    on_step: StepCallback | None = None,
    cancel: CancelToken | None = None,
    monitor: MonitorRunner | None = None,
    form=None,
    guard: FixGuard | None = None,
    reference: Callable[[], ContextManager] | None = None,
    base_reference: Callable[[], ContextManager] | None = None,
    passes: StepPasses | None = None,
) -> TrainResult:
    """`scheduler_sigmas` is the table of noise levels a step samples from (`form.timestep_table()`);
    `monitor` judges the flagged seed every config.monitor_every steps (core/unlearn/overlap.py: inline,
    or beside the training, with the same result); `form` the loss parameterisation (forms.py), None =
    SD3's rectified flow; `guard` the fix's FixGuard, which settle_patience asks for the state it would
    publish; `reference` a context in
    which the network predicts as before this fix (FixManager.muted), for remember_target "model";
    `base_reference` one in which it predicts as the base model (every fix muted), the anchor of the
    remember rows drawn from the base (remember_from "base"), None = `reference` for every row; `passes` how
    a step's separate forget and remember passes run (passes.py), None = one after the other."""
    device = params[0].device
    gen = torch.Generator("cpu").manual_seed(config.seed)
    method = METHODS[config.method](transformer, params, config, form, reference, base_reference, passes)
    optim = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    result = TrainResult(0, False)
    settle_until = None  # with stop_when_fixed: the step to stop at, once the monitor saw it fixed
    limit = config.steps  # the last step; near_miss_steps may move it once
    pending: _Pending | None = None
    held: list[StepReport] = []  # reports past a pending monitor step: shown once its verdict keeps them

    def emit_held() -> None:
        for r in held:
            if on_step:
                on_step(r)
        held.clear()

    def decide(p: _Pending) -> bool:
        """The verdict of monitor step p.step, acted on as if the training had waited for it there
        (going back to it if it moved on and the verdict changes the course); True = stop."""
        nonlocal settle_until, step, limit
        fixed = p.verdict.result()
        # A Stop pressed while the monitor rendered wins over "stop when fixed": a stopped
        # run must never end as a finished (and saved) fix.
        if cancel is not None:
            cancel.check(f"at step {p.step} of {limit}")
        starts_settling = fixed and config.stop_when_fixed and settle_until is None
        if starts_settling:
            settle_until = p.step + config.settle_steps
        settled = settle_until is not None and (p.step >= settle_until or _settled(guard, p.step, config))
        stop = settled or (settle_until is None and _twins_stalled(guard, p.step, config))
        if (starts_settling or stop) and step > p.step:  # trained past it: back to the monitored step
            p.checkpoint.restore(params, optim, gen)
            del result.reports[p.step:]
            result.steps_done = step = p.step
            held.clear()
        if starts_settling:
            for group in optim.param_groups:  # settle_lr_scale: smaller steps once forgotten
                group["lr"] = config.learning_rate * config.settle_lr_scale
        if stop:
            result.stopped_early = p.step < limit
        elif p.step == limit == config.steps and _near_miss(guard, p.step, config):
            limit += config.near_miss_steps
        emit_held()
        return stop

    transformer.train()
    step = 0
    try:
        while step < limit:
            step += 1
            if cancel is not None:
                cancel.check(f"at step {step - 1} of {limit}")
            t0 = time.perf_counter()
            batch = _sample_batch(forget, remember, scheduler_sigmas, config, gen, device)
            try:
                out = method.step(batch)
                grad_norm = _apply(out.grads, params, config.max_grad_norm, step, out)
            except DivergedError:
                if pending is None:
                    raise
                # A step trained past a pending verdict: inline, that verdict might have stopped the fix,
                # or changed its course, before this step. Take it first, as inline would have.
                done, pending = pending, None
                if decide(done):
                    break
                if step == done.step:
                    continue
                raise
            optim.step()
            optim.zero_grad(set_to_none=True)
            report = StepReport(step, limit, out.loss_f, out.loss_r, out.lam, out.cos, out.projected,
                                grad_norm, time.perf_counter() - t0)
            result.reports.append(report)
            result.steps_done = step
            held.append(report)
            if pending is None:
                emit_held()
            if monitor and config.monitor_every and (step % config.monitor_every == 0 or step == limit):
                if pending is not None:
                    done, pending = pending, None
                    if decide(done):
                        break
                    if step == done.step:  # went back to it: train on from there
                        continue
                weights = [p.detach().clone() for p in params]  # the monitor, the guard and the checkpoint read it
                checkpoint = _Checkpoint.take(step, weights, optim, gen) if monitor.overlapped else None
                pending = _Pending(step, monitor.submit(step, weights), checkpoint)
                if not monitor.overlapped or step == limit:
                    done, pending = pending, None
                    if decide(done):
                        break
    finally:
        transformer.eval()
        for p in params:
            p.grad = None
    return result


def _settled(guard: FixGuard | None, step: int, config: UnlearnConfig) -> bool:
    """settle_patience: the state the guard would publish is that many steps old, so settling on
    is not moving the other outputs back any more."""
    best = guard.best() if guard is not None and config.settle_patience else None
    return best is not None and best.forgotten and step - best.step >= config.settle_patience


def _near_miss(guard: FixGuard | None, step: int, config: UnlearnConfig) -> bool:
    """near_miss_steps: no monitored state had the flagged seed forgotten (with or without twins left:
    the guard would publish none as forgotten, so a retry would start over), and the judge's score at
    the last step is within near_miss_margin of its bar."""
    if not (config.near_miss_steps and config.stop_when_fixed and guard is not None and guard.points):
        return False
    last, best = guard.points[-1], guard.best()
    return (last.step == step and not best.forgotten and best.twins_left is None
            and last.score >= config.forget_threshold - config.near_miss_margin)


def _twins_stalled(guard: FixGuard | None, step: int, config: UnlearnConfig) -> bool:
    """twin_patience: the flagged seed is forgotten but twins are left, and the state the guard would
    publish (the fewest twins left) has not been bettered for that many steps."""
    best = guard.best() if guard is not None and config.twin_patience and config.stop_when_fixed else None
    return (best is not None and not best.forgotten and best.twins_left is not None
            and step - best.step >= config.twin_patience)


def _apply(grads, params, max_norm: float, step: int, out) -> float:
    """Set .grad, refuse non-finite values, clip; return the pre-clip norm."""
    if not (torch.isfinite(torch.tensor([out.loss_f, out.loss_r])).all()):
        raise DivergedError(
            f"loss became non-finite at step {step} (L_f={out.loss_f}, L_r={out.loss_r}); "
            "lower the learning rate or check the inputs")
    for p, g in zip(params, grads):
        p.grad = g.detach().to(p.dtype)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    if not torch.isfinite(norm):
        raise DivergedError(f"gradient became non-finite at step {step}; lower the learning rate")
    return float(norm)


def _sample_batch(forget: ForgetData, remember: RememberData, sigmas: torch.Tensor, config: UnlearnConfig,
                  gen: torch.Generator, device) -> Batch:
    """All randomness of a step from one CPU generator, so a run is reproducible from its seed."""
    F, R = config.forget_batch_size, config.remember_batch_size
    shape = forget.x_f.shape[1:]
    pool = _remember_pool(remember, config)
    idx = pool[torch.randint(0, len(pool), (R,), generator=gen)]
    to = lambda t: t.to(device)  # noqa: E731 - tiny local helper
    rows = torch.zeros(F, dtype=torch.long)  # every forget sample is the flagged latent...
    batch = Batch(
        x_f=forget.x_f,  # indexed below, once the rows are drawn
        x_s=forget.x_s,
        cond_f=forget.cond.repeat(F),
        eps_f=to(torch.randn((F, *shape), generator=gen)),
        s_f=to(sample_sigmas(F, sigmas, config, gen)),
        x_r=to(remember.latents[idx]),
        cond_r=remember.cond.take(idx.to(remember.cond.pooled.device)),
        eps_r=to(torch.randn((R, *shape), generator=gen)),
        s_r=to(sample_sigmas(R, sigmas, config, gen)),
        uniform_f=to(torch.rand((F, *shape), generator=gen)),
        mix_from_forget=to(torch.rand(R, generator=gen) < config.siss_lambda),
        as_fixed_r=None if remember.as_fixed is None else to(remember.as_fixed[idx]),
    )
    own = forget.x_f.shape[0] - forget.earlier
    if own > 1:  # ...or, with twins, the first one and the rest drawn among the flagged and twin rows
        # drawn last, so a run without twins consumes the generator exactly as before
        rows[1:] = torch.randint(0, own, (F - 1,), generator=gen)
    n = config.earlier_forget_samples if forget.earlier else 0
    if n:  # more samples replaying earlier fixes' pairs, drawn after the rest, for the same reason
        rows = torch.cat([rows, own + torch.randint(0, forget.earlier, (n,), generator=gen)])
        batch.eps_f = torch.cat([batch.eps_f, to(torch.randn((n, *shape), generator=gen))])
        batch.s_f = torch.cat([batch.s_f, to(sample_sigmas(n, sigmas, config, gen))])
        batch.uniform_f = torch.cat([batch.uniform_f, to(torch.rand((n, *shape), generator=gen))])
        batch.cond_f = forget.cond.repeat(F + n)
    batch.x_f, batch.x_s = to(forget.x_f[rows]), to(forget.x_s[rows])
    return batch


def _remember_pool(remember: RememberData, config: UnlearnConfig) -> torch.Tensor:
    """Row indices a step may draw remember samples from: every row, except for a method that
    mixes the flagged latent with remember latents under one prompt (SISS), which needs the
    flagged prompt's rows: its importance ratios compare two images under the same prompt."""
    n = remember.latents.shape[0]
    rows = torch.arange(n)
    if remember.repeats is not None:
        rows = torch.repeat_interleave(rows, remember.repeats.cpu())
    if not METHODS[config.method].remember_from_flagged_prompt or remember.flagged_rows is None:
        return rows
    pool = rows[remember.flagged_rows.cpu()[rows]]
    if len(pool) == 0:
        raise ValueError(f"UnlearnConfig.method={config.method!r} draws its remember samples from the flagged "
                         "prompt, but the remember set has none of its outputs: raise flagged_prompt_share or "
                         "remember_set_size, or loosen the remember filter")
    return pool
