"""A fix's monitor, inline or beside the training.

Inline: at each monitor step the training waits while the flagged seed is re-rendered and judged on
the network being trained.

Overlapped (UnlearnConfig.overlap_monitor, on a CPU): the monitor renders on a copy of the network in
a second thread, with the LoRA weights of its step, while the training goes on. The trainer takes
the verdict at the next monitor step; where it changes the course (settling starts, or the fix
stops), the trainer puts back its checkpoint of the monitored step (weights, optimiser, random
generator) and goes on from there. So a fix trains and publishes exactly what it would inline
(tests/test_overlap.py), in less time: a small model's steps do not split over a CPU's intra-op
threads (bench/results/faces_fix_time_threads.md), but the training and the renders do.

    runner = monitor_runner(model, params, config, check_on)   # InlineMonitor or OverlappedMonitor
    future = runner.submit(step, weights)                       # -> bool: forgotten at `step`
    runner.close()
"""

from __future__ import annotations

import copy
import dataclasses
from concurrent.futures import Future
from typing import Callable, Protocol

import torch

from ..models.loading import LoadedModel
from .config import UnlearnConfig
from .threads import CoreSharingWorker, two_cpu_cores

# (step, the LoRA weights at that step) -> True when the oracle sees the flagged seed forgotten
MonitorCheck = Callable[[int, list[torch.Tensor]], bool]

# A copy of the denoiser costs its size in memory: up to 100M parameters (400 MB in fp32; the
# embedded models are under 1M). SD3-medium's 2B are trained on a GPU, where the renders and the
# steps share one device anyway.
OVERLAP_MAX_PARAMETERS = 100_000_000


class MonitorRunner(Protocol):
    overlapped: bool  # True: verdicts arrive while the training goes on

    def submit(self, step: int, weights: list[torch.Tensor]) -> Future: ...

    def close(self) -> None: ...


class InlineMonitor:
    """The check runs at once, in the training's thread."""

    overlapped = False

    def __init__(self, check: MonitorCheck):
        self.check = check

    def submit(self, step: int, weights: list[torch.Tensor]) -> Future:
        done: Future = Future()
        done.set_result(self.check(step, weights))  # an error raises here, in the training's thread
        return done

    def close(self) -> None:
        pass


class OverlappedMonitor:
    """The check runs in one worker thread on a copy of the network, which gets each step's weights
    before it renders; intra-op threads are halved while it lives (threads.py)."""

    overlapped = True

    def __init__(self, model: LoadedModel, params: list[torch.nn.Parameter],
                 check_on: Callable[[LoadedModel], MonitorCheck]):
        self.copy = network_copy(model)
        self.copy.denoiser.train()  # as the trained network is while inline renders happen (train() sets it)
        names = {id(p): n for n, p in model.denoiser.named_parameters()}
        copied = dict(self.copy.denoiser.named_parameters())
        self._targets = [copied[names[id(p)]] for p in params]
        self.check = check_on(self.copy)
        self._worker = CoreSharingWorker("fix-monitor")  # last: nothing above can fail with the threads halved

    def submit(self, step: int, weights: list[torch.Tensor]) -> Future:
        return self._worker.submit(self._run, step, weights)

    def _run(self, step: int, weights: list[torch.Tensor]) -> bool:
        with torch.no_grad():
            for target, w in zip(self._targets, weights):
                target.copy_(w)
        return self.check(step, weights)

    def close(self) -> None:
        """Wait for a render in flight (a stopped or failed fix leaves at most one) and give the
        intra-op threads back."""
        self._worker.close()


def can_overlap(model: LoadedModel, config: UnlearnConfig) -> bool:
    """Whether overlapping pays here: asked for, on a CPU with two cores or more, a network small enough
    to copy."""
    return (config.overlap_monitor and two_cpu_cores(model.device)
            and sum(p.numel() for p in model.denoiser.parameters()) <= OVERLAP_MAX_PARAMETERS)


def monitor_runner(model: LoadedModel, params: list[torch.nn.Parameter], config: UnlearnConfig,
                   check_on: Callable[[LoadedModel], MonitorCheck]) -> MonitorRunner:
    """`check_on(model)` makes the check for the network it renders on: the one being trained (inline),
    or its copy (overlapped)."""
    if can_overlap(model, config):
        return OverlappedMonitor(model, params, check_on)
    return InlineMonitor(check_on(model))


def network_copy(model: LoadedModel) -> LoadedModel:
    """The model with its own denoiser (adapters and their switches as they are now) and scheduler; the
    rest (text encoders, VAE: frozen, only read) is shared."""
    pipe = copy.copy(model.pipe)
    name = "unet" if model.unconditional else "transformer"
    # object.__setattr__: a pipeline's own __setattr__ would re-register the module in its config
    object.__setattr__(pipe, name, copy.deepcopy(model.denoiser))
    object.__setattr__(pipe, "scheduler", copy.deepcopy(model.pipe.scheduler))
    for p in getattr(pipe, name).parameters():
        p.requires_grad_(False)
    return dataclasses.replace(model, pipe=pipe)
