"""The overlapped monitor (core/unlearn/overlap.py): renders beside the training, the same fix as inline."""

import csv

import pytest
import torch
from PIL import ImageOps
from safetensors.torch import load_file

import core.unlearn.overlap as overlap
import core.unlearn.threads as threads_mod
from core.adapters import FixManager
from core.generate import generate
from core.runs import RunStore
from core.unlearn.config import UnlearnConfig
from core.unlearn.run import FixRequest, unlearn
from core.unlearn.trainer import CancelledError, CancelToken

PROMPT = "ireland flag"


def _fix(model, tmp_path, name, overlapped, monkeypatch, **kw):
    """A fix that the monitor sees forgotten from its second check on: it settles (learning rate cut)
    then stops, so an overlapped run has to go back twice."""
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)  # overlap does not depend on the test machine
    flagged = generate(model, PROMPT, [1])[0].image
    request = FixRequest(PROMPT, flagged, ImageOps.mirror(flagged), seed=1)
    config = UnlearnConfig(**{**dict(steps=40, learning_rate=1e-2, remember_set_size=6, monitor_every=5,
                                     stop_when_fixed=True, settle_steps=10, settle_lr_scale=0.25, guard_seeds=1,
                                     overlap_monitor=overlapped), **kw})
    seen, shown = [], []
    fixes = FixManager(model)
    res = unlearn(model, fixes, RunStore(tmp_path / name), request, config,
                  on_step=lambda r: shown.append(r.step),
                  is_fixed=lambda img: len(seen) >= 2, on_monitor=lambda step, img: seen.append(step))
    with open(res.run.path / "loss_log.csv") as f:
        log = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    out = dict(lora=load_file(str(res.run.lora_path)), log=log, seen=seen, shown=shown,
               points=[p.to_dict() for p in res.monitor_points], metrics=res.run.metrics(), train=res.train)
    fixes.remove(res.run.run_id)
    return out


def test_an_overlapped_monitor_trains_and_publishes_the_same_fix_as_inline(tiny_model, tmp_path, monkeypatch,
                                                                          one_intra_op_thread):
    inline = _fix(tiny_model, tmp_path, "inline", False, monkeypatch)
    beside = _fix(tiny_model, tmp_path, "beside", True, monkeypatch)
    assert inline["metrics"]["monitor_overlapped"] is False and beside["metrics"]["monitor_overlapped"] is True
    assert inline["metrics"]["intra_op_threads"] == beside["metrics"]["intra_op_threads"] == 1
    # Forgotten at step 10: ten settle steps at a quarter of the rate, then the stop at 20.
    assert inline["seen"] == beside["seen"] == [5, 10, 15, 20]
    assert inline["train"].steps_done == beside["train"].steps_done == 20
    assert beside["train"].stopped_early and [r.step for r in beside["train"].reports] == list(range(1, 21))
    # The steps it trained past 10 and 20 before their verdicts came back are undone and never shown.
    assert inline["shown"] == beside["shown"] == list(range(1, 21))
    assert inline["log"] == beside["log"]
    assert inline["points"] == beside["points"]
    assert inline["metrics"]["kept_step"] == beside["metrics"]["kept_step"]
    assert inline["lora"].keys() == beside["lora"].keys()
    assert all(torch.equal(inline["lora"][k], beside["lora"][k]) for k in inline["lora"])


def test_a_stop_found_while_the_last_steps_train_goes_back_to_it(tiny_model, tmp_path, monkeypatch,
                                                                 one_intra_op_thread):
    """No settling: the check at step 10 stops the fix; the overlapped run learns it at step 12 (the
    last, which checks too) and goes back to 10."""
    runs = [_fix(tiny_model, tmp_path, name, ov, monkeypatch, steps=12, settle_steps=0)
            for name, ov in (("inline", False), ("beside", True))]
    assert [r["train"].steps_done for r in runs] == [10, 10]
    assert runs[0]["log"] == runs[1]["log"] and runs[0]["seen"] == runs[1]["seen"] == [5, 10]
    assert all(torch.equal(runs[0]["lora"][k], runs[1]["lora"][k]) for k in runs[0]["lora"])


def test_stop_pressed_while_an_overlapped_monitor_renders_keeps_nothing(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    flagged = generate(tiny_model, PROMPT, [1])[0].image
    fixes, store, cancel = FixManager(tiny_model), RunStore(tmp_path / "runs"), CancelToken()
    threads = torch.get_num_threads()
    with pytest.raises(CancelledError):
        unlearn(tiny_model, fixes, store, FixRequest(PROMPT, flagged, ImageOps.mirror(flagged), seed=1),
                UnlearnConfig(steps=40, remember_set_size=6, monitor_every=5, overlap_monitor=True), cancel=cancel,
                on_monitor=lambda step, img: cancel.cancel())
    assert not fixes.fixes and not store.list()
    assert torch.get_num_threads() == threads  # the monitor gave its intra-op threads back


def test_overlap_needs_a_cpu_with_two_cores_and_a_network_small_enough_to_copy(tiny_model, monkeypatch):
    on, off = UnlearnConfig(overlap_monitor=True), UnlearnConfig(overlap_monitor=False)
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    assert overlap.can_overlap(tiny_model, on) and not overlap.can_overlap(tiny_model, off)
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 1)
    assert not overlap.can_overlap(tiny_model, on)
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(overlap, "OVERLAP_MAX_PARAMETERS", 10)
    assert not overlap.can_overlap(tiny_model, on)


def test_the_monitors_copy_draws_like_the_model_and_leaves_it_alone(tiny_model):
    fixes = FixManager(tiny_model)
    params = fixes.create("fix", rank=4)
    with torch.no_grad():
        params[-1].add_(0.05)  # the fix does something
    copy = overlap.network_copy(tiny_model)
    assert copy.denoiser is not tiny_model.denoiser and copy.pipe.scheduler is not tiny_model.pipe.scheduler
    a = generate(tiny_model, PROMPT, [3])[0].image
    assert list(a.getdata()) == list(generate(copy, PROMPT, [3])[0].image.getdata())
    with torch.no_grad():
        dict(copy.denoiser.named_parameters())[next(n for n, p in tiny_model.denoiser.named_parameters()
                                                     if p is params[-1])].add_(1.0)
    assert list(a.getdata()) == list(generate(tiny_model, PROMPT, [3])[0].image.getdata())


def test_no_monitor_no_copy(tiny_model, tmp_path, monkeypatch):
    """monitor_every 0: nothing to render, so no copy of the network and no worker thread."""
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    made = []
    monkeypatch.setattr(overlap, "network_copy", lambda model: made.append(model) or model)
    flagged = generate(tiny_model, PROMPT, [1])[0].image
    res = unlearn(tiny_model, FixManager(tiny_model), RunStore(tmp_path / "runs"),
                  FixRequest(PROMPT, flagged, ImageOps.mirror(flagged), seed=1),
                  UnlearnConfig(steps=3, remember_set_size=4, monitor_every=0, overlap_monitor=True))
    assert not made and "monitor_overlapped" not in res.run.metrics()


def test_a_fix_on_top_of_an_earlier_one_is_the_same_overlapped(tiny_model, tmp_path, monkeypatch, one_intra_op_thread):
    """The copy carries the earlier fix as it acts (enabled, at its weight), and the remember set drawn from
    the base keeps that fix's pictures: the second fix matches inline value for value."""
    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    first = generate(tiny_model, PROMPT, [1])[0].image
    unlearn(tiny_model, fixes, store, FixRequest(PROMPT, first, ImageOps.mirror(first), seed=1),
            UnlearnConfig(steps=6, learning_rate=1e-2, remember_set_size=6, monitor_every=0))
    fixes.set_enabled(next(iter(fixes.fixes)), True, weight=0.8)
    second = generate(tiny_model, PROMPT, [2])[0].image
    out = []
    for overlapped in (False, True):
        seen = []
        res = unlearn(tiny_model, fixes, store, FixRequest(PROMPT, second, ImageOps.flip(second), seed=2),
                      UnlearnConfig(steps=20, learning_rate=1e-2, remember_set_size=6, monitor_every=4,
                                    stop_when_fixed=True, settle_steps=8, settle_lr_scale=0.5, guard_seeds=1,
                                    remember_from="base", remember_target="model", overlap_monitor=overlapped),
                      is_fixed=lambda img: len(seen) >= 2, on_monitor=lambda step, img: seen.append(step))
        out.append((load_file(str(res.run.lora_path)), res.run.metrics(), [p.to_dict() for p in res.monitor_points]))
        fixes.remove(res.run.run_id)
    (a, ma, pa), (b, mb, pb) = out
    assert ma["monitor_overlapped"] is False and mb["monitor_overlapped"] is True
    assert ma["remember_drawn_from"] == mb["remember_drawn_from"] == "base"
    assert pa == pb and ma["kept_step"] == mb["kept_step"] and ma["steps_done"] == mb["steps_done"] == 16
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_nan_in_a_step_past_the_stop_is_no_failure(tiny_model, tmp_path, monkeypatch, one_intra_op_thread):
    """The check at step 10 stops the fix; step 12 would diverge. Inline it never runs; overlapped it runs
    before the verdict is taken, and the fix still ends at 10, as inline."""
    from core.unlearn.methods import SurrogateMethod

    real_step, calls = SurrogateMethod.step, []

    def poisoned_at_12(self, batch):
        out = real_step(self, batch)
        calls.append(1)
        if len(calls) == 12:
            out.loss_f = float("nan")
        return out

    monkeypatch.setattr(SurrogateMethod, "step", poisoned_at_12)
    runs = []
    for name, ov in (("inline", False), ("beside", True)):
        calls.clear()
        runs.append(_fix(tiny_model, tmp_path, name, ov, monkeypatch, steps=40, settle_steps=0))
    assert [r["train"].steps_done for r in runs] == [10, 10] and runs[0]["log"] == runs[1]["log"]
    assert all(torch.equal(runs[0]["lora"][k], runs[1]["lora"][k]) for k in runs[0]["lora"])
