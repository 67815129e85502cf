"""twin_patience: a fix whose flagged seed is forgotten but whose twins stay stops once the state it
would publish has not been bettered for that many steps."""

from __future__ import annotations

import torch

from core.unlearn.config import UnlearnConfig
from core.unlearn.guard import FixGuard, MonitorPoint
from core.unlearn.trainer import _twins_stalled


def _guard(points) -> FixGuard:
    g = FixGuard([torch.nn.Parameter(torch.zeros(1))])
    for p in points:
        g.record(p)
    return g


def test_stalled_only_when_the_twins_state_to_publish_is_old_enough():
    cfg = UnlearnConfig(twin_seeds=4, twin_patience=10)
    partly = [MonitorPoint(70, False, 0.6, 0.01, 1), MonitorPoint(72, False, 0.6, 0.02, 2)]
    assert not _twins_stalled(_guard(partly), 78, cfg)  # the best (step 70) is 8 steps old
    assert _twins_stalled(_guard(partly), 80, cfg)
    better = partly + [MonitorPoint(78, False, 0.6, 0.005, 1)]  # as few twins left, less drift: the new best
    assert not _twins_stalled(_guard(better), 80, cfg)
    assert not _twins_stalled(_guard(partly), 80, cfg.with_overrides(twin_patience=0))  # off
    never = [MonitorPoint(70, False, 0.4, None, None), MonitorPoint(90, False, 0.45, None, None)]
    assert not _twins_stalled(_guard(never), 200, cfg)  # the flagged seed never forgotten: no twins checked
    done = partly + [MonitorPoint(90, True, 0.7, 0.01, 0)]
    assert not _twins_stalled(_guard(done), 200, cfg)  # forgotten with its twins: settle_* decide instead
