"""Several attempts at one fix (UnlearnConfig.fix_attempts), and which one to publish.

A fix's damage to other outputs varies widely with its training seed alone: in the faces world's
four-face sequence the lowest SSIM after a fix was 0.893, 0.821 and 0.879 for training seeds 0, 1
and 2 (bench/results/faces_seq_spread_tune.md), and the drift of the guard seeds at the published
state follows that SSIM (r = -0.63 over 44 fixes). So a fix may be trained again from the same fresh
LoRA weights with the next training seed, and the attempt whose kept state is forgotten with the
least drift is published. Only what a user has decides: the judge and the guard seeds' drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import UnlearnConfig
from .guard import FixGuard, MonitorPoint
from .trainer import TrainResult


@dataclass
class Attempt:
    index: int
    seed: int  # the training seed of this attempt: config.seed + index
    result: TrainResult
    guard: FixGuard
    monitor: object  # the attempt's _FixMonitor (its renders)

    @property
    def kept(self) -> MonitorPoint | None:
        return self.guard.best()

    def rank(self) -> tuple:
        """Lower is better: forgotten first, then least drift; else the highest forgetting score."""
        p = self.kept
        if p is None:
            return (2, 0.0, self.index)
        if p.forgotten:
            return (0, round(p.drift if p.drift is not None else 0.0, 6), self.index)
        return (1, -p.score, self.index)

    def to_dict(self) -> dict:
        p = self.kept
        return {"attempt": self.index, "seed": self.seed, "steps_done": self.result.steps_done,
                "kept_step": p.step if p else None, "forgotten": bool(p and p.forgotten),
                "drift": round(p.drift, 5) if p is not None and p.drift is not None else None}


def try_again(attempt: Attempt, config: UnlearnConfig) -> bool:
    """Another attempt is worth it: attempts are left, and this one is not forgotten or, with
    attempt_drift, moved the guard seeds more than that. Without a monitored state there is
    nothing to compare, so one attempt is all."""
    if attempt.index + 1 >= config.fix_attempts or attempt.kept is None:
        return False
    p = attempt.kept
    if not p.forgotten:
        return True
    if p.drift is None:  # no guard seeds: no drift to compare attempts by
        return False
    return config.attempt_drift is None or p.drift > config.attempt_drift


def best_attempt(attempts: list[Attempt]) -> Attempt:
    return min(attempts, key=Attempt.rank)
