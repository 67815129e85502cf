"""The studio's model picker and the seed-only flow of an unconditional model (page functions called
directly on a built page; the browser tests drive the served page)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gradio")


def _noop(*args, **kwargs):
    return None


def test_unconditional_model_hides_the_prompt_and_generates_by_seed(ddpm_dir, tmp_path):
    from core.models import load_model
    from core.studio import Studio
    from gui import generate_section
    from gui.app import build_app, header_text
    from gui.common import Session

    studio = Studio(load_model(str(ddpm_dir)), data_dir=tmp_path, restore=False, persist_state=False)
    demo = build_app(studio)
    assert demo.ui.prompt.visible is False and demo.ui.sde_prompt.visible is False
    assert demo.ui.cmp_prompt.visible is False
    assert "unconditional" in header_text(studio)
    session = Session()
    # A prompt left in the hidden box is ignored: the flow is seed-only.
    items, session, status, seeds = generate_section.generate(studio, session, "left over", 0, 3, "", 2, None, _noop)
    assert [c for _, c in items] == ["seed 0", "seed 1", "seed 2"] and seeds == "0-2"
    assert session.generation["prompt"] == "" and status.startswith("3 outputs, seeds")
    assert "prompt" not in status  # "a fix on this model is being prepared", when one is
    out = generate_section.flag_seed(studio, session, 1)
    assert out[0].flag().prompt == "" and out[0].flag().seed == 1
    assert np.array_equal(np.asarray(out[3]), np.asarray(items[1][0]))
    assert "seed **1**" in out[2] and "prompt" not in out[2] and "guidance" not in out[2]  # none to show
    # "Other seed": another output of the grid as the surrogate, with no prompt
    from gui import surrogate_section

    sur, _heat, text, session = surrogate_section.other_seed(studio, session, 2)
    assert np.array_equal(np.asarray(sur), np.asarray(items[2][0]))
    assert "other_seed" in text and "seed=2" in text and "prompt" not in text
    # "Suggest a seed" (unconditional models only): a seed of the survey's grid goes in the box, with why
    assert demo.ui.other_seed_suggest.visible is True
    seed, sur, _heat, text, session = surrogate_section.suggest_other_seed(studio, session)
    assert 5000 <= seed < 5128 and f"seed {seed}: the most ordinary of the" in text and f"seed={seed}" in text
    assert session.surrogates[session.flag().id]["info"]["suggested_from"] == "5000-5127"
    # The fix's status line for the active flag stays true after a surrogate is made, and names it once there
    ready = lambda out: next(o for o in out if isinstance(o, str) and o.startswith("Ready to fix"))  # noqa: E731
    assert "make its surrogate (3), then press Unlearn" in ready(out)
    again = generate_section.activate(studio, session, out[0].flag().id)
    assert "with its **other_seed** surrogate: press Unlearn" in ready(again)


def test_picker_switches_between_a_text_to_image_and_an_unconditional_model(tiny_model_dir, ddpm_dir, tmp_path):
    from core.models import load_model
    from core.models.loading import SHIPPED_NAMES
    from core.studio import Studio
    from gui import model_picker
    from gui.app import build_app

    studio = Studio(load_model(str(tiny_model_dir)), data_dir=tmp_path, restore=False, persist_state=False)
    demo = build_app(studio)
    assert demo.ui.prompt.visible is True and demo.ui.other_seed_suggest.visible is False
    assert list(demo.ui.model_pick.choices) == [(n, n) for n in SHIPPED_NAMES]
    session, gallery, *_ = model_picker.switch(studio, str(ddpm_dir), _noop)
    assert studio.unconditional and session.flags == [] and gallery == []
    widgets = dict(zip(["pick", "prompt", "steps", "guidance", "cmp_prompt", "cmp_other", "cmp_steps", "cmp_guidance",
                        "sde_prompt"], model_picker.model_widgets(studio)))
    assert widgets["prompt"]["visible"] is False and widgets["steps"]["value"] == studio.model.info.default_steps
    assert model_picker.model_widgets(studio)[-2]["visible"] is True  # "Suggest a seed"
    assert len(model_picker.model_widgets(studio)) == len(model_picker.model_outputs(demo.ui))
    assert "ireland" in demo.ui.fix_name.placeholder  # built on the text-to-image model
    assert "seed" in model_picker.model_widgets(studio)[-1]["placeholder"]  # the fix-name example: no prompt
    model_picker.switch(studio, str(tiny_model_dir), _noop)
    assert not studio.unconditional and model_picker.model_widgets(studio)[1]["visible"] is True
    assert "ireland" in model_picker.model_widgets(studio)[-1]["placeholder"]
    # A bad name keeps the loaded model and says why.
    import gradio as gr

    with pytest.raises(gr.Error):
        model_picker.switch(studio, str(tmp_path / "no-such-model"), _noop)
    assert not studio.unconditional
