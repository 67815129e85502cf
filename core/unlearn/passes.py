"""The forget and remember passes of a step, one after the other or at once.

A method with gradient surgery needs the forget and the remember gradient apart, so each step runs
two forward and backward passes that share nothing but the LoRA weights they read. On a CPU a small
network's pass does not split over intra-op threads (bench/results/faces_fix_time_threads.md), but
two passes in two threads do: `ParallelPasses` runs the forget pass in a worker thread while the
calling thread runs the remember pass. Each pass's values are what it computes alone at the same
intra-op thread count, so a fix is the same either way (tests/test_passes.py).

    passes = step_passes(device, config)  # SequentialPasses or ParallelPasses
    (loss_f, g_f), (loss_r, g_r) = passes.run(forget, remember)
    passes.close()
"""

from __future__ import annotations

from typing import Callable, Protocol, TypeVar

import torch

from .config import UnlearnConfig
from .threads import CoreSharingWorker, two_cpu_cores

A = TypeVar("A")
B = TypeVar("B")


class StepPasses(Protocol):
    parallel: bool

    def run(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]: ...

    def close(self) -> None: ...


class SequentialPasses:
    """`first`, then `second`, in the calling thread."""

    parallel = False

    def run(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        a = first()
        return a, second()

    def close(self) -> None:
        pass


class ParallelPasses:
    """`first` in a worker thread while `second` runs in the calling thread; intra-op threads are
    halved while it lives (threads.py)."""

    parallel = True

    def __init__(self) -> None:
        self._worker = CoreSharingWorker("fix-pass")

    def run(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        pending = self._worker.submit(first)
        try:
            b = second()
        finally:
            a = pending.result()  # waited for even when `second` failed: no pass outlives its step
        return a, b

    def close(self) -> None:
        self._worker.close()


def step_passes(device: torch.device, config: UnlearnConfig) -> StepPasses:
    """Parallel where it pays: asked for (config.parallel_passes), on a CPU with two cores or more."""
    if config.parallel_passes and two_cpu_cores(device):
        return ParallelPasses()
    return SequentialPasses()
