"""The guard of a fix: it never ends worse than its best monitored state.

At each monitor step the runner re-renders the flagged seed (the judge scores forgetting) and, when
it is forgotten, a few remember seeds whose base images are known (how far they moved is the drift). The guard keeps a
copy of the LoRA weights at every monitored step (a fix's LoRA is small: ~100k values on the
embedded model, ~10M on SD3-medium) and, at the end, puts back the state to publish:

    the earliest monitored step that is forgotten with the least drift;
    else, with twin seeds (UnlearnConfig.twin_seeds), a step whose flagged seed is forgotten with the
    fewest twins still showing the picture;
    if none is forgotten, the step with the highest forgetting score (the fix is then reported
    unfixed, and the studio switches it off).

How many forgotten states there are to choose from is the trainer's: settle_steps past the first one,
ended early by settle_patience once the state `best()` names is that many steps old (and, with
twin_patience, a fix whose twins stay ends once its state with the fewest twins left is that old).

Why: measured on the flags world, a fix that runs past its forgotten point drifts back to the error
(bench/results/table1.md) and keeps moving other outputs; a fix that never forgets still moves them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass
class MonitorPoint:
    step: int
    forgotten: bool  # what the deciding oracle (the judge by default) says of the flagged seed
    score: float  # the judge's forgetting score of the flagged seed (0 = flagged, 1 = surrogate)
    # mean |re-render - base| of the guard's remember seeds (pixels 0..1); measured at forgotten
    # points only (None elsewhere): it decides only among them
    drift: float | None
    # twin seeds (config.twin_seeds) still drawing the flagged picture; None when not checked
    twins_left: int | None = None
    # the judge's second progress measure ('projection_centred', its bar forget_projection); None = not recorded
    projection: float | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class FixGuard:
    """Snapshots of the LoRA parameters per monitored step, and the choice of the one to publish."""

    def __init__(self, params: list[torch.nn.Parameter]):
        self.params = params
        self.points: list[MonitorPoint] = []
        self._snapshots: dict[int, list[torch.Tensor]] = {}

    def record(self, point: MonitorPoint, weights: list[torch.Tensor] | None = None) -> None:
        """`weights`: a copy of the LoRA weights `point` was rendered with, kept as given (the trainer's,
        which nothing writes to; the training may have moved on since: an overlapped monitor,
        core/unlearn/overlap.py); None = a copy of the parameters as they are now."""
        self.points.append(point)
        self._snapshots[point.step] = weights if weights is not None else [p.detach().clone() for p in self.params]

    def best(self) -> MonitorPoint | None:
        """The point to publish (module docstring); None before any monitor step."""
        if not self.points:
            return None
        forgotten = [p for p in self.points if p.forgotten]
        if forgotten:  # least drift, then earliest
            return min(forgotten, key=lambda p: (round(p.drift, 6), p.step))
        # The flagged seed forgotten but some twin seeds not (twins_left > 0): the fewest twins left,
        # then least drift. A fix that frees the flagged seed is not thrown away for its twins.
        partly = [p for p in self.points if p.twins_left is not None]
        if partly:
            return min(partly, key=lambda p: (p.twins_left, round(p.drift, 6), p.step))
        return max(self.points, key=lambda p: (p.score, -p.step))

    @torch.no_grad()
    def restore(self, point: MonitorPoint) -> None:
        """Put the LoRA weights of `point` back into the parameters."""
        for p, saved in zip(self.params, self._snapshots[point.step]):
            p.copy_(saved)
