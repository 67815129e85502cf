"""A worker thread beside the training's on a CPU, the cores shared between the two.

Both the overlapped monitor (overlap.py) and the parallel passes (passes.py) run work in one worker
thread while the calling thread goes on. torch's intra-op threads are halved while such a worker
lives, so the two threads share the cores instead of oversubscribing them (measured: two threads of
two intra-op threads each on two cores ran 1.3x slower than one after the other).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch


def two_cpu_cores(device: torch.device) -> bool:
    """Whether a worker beside the caller can pay: a CPU device, two cores or more."""
    return device.type == "cpu" and (os.cpu_count() or 1) >= 2


class CoreSharingWorker:
    """One worker thread; the intra-op threads halved from its start to close()."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._threads = torch.get_num_threads()  # last: nothing above can fail with the threads halved
        torch.set_num_threads(max(1, self._threads // 2))

    def submit(self, fn: Callable, *args) -> Future:
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Wait for the work in flight and give the intra-op threads back."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(self._threads)
