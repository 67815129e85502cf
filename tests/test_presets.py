"""The paper and studio presets the benches show as separate row sets."""

import pytest

from core.unlearn.config import UnlearnConfig
from core.unlearn.presets import PAPER_OVERRIDES, apply_preset, parse_presets


def _studio_like() -> UnlearnConfig:
    return UnlearnConfig(remember_prompts=["ireland flag", "japan flag"], remember_set_size=110, flagged_prompt_share=0.4,
                         lookalike_prompts=["japan flag"], stop_when_fixed=True, steps=40, learning_rate=1e-3,
                         remember_target="model", remember_model_share=0.5)


def test_paper_preset_is_the_papers_remember_set_and_fixed_steps():
    cfg = apply_preset("paper", _studio_like())
    assert cfg.remember_prompts == [] and cfg.remember_set_size == 100 and cfg.flagged_prompt_share is None
    assert cfg.lookalike_prompts == [] and cfg.lookalike_share == 0.0 and cfg.remember_filter is False
    assert cfg.stop_when_fixed is False and cfg.steps == 100
    assert cfg.remember_target == "noise"  # the paper's remember loss regresses the sampled noise
    assert cfg.learning_rate == 1e-3  # the caller's lr is kept


def test_studio_preset_keeps_the_defaults_and_names_are_checked():
    cfg = _studio_like()
    assert apply_preset("studio", cfg) == cfg
    assert parse_presets("paper, studio") == ["paper", "studio"]
    with pytest.raises(ValueError, match="--preset 'papers'"):
        parse_presets("papers")
    with pytest.raises(ValueError, match="choose one of paper, studio"):
        apply_preset("fast", cfg)
    assert set(PAPER_OVERRIDES) <= set(UnlearnConfig.help())


def test_ablation_rows_use_the_papers_noise_levels_and_label_k_as_assumed():
    from bench.ablations import settings

    labels = [label for _, label, *_ in settings(False, "japan flag")]
    assert "noise sigma=0.2" in labels and "noise sigma=0.6" in labels and "noise 0.1" not in labels
    assert "timestep k=2 (assumed default)" in labels and not any("k=2 (paper)" in x for x in labels)


def test_paper_preset_applies_over_the_faces_defaults_that_settle_with_patience():
    # The faces world settles with patience under keep_best; the paper's fixed 100 steps turn both off.
    faces = UnlearnConfig(stop_when_fixed=True, settle_steps=60, settle_patience=10, settle_lr_scale=0.3)
    cfg = apply_preset("paper", faces)
    assert cfg.keep_best is False and cfg.stop_when_fixed is False and cfg.settle_patience == 10
