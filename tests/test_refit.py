"""A refit: one fix that forgets its own flagged seed and the instances of the fixes it replaces,
trained from the model without them (Studio.unlearn(replaces=...), FixRequest.also)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


@pytest.fixture
def ddpm_studio(ddpm_dir, tmp_path):
    from core.models import load_model
    from core.studio import Studio

    return Studio(load_model(str(ddpm_dir)), data_dir=tmp_path, restore=False, persist_state=False)


def _flagged(studio, seed):
    from core.generate import generate

    return generate(studio.model, "", [seed], steps=4)[0].image


def _config(studio, threshold):
    # A threshold just above 0 calls any changed render forgotten, 1.0 none: the outcome is fixed,
    # whatever this random model draws.
    return studio.default_config(steps=4, remember_set_size=4, sampling_steps=4, monitor_every=2, learning_rate=1e-2,
                                 forget_threshold=threshold, twin_seeds=0, settle_steps=0)


def test_each_forget_step_goes_round_every_instance_of_a_refit():
    from core.unlearn.config import UnlearnConfig
    from core.unlearn.objectives import Conditioning
    from core.unlearn.trainer import ForgetData, RememberData, _sample_batch

    x_f = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2).clone()
    cond = Conditioning(torch.zeros(1, 1, 1), torch.zeros(1, 1))
    forget = ForgetData(x_f, x_f + 10, cond, instances=3)
    remember = RememberData(torch.zeros(4, 1, 2, 2), Conditioning(torch.zeros(4, 1, 1), torch.zeros(4, 1)))
    cfg = UnlearnConfig(forget_batch_size=2, remember_batch_size=2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):  # forget_batch_size samples of each instance, as a fix of one would train
        b = _sample_batch(forget, remember, torch.linspace(0, 1, 10), cfg, gen, "cpu")
        assert sorted(b.x_f[:, 0, 0, 0].tolist()) == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
        assert torch.equal(b.x_s, b.x_f + 10)  # each instance keeps its own surrogate


def test_a_refit_replaces_the_fix_it_forgets_and_records_its_instance(ddpm_studio):
    studio = ddpm_studio
    f5, f6 = _flagged(studio, 5), _flagged(studio, 6)
    first = studio.unlearn("", f5, f5.transpose(0), 5, _config(studio, 1e-6), {"kind": "flip"}).run
    assert studio.fixes.fixes[first.run_id].enabled
    result = studio.unlearn("", f6, f6.transpose(0), 6, _config(studio, 1e-6), {"kind": "flip"},
                            replaces=[first.run_id])
    run = result.run
    record = json.loads((run.path / "config.json").read_text())
    assert record["seed"] == 6
    assert record["also_forget"] == [{"seed": 5, "flagged_image": "also_0_flagged.png",
                                      "surrogate_image": "also_0_surrogate.png", "surrogate": {"kind": "flip"}}]
    from core.images import load_image

    assert np.array_equal(np.asarray(load_image(run.path / "also_0_flagged.png")), np.asarray(f5))
    m = run.metrics()
    assert m["also_seeds"] == [5] and m["also_left"] == 0 and m["flagged_seed_fixed"] is True
    # The refit took over: the fix it replaces is off, the refit on.
    assert not studio.fixes.fixes[first.run_id].enabled and studio.fixes.fixes[run.run_id].enabled

    # Refitting the refit gathers both of its instances.
    with studio.fixes.disabled():  # as the refit draws it: without the fixes it replaces
        f7 = _flagged(studio, 7)
    again = studio.unlearn("", f7, f7.transpose(0), 7, _config(studio, 1e-6), {"kind": "flip"},
                           replaces=[run.run_id])
    assert [a["seed"] for a in json.loads((again.run.path / "config.json").read_text())["also_forget"]] == [6, 5]


def test_an_unfixed_refit_leaves_the_fixes_it_would_replace_as_they_were(ddpm_studio):
    studio = ddpm_studio
    f5, f6 = _flagged(studio, 5), _flagged(studio, 6)
    first = studio.unlearn("", f5, f5.transpose(0), 5, _config(studio, 1e-6), {"kind": "flip"}).run
    result = studio.unlearn("", f6, f6.transpose(0), 6, _config(studio, 1.0), {"kind": "flip"},
                            replaces=[first.run_id])
    assert result.run.metrics()["flagged_seed_fixed"] is False
    assert studio.fixes.fixes[first.run_id].enabled and not studio.fixes.fixes[result.run.run_id].enabled


def test_a_refit_refuses_an_unknown_fix_and_another_prompt(ddpm_studio, tiny_model_dir, tmp_path):
    studio = ddpm_studio
    f5 = _flagged(studio, 5)
    with pytest.raises(ValueError, match="replaces: no fix named 'nope' is loaded"):
        studio.unlearn("", f5, f5.transpose(0), 5, _config(studio, 1e-6), {"kind": "flip"}, replaces=["nope"])
    assert not list(studio.store.list())  # refused before any run folder

    from core.models import load_model
    from core.unlearn.run import FixRequest, unlearn
    from core.studio import Studio

    sd3 = Studio(load_model(str(tiny_model_dir)), data_dir=tmp_path / "sd3", restore=False, persist_state=False)
    img = sd3.generate("a flag", [1], steps=2)[0].image
    request = FixRequest("a flag", img, img.transpose(0), 1, also=[FixRequest("another flag", img, img.transpose(0), 2)])
    with pytest.raises(ValueError, match=r"FixRequest.also\[0\] has prompt 'another flag'"):
        unlearn(sd3.model, sd3.fixes, sd3.store, request, sd3.default_config(steps=1))
