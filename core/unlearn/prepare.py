"""Drawing a fix's remember set ahead, in a background thread, while the person flags and paints.

A fix spends most of its time drawing its remember set. Those generations depend only on the model
state, prompt, seed, steps and guidance (the RememberStore's key), so they can be drawn before the
person presses Unlearn: after a grid, the first generations a fix of that prompt asks for; once a
seed is flagged, also the larger quota of the look-alike prompts its probes suggest. The fix then
finds them in the store. The model is shared with the person's own jobs through the studio's lock,
held here for about PREPARE_HOLD_S at a time.
"""

from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass, field

from PIL import Image

from ..adapters import FixManager
from ..judge import likely_lookalikes
from ..models.loading import LoadedModel
from .config import UnlearnConfig
from .earlier_fixes import drawing_from
from .remember import draw_into_store, first_requests, probe_requests, probes_lookalikes, remember_prompts_for, \
    remember_precision, remember_steps, stored_generations
from .remember_store import RememberStore, model_state
from .trainer import CancelToken

# Batches of 1 to PREPARE_BATCH generations, sized from the last batch's pace: on SD3-medium one image
# already takes seconds, on the embedded model sixteen take about two. Bigger batches matter here:
# torch ops called from this background thread ran 1.3x (16 images a call) to 1.7x (8) slower than
# from the main thread on the 2-core machine (per-call threading overhead on tiny matrices).
PREPARE_HOLD_S = 2.0
PREPARE_BATCH = 16


@dataclass
class Preparation:
    """A fix's remember set being drawn in the background (`Studio.prepare_fix`)."""

    prompt: str
    total: int  # generations a fix of `prompt` asks for first
    token: CancelToken
    thread: threading.Thread | None = None
    done: int = 0  # of `total`, in the store (drawn now or found there)
    drawn: int = 0
    lookalikes: list[str] = field(default_factory=list)  # guessed from the flagged image, drawn for too
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self) -> None:
        """Stop after the current batch. Never waits: the caller may hold the lock this thread wants."""
        self.token.cancel()

    def wait(self, timeout: float | None = None) -> "Preparation":
        if self.thread is not None:
            self.thread.join(timeout)
        return self

    def message(self) -> str:
        if self.error:
            return f"preparing the fix stopped: {self.error}"
        state = "ready" if self.done == self.total else ("stopped" if not self.running else "drawing")
        looks = f"; look-alike prompts: {', '.join(self.lookalikes)}" if self.lookalikes else ""
        return (f"remember set for {self.prompt!r}: {self.done}/{self.total} {state} "
                f"({self.drawn} drawn in the background{looks})")


def start_preparation(model: LoadedModel, fixes: FixManager, store: RememberStore, lock, prompt: str,
                      config: UnlearnConfig, flagged: Image.Image | None = None) -> Preparation:
    """Start drawing what a fix of `prompt` with `config` asks for into `store`, taking `lock` (the
    studio's model lock) a batch at a time; with `flagged`, also for its likely look-alike prompts.
    Nothing starts when the store keeps nothing (0 MB)."""
    prompts = remember_prompts_for(model, prompt, config)
    requests = first_requests(prompts, config)
    prep = Preparation(prompt, len(requests), CancelToken())
    if store.max_bytes == 0:
        prep.error = "the remember store is off (0 MB): a fix draws its whole remember set itself"
        return prep
    job = _Job(model, fixes, store, lock, prep, config)
    prep.thread = threading.Thread(target=job.run, args=(prompts, requests, flagged), name="prepare-fix", daemon=True)
    _RUNNING[:] = [p for p in _RUNNING if p.running] + [prep]
    prep.thread.start()
    return prep


_RUNNING: list[Preparation] = []  # started preparations, for the exit hook below
EXIT_WAIT_S = 30.0


@atexit.register
def _stop_at_exit() -> None:
    """The process exits while a preparation draws (the studio closed, a script or test ending): a daemon
    thread stopped inside a torch op aborts the whole process ("terminate called without an active
    exception", exit status 134). Stop each and let it finish its current batch first."""
    for prep in _RUNNING:
        prep.stop()
    for prep in _RUNNING:
        prep.wait(EXIT_WAIT_S)


@dataclass
class _Job:
    model: LoadedModel
    fixes: FixManager
    store: RememberStore
    lock: object
    prep: Preparation
    config: UnlearnConfig

    def run(self, prompts: list[str], requests: list[tuple[str, int]], flagged: Image.Image | None) -> None:
        prep, config = self.prep, self.config
        try:
            if not self._draw(requests):
                return
            if flagged is None or not probes_lookalikes(prompts, config):
                return
            if not self._take_lock():
                return
            try:
                with drawing_from(self.fixes, self.config):  # where the fix will draw its set
                    probes = stored_generations(self.model, probe_requests(prompts[1:], config), self._steps(),
                                                config.guidance, self.store, self._state(),
                                                precision=remember_precision(self.model, config))
                outputs: dict[str, list] = {}
                for g in probes:
                    outputs.setdefault(g.prompt, []).append(g.image)
                prep.lookalikes = likely_lookalikes(self.model, flagged, outputs)
            finally:
                self.lock.release()
            if prep.lookalikes:
                more = first_requests(prompts, config.with_overrides(lookalike_prompts=prep.lookalikes))
                asked = set(requests)
                requests = requests + [r for r in more if r not in asked]
                prep.total = len(requests)
                self._draw(requests)
        except Exception as e:  # noqa: BLE001 - a background helper: the fix itself reports real errors
            prep.error = f"{type(e).__name__}: {e}"

    def _steps(self) -> int:
        return remember_steps(self.model, self.config)

    def _state(self) -> str:
        return model_state(self.model, self.fixes).digest  # the fixes acting now: a toggle changes the key

    def _draw(self, requests: list[tuple[str, int]]) -> bool:
        """Draw requests[prep.done:] into the store in lock-sized batches, then keep the store within
        its bound (once: eviction scans every entry); False once stopped."""
        prep, size = self.prep, 1
        while prep.done < len(requests):
            # Between batches the lock is free: a waiting user job takes it (the pause lets the
            # waiter in before this thread takes the lock again).
            time.sleep(0.01)
            if not self._take_lock():
                return False
            try:
                part = requests[prep.done:prep.done + size]
                t0 = time.perf_counter()
                with drawing_from(self.fixes, self.config):  # where the fix will draw its set
                    drawn = draw_into_store(self.model, part, self._steps(), self.config.guidance, self.store,
                                            self._state(), remember_precision(self.model, self.config))
                if drawn:
                    pace = (time.perf_counter() - t0) / drawn
                    size = max(1, min(PREPARE_BATCH, int(PREPARE_HOLD_S / max(pace, 1e-6))))
                prep.drawn += drawn
                prep.done += len(part)
                if prep.done >= len(requests) and prep.drawn:
                    self.store.evict()
            finally:
                self.lock.release()
        return True

    def _take_lock(self) -> bool:
        """The model lock, unless stopped first. It polls, so a job stopped while a fix holds the lock
        ends at once instead of waiting out the fix: measured, a preparing thread left waiting slowed
        the fix's training steps 2.4x (0.226 against 0.093 s a step)."""
        while not self.prep.token.cancelled:
            if self.lock.acquire(timeout=0.05):
                if not self.prep.token.cancelled:
                    return True
                self.lock.release()
        return False
