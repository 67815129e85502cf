"""A step's forget and remember passes at once (core/unlearn/passes.py): the same fix as one after the other."""

import csv

import pytest
import torch
from PIL import ImageOps
from safetensors.torch import load_file

import core.unlearn.threads as threads_mod
from core.adapters import FixManager
from core.generate import generate
from core.runs import RunStore
from core.unlearn.config import UnlearnConfig
from core.unlearn.passes import ParallelPasses, SequentialPasses, step_passes
from core.unlearn.run import FixRequest, unlearn

PROMPT = "ireland flag"


def _fix(model, tmp_path, name, parallel, monkeypatch, **kw):
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)  # not the test machine's count
    flagged = generate(model, PROMPT, [1])[0].image
    request = FixRequest(PROMPT, flagged, ImageOps.mirror(flagged), seed=1)
    config = UnlearnConfig(**{**dict(steps=8, learning_rate=1e-2, remember_set_size=6, monitor_every=0,
                                     remember_target="model", remember_model_share=0.5,
                                     parallel_passes=parallel), **kw})
    fixes = FixManager(model)
    res = unlearn(model, fixes, RunStore(tmp_path / name), request, config)
    with open(res.run.path / "loss_log.csv") as f:
        log = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    out = dict(lora=load_file(str(res.run.lora_path)), log=log, metrics=res.run.metrics())
    fixes.remove(res.run.run_id)
    return out


@pytest.mark.parametrize("method", ["surrogate", "erasediff"])
def test_parallel_passes_train_the_same_fix_as_one_after_the_other(tiny_model, tmp_path, monkeypatch,
                                                                   one_intra_op_thread, method):
    """The remember target (the model with this fix muted) is computed before the passes start, so
    neither pass sees the fix muted; a mutant that mutes during the passes changes the losses."""
    seq = _fix(tiny_model, tmp_path, "seq", False, monkeypatch, method=method)
    par = _fix(tiny_model, tmp_path, "par", True, monkeypatch, method=method)
    assert seq["metrics"]["parallel_passes"] is False and par["metrics"]["parallel_passes"] is True
    assert seq["metrics"]["intra_op_threads"] == par["metrics"]["intra_op_threads"] == 1
    assert len(seq["log"]) == 8 and seq["log"] == par["log"]
    assert seq["lora"].keys() == par["lora"].keys()
    assert all(torch.equal(seq["lora"][k], par["lora"][k]) for k in seq["lora"])
    assert torch.get_num_threads() == 1  # given back as it was


def test_step_passes_run_in_parallel_only_on_a_cpu_with_two_cores_when_asked(monkeypatch):
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    on, off = UnlearnConfig(parallel_passes=True), UnlearnConfig(parallel_passes=False)
    p = step_passes(torch.device("cpu"), on)
    try:
        assert isinstance(p, ParallelPasses)
    finally:
        p.close()
    assert isinstance(step_passes(torch.device("cpu"), off), SequentialPasses)
    assert isinstance(step_passes(torch.device("cuda"), on), SequentialPasses)
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 1)
    assert isinstance(step_passes(torch.device("cpu"), on), SequentialPasses)


def test_parallel_passes_halve_the_threads_while_they_live_and_raise_a_pass_error_in_the_caller():
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        p = ParallelPasses()
        assert torch.get_num_threads() == 2
        assert p.run(lambda: 1, lambda: 2) == (1, 2)

        def fails():
            raise FloatingPointError("forget pass")

        with pytest.raises(FloatingPointError, match="forget pass"):
            p.run(fails, lambda: 2)
        assert p.run(lambda: "a", lambda: "b") == ("a", "b")  # still usable after a failed step
        p.close()
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
