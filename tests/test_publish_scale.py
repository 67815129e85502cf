"""scale_floor: a fix is published at the smallest scale of its LoRA at which it still forgets."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_scales_tried_run_from_the_floor_up_below_one():
    from core.unlearn.run import _scales

    assert _scales(0.5) == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert _scales(1.0) == [] and _scales(0.05)[0] == pytest.approx(0.1) and len(_scales(0.05)) == 9


def test_scale_floor_needs_keep_best():
    from core.unlearn.config import UnlearnConfig

    with pytest.raises(ValueError, match="UnlearnConfig.scale_floor=0.5: set keep_best true"):
        UnlearnConfig(scale_floor=0.5, keep_best=False)


def test_a_fix_is_published_at_the_smallest_scale_that_still_forgets(ddpm_dir, tmp_path):
    from core.generate import generate
    from core.judge import ForgettingJudge
    from core.models import load_model
    from core.studio import Studio

    studio = Studio(load_model(str(ddpm_dir)), data_dir=tmp_path, restore=False, persist_state=False)
    flagged = generate(studio.model, "", [5], steps=4)[0].image
    surrogate = flagged.transpose(0)
    cfg = studio.default_config(steps=6, remember_set_size=4, sampling_steps=4, monitor_every=2, learning_rate=3e-2,
                                forget_threshold=0.3, twin_seeds=0, settle_steps=0, scale_floor=0.1)
    run = studio.unlearn("", flagged, surrogate, 5, cfg, {"kind": "flip"}).run
    m = run.metrics()
    scale = m["published_scale"]
    assert 0.1 < scale < 1.0 and m["flagged_seed_fixed"] is True  # this random model: a scale in between
    judge = ForgettingJudge.for_model(studio.model, flagged, surrogate, 0.3)

    def forgotten(weight):
        studio.fixes.set_enabled(run.run_id, True, weight=weight)
        return judge.judge_flagged_seed(generate(studio.model, "", [5], steps=4)[0].image).forgotten

    assert forgotten(1.0)  # the saved LoRA holds the published scale, and it forgets
    assert not forgotten((scale - 0.1) / scale)  # one step smaller would not
