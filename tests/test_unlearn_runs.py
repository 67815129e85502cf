"""A fix from start to finish on a tiny model: it learns, it is reproducible, and failures leave nothing."""

import contextlib
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import ImageOps

from core.adapters import FixManager
from core.compare import mean_abs_diff
from core.generate import encode, generate, generate_many
from core.images import ImageInputError
from core.runs import RunStore
from core.unlearn import objectives as obj
from core.unlearn.config import UnlearnConfig
from core.unlearn.methods import SurrogateMethod
from core.unlearn.remember import remember_quotas
from core.unlearn.run import FixRequest, build_remember_set, encode_prompts, unlearn
from core.unlearn.trainer import CancelledError, CancelToken, DivergedError

PROMPT = "ireland flag"


def _cfg(**kw):
    base = dict(steps=12, learning_rate=1e-2, remember_set_size=6, forget_batch_size=4, remember_batch_size=4,
                monitor_every=0)
    base.update(kw)
    return UnlearnConfig(**base)


def _request(model, seed=1):
    flagged = generate(model, PROMPT, [seed])[0].image
    return FixRequest(PROMPT, flagged, ImageOps.mirror(flagged), seed=seed)


@torch.no_grad()
def _forget_loss(model, request) -> float:
    """The forget loss on a fixed batch of noise levels and noises (deterministic)."""
    x_f, x_s = encode(model, [request.flagged]), encode(model, [request.surrogate])
    g = torch.Generator().manual_seed(123)
    s = torch.tensor([0.2, 0.4, 0.6, 0.8])
    eps = torch.randn((4, *x_f.shape[1:]), generator=g)
    x_t = obj.noisy(x_f.expand(4, -1, -1, -1), eps, s)
    cond = encode_prompts(model, [PROMPT]).repeat(4)
    v = obj.velocity(model.pipe.transformer, x_t, s, cond)
    return float(obj.per_sample_mse(v, obj.surrogate_target(x_t, x_s.expand(4, -1, -1, -1), s)).mean())


def _folder_digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def test_a_short_run_lowers_the_forget_loss_and_writes_a_complete_run(tiny_model, tmp_path):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    req = _request(tiny_model)
    before = _forget_loss(tiny_model, req)
    res = unlearn(tiny_model, fixes, store, req, _cfg(steps=30, learning_rate=5e-2))
    after = _forget_loss(tiny_model, req)
    # The random 1-layer test model's attention LoRA can only remove a few percent of this loss in
    # 30 steps (measured: 2.22 -> 2.14); the loss is deterministic, so any drop is the training's.
    assert after < 0.98 * before, (before, after)
    files = {p.name for p in res.run.path.iterdir()}
    assert {"config.json", "pytorch_lora_weights.safetensors", "loss_log.csv", "metrics.json",
            "flagged.png", "surrogate.png", "before.png", "after.png"} <= files
    cfg = json.loads((res.run.path / "config.json").read_text())
    assert cfg["seed"] == 1 and cfg["config"]["steps"] == 30 and cfg["model"]["base_fingerprint"] == tiny_model.fingerprint()
    assert {"torch", "diffusers", "peft"} <= set(cfg["versions"])
    assert all(s != 1 for _, s in cfg["remember_seeds"])
    header = (res.run.path / "loss_log.csv").read_text().splitlines()[0]
    assert header.startswith("step,L_f,L_r,lambda,cos_fr,projected")
    assert len((res.run.path / "loss_log.csv").read_text().splitlines()) == 31


def test_same_config_and_seed_reproduce_the_same_fix(tiny_model, tmp_path):
    from safetensors.torch import load_file

    req = _request(tiny_model)
    weights = []
    for i in range(2):
        fixes = FixManager(tiny_model)
        res = unlearn(tiny_model, fixes, RunStore(tmp_path / f"r{i}"), req, _cfg(seed=7))
        weights.append(load_file(str(res.run.lora_path)))
        fixes.remove(res.run.run_id)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_remember_target_model_anchors_on_the_model_before_this_fix_with_earlier_fixes_on(tiny_model, tmp_path):
    """The reference is this fix muted, the earlier fix acting: the first step's remember loss is 0
    (the new LoRA starts at zero), later ones are not, and the fix ends enabled as usual."""
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    earlier = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=2), _cfg())
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(remember_target="model"))
    rows = [line.split(",") for line in (res.run.path / "loss_log.csv").read_text().splitlines()[1:]]
    L_r = [float(r[2]) for r in rows]
    assert L_r[0] == 0.0 and max(L_r[1:]) > 0
    assert [f.name for f in fixes.active] == [earlier.run.run_id, res.run.run_id]
    assert json.loads((res.run.path / "config.json").read_text())["config"]["remember_target"] == "model"
    # Drawn from the base (remember_from "base"), the set is anchored on the base too: the earlier fix's
    # drift is in the first step's remember loss, where the model before this fix would have held it.
    base = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=3),
                   _cfg(remember_target="model", remember_from="base", remember_filter=False))
    rows = [line.split(",") for line in (base.run.path / "loss_log.csv").read_text().splitlines()[1:]]
    assert float(rows[0][2]) > 0


def _assert_nothing_left(model, fixes, store, base_images, earlier=None):
    assert [r.run_id for r in store.list()] == ([earlier] if earlier else [])
    assert not list(store.root.glob(".partial-*"))
    assert set(fixes.fixes) == ({earlier} if earlier else set())
    with fixes.disabled():
        now = [np.asarray(g.image) for g in generate(model, PROMPT, [0, 1])]
    assert all(np.array_equal(a, b) for a, b in zip(base_images, now))


def test_cancel_and_nan_leave_no_fix_and_keep_base_and_earlier_fixes(tiny_model, tmp_path, monkeypatch):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    base = [np.asarray(g.image) for g in generate(tiny_model, PROMPT, [0, 1])]
    earlier = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=2), _cfg(steps=4))
    earlier_digest = _folder_digest(earlier.run.path)
    with_earlier = [np.asarray(g.image) for g in generate(tiny_model, PROMPT, [0, 1])]

    token = CancelToken()
    with pytest.raises(CancelledError):
        unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(steps=50),
                on_step=lambda r: token.cancel() if r.step == 3 else None, cancel=token)
    _assert_nothing_left(tiny_model, fixes, store, base, earlier.run.run_id)

    real_step = SurrogateMethod.step

    def poisoned(self, batch):
        out = real_step(self, batch)
        out.loss_f = float("nan")
        return out

    monkeypatch.setattr(SurrogateMethod, "step", poisoned)
    with pytest.raises(DivergedError, match="non-finite"):
        unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg())
    _assert_nothing_left(tiny_model, fixes, store, base, earlier.run.run_id)
    assert _folder_digest(earlier.run.path) == earlier_digest
    assert all(np.array_equal(a, np.asarray(g.image)) for a, g in zip(with_earlier, generate(tiny_model, PROMPT, [0, 1])))


def test_identical_surrogate_and_wrong_shapes_are_refused_before_any_work(tiny_model, tmp_path):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    req = _request(tiny_model)
    with pytest.raises(ImageInputError, match="identical"):
        unlearn(tiny_model, fixes, store, FixRequest(PROMPT, req.flagged, req.flagged.copy(), 1), _cfg())
    with pytest.raises(ImageInputError, match="square"):
        unlearn(tiny_model, fixes, store, FixRequest(PROMPT, req.flagged, req.surrogate.resize((16, 12)), 1), _cfg())
    assert not fixes.fixes and not store.list()


def test_monitor_stops_when_fixed(tiny_model, tmp_path):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    seen = []
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(steps=40, monitor_every=5, stop_when_fixed=True),
                  is_fixed=lambda img: len(seen) >= 2, on_monitor=lambda step, img: seen.append(step))
    assert seen == [5, 10] and res.train.stopped_early and res.train.steps_done == 10
    assert res.run.metrics()["steps_done"] == 10


def test_settle_steps_train_on_after_the_first_fixed_monitor_step_and_keep_the_least_drift(tiny_model, tmp_path,
                                                                                          monkeypatch):
    """With settle_steps the fix goes on past its first forgotten state, still monitored, and the guard
    publishes the forgotten state that moved the guard seeds least, not simply the first."""
    import core.unlearn.run as run_mod

    drifts = iter([0.5, 0.2, 0.3])  # at steps 10, 15, 20: the middle one moved the others least
    monkeypatch.setattr(run_mod, "_drift", lambda base, renders: next(drifts))
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    seen = []
    res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                  _cfg(steps=40, monitor_every=5, stop_when_fixed=True, settle_steps=10, guard_seeds=1),
                  is_fixed=lambda img: len(seen) >= 2, on_monitor=lambda step, img: seen.append(step))
    assert seen == [5, 10, 15, 20] and res.train.stopped_early and res.train.steps_done == 20
    assert res.run.metrics()["kept_step"] == 15


def test_settle_patience_stops_settling_once_the_least_drift_state_is_that_old(tiny_model, tmp_path, monkeypatch):
    """settle_steps 100 would run to step 110; with patience 10 the fix stops at step 25, ten steps
    after the state it publishes (step 15), and a later better state would have kept it going."""
    import core.unlearn.run as run_mod

    drifts = iter([0.5, 0.2, 0.3, 0.4, 0.1])  # steps 10, 15, 20, 25, (30: never reached)
    monkeypatch.setattr(run_mod, "_drift", lambda base, renders: next(drifts))
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    seen = []
    res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                  _cfg(steps=200, monitor_every=5, stop_when_fixed=True, settle_steps=100, settle_patience=10,
                       guard_seeds=1),
                  is_fixed=lambda img: len(seen) >= 2, on_monitor=lambda step, img: seen.append(step))
    assert seen == [5, 10, 15, 20, 25] and res.train.steps_done == 25
    assert res.run.metrics()["kept_step"] == 15


def test_settle_lr_scale_trains_the_settle_steps_at_the_smaller_rate(tiny_model, tmp_path, monkeypatch):
    """Steps 1-10 (until the monitor first sees the flagged seed forgotten) at learning_rate, the ten
    settle steps after at learning_rate * settle_lr_scale."""
    rates = []
    real_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step",
                        lambda self, *a, **k: rates.append(self.param_groups[0]["lr"]) or real_step(self, *a, **k))
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    seen = []
    res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                  # inline: an overlapped monitor's steps past a verdict are undone, but AdamW ran them
                  _cfg(steps=40, monitor_every=5, stop_when_fixed=True, settle_steps=10, settle_lr_scale=0.25,
                       overlap_monitor=False),
                  is_fixed=lambda img: len(seen) >= 2, on_monitor=lambda step, img: seen.append(step))
    assert res.train.steps_done == 20
    assert rates == pytest.approx([1e-2] * 10 + [2.5e-3] * 10)


def test_stop_pressed_during_the_monitor_wins_over_stop_when_fixed(tiny_model, tmp_path):
    """A Stop that lands while the monitor renders (which then reports "fixed") must end the run as
    cancelled: nothing saved, nothing switched on (seen in the GUI: Stop at step 7, saved at 10)."""
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    token = CancelToken()
    calls = []

    def is_fixed(img):
        calls.append(len(calls))
        if len(calls) == 1:  # the render before training: not fixed yet
            return False
        token.cancel()  # the person presses Stop while the step-5 monitor render runs
        return True

    with pytest.raises(CancelledError, match="at step 5 of 40"):
        # inline, so the step is 5 (overlapped: tests/test_overlap.py)
        unlearn(tiny_model, fixes, store, _request(tiny_model),
                _cfg(steps=40, monitor_every=5, stop_when_fixed=True, overlap_monitor=False),
                is_fixed=is_fixed, cancel=token)
    assert len(calls) == 2
    assert not fixes.fixes and not store.list() and not list(store.root.glob(".partial-*"))


def test_stop_pressed_during_the_last_step_saves_nothing(tiny_model, tmp_path):
    """Stop on the last step: the loop ends normally, but the run is not published."""
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    token = CancelToken()
    with pytest.raises(CancelledError, match="before saving"):
        unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(steps=4),
                on_step=lambda r: token.cancel() if r.step == 4 else None, cancel=token)
    assert not fixes.fixes and not store.list() and not list(store.root.glob(".partial-*"))


@pytest.mark.parametrize("method", ["neggrad", "erasediff", "siss"])
def test_baselines_run_in_the_same_engine(tiny_model, tmp_path, method):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(method=method, steps=5))
    assert res.train.steps_done == 5 and all(np.isfinite([r.L_f, r.L_r]).all() for r in res.train.reports)
    assert res.run.config["config"]["method"] == method


def test_remember_set_skips_flagged_seeds_and_filtered_outputs(tiny_model):
    cfg = _cfg(remember_set_size=5, remember_seed_start=10)
    calls = []

    def keep(prompt, image):
        calls.append(prompt)
        return len(calls) % 2 == 1  # drop every second candidate

    data, kept, dropped = build_remember_set(tiny_model, [PROMPT], cfg, {11}, keep)
    seeds = [s for _, s in kept]
    assert len(seeds) == 5 and 11 not in seeds and len(dropped) >= 4
    assert data.latents.shape[0] == 5 and data.cond.pooled.shape[0] == 5


def test_flagged_prompt_share_sets_how_much_of_the_remember_set_comes_from_the_flagged_prompt(tiny_model):
    other = "japan flag"
    assert remember_quotas([PROMPT, other], _cfg(remember_set_size=10)) == {PROMPT: 5, other: 5}
    cfg = _cfg(remember_set_size=10, flagged_prompt_share=0.8)
    assert remember_quotas([PROMPT, other], cfg) == {PROMPT: 8, other: 2}
    data, kept, _ = build_remember_set(tiny_model, [PROMPT, other], cfg, {100_001})
    assert [p for p, _ in kept].count(PROMPT) == 8 and [p for p, _ in kept].count(other) == 2
    assert all(seed != 100_001 for _, seed in kept)  # an excluded seed is skipped for every prompt
    with pytest.raises(ValueError, match="flagged_prompt_share"):
        _cfg(flagged_prompt_share=0.0)


def test_remember_quotas_add_up_to_the_size_asked_for():
    prompts = [f"p{k}" for k in range(22)]
    for size in (1, 10, 25, 50, 110, 111):
        for share in (None, 0.2):
            q = remember_quotas(prompts, _cfg(remember_set_size=size, flagged_prompt_share=share))
            assert sum(q.values()) == size and list(q) == prompts
    q = remember_quotas(prompts, _cfg(remember_set_size=10))
    assert q["p0"] == 1 and sum(v == 1 for v in q.values()) == 10  # the flagged prompt always gets one
    q = remember_quotas(prompts, _cfg(remember_set_size=130, flagged_prompt_share=0.2))
    assert q["p0"] == 26 and sorted(set(list(q.values())[1:])) == [4, 5]


def test_lookalike_prompts_get_their_share_of_the_remember_set():
    prompts = [f"p{k}" for k in range(22)]
    q = remember_quotas(prompts, _cfg(remember_set_size=110, lookalike_prompts=["p1"], lookalike_share=0.4))
    assert list(q) == prompts and sum(q.values()) == 110
    assert q["p1"] == 44 and sorted(set(q[p] for p in prompts if p != "p1")) == [3, 4]  # 66 over 21 others
    two = remember_quotas(prompts, _cfg(remember_set_size=110, lookalike_prompts=["p1", "p5", "not-a-prompt"],
                                        lookalike_share=0.4, flagged_prompt_share=0.2))
    assert two["p1"] == two["p5"] == 22 and two["p0"] == 13 and sum(two.values()) == 110
    # The flagged prompt itself is never a look-alike, and share 0 or no list leaves the split as it was.
    assert remember_quotas(prompts, _cfg(remember_set_size=110, lookalike_prompts=["p0"])) == \
        remember_quotas(prompts, _cfg(remember_set_size=110))
    assert remember_quotas(prompts, _cfg(remember_set_size=110, lookalike_prompts=["p1"], lookalike_share=0.0)) == \
        remember_quotas(prompts, _cfg(remember_set_size=110))
    with pytest.raises(ValueError, match="lookalike_share"):
        _cfg(lookalike_share=1.0).validate()


def test_cancel_during_remember_set_build_stops_before_training(tiny_model, tmp_path):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError, match="remember set"):
        unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(remember_set_size=40), cancel=token)
    assert not fixes.fixes and not store.list() and not list(store.root.glob(".partial-*"))


def test_remember_cache_reuses_a_set_only_for_the_same_model_state(tiny_model, tmp_path):
    from core.unlearn.remember import RememberCache

    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    cache = RememberCache(max_entries=2)
    cfg = _cfg(remember_set_size=4, remember_filter=False)  # no judge filter: the set is the plain one cached
    first = cache.get_or_build(tiny_model, fixes, [PROMPT], cfg, {1})
    again = cache.get_or_build(tiny_model, fixes, [PROMPT], cfg, {1})
    assert again[0] is first[0] and (cache.hits, cache.misses) == (1, 1)
    # Another excluded seed, another size: rebuilt.
    cache.get_or_build(tiny_model, fixes, [PROMPT], cfg, {2})
    assert cache.misses == 2
    # A fix changes the model the set is drawn from: the cached set must not be reused.
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), cfg, remember_cache=cache)
    # The fix of seed 1 on the base state needed exactly the set built first.
    assert (cache.hits, cache.misses) == (2, 2) and res.remember_seeds == first[1]
    after_fix = cache.get_or_build(tiny_model, fixes, [PROMPT], cfg, {1})
    assert cache.misses == 3 and not torch.equal(after_fix[0].latents, first[0].latents)
    fixes.remove(res.run.run_id)
    # A keep rule without a key is unknown: never cached.
    misses = cache.misses
    cache.get_or_build(tiny_model, fixes, [PROMPT], cfg, {1}, keep=lambda p, im: True)
    assert cache.misses == misses and len(cache._sets) <= 2


def test_studio_runs_one_model_job_at_a_time(tiny_model, tmp_path):
    import threading
    import time

    from core.studio import Studio

    studio = Studio(tiny_model, tmp_path / "data", restore=False, persist_state=False)
    req = _request(tiny_model)
    training = threading.Event()
    events = []

    def on_step(report):
        training.set()
        time.sleep(0.02)
        events.append(("step", report.step))

    worker = threading.Thread(target=studio.unlearn, args=(PROMPT, req.flagged, req.surrogate, req.seed,
                                                           _cfg(steps=8)), kwargs={"on_step": on_step})
    worker.start()
    assert training.wait(60)
    studio.generate(PROMPT, [3], save=False)
    events.append(("generate", None))
    worker.join(60)
    # The render waited for the fix: it comes after every training step, not between them.
    assert events[-1] == ("generate", None) and [e for e in events if e[0] == "step"][-1][1] == 8


def test_moved_most_ranks_other_outputs_by_change_and_labels_are_kept(tiny_model, tmp_path):
    """What else moved: same seeds with the fix off and on, the largest changes first; a fix's name
    and note live next to its run and are checked."""
    from core.compare import mean_abs_diff, moved_most

    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(steps=6))
    moved = moved_most(tiny_model, fixes, [res.run.run_id], ["japan flag", PROMPT], [0, 2, 3], top=4)
    assert len(moved) == 4 and [m.change for m in moved] == sorted((m.change for m in moved), reverse=True)
    assert all(m.verdict_before is None for m in moved)  # no checker on a random model
    top = moved[0]
    assert top.change == pytest.approx(mean_abs_diff(top.before, top.after), abs=1e-5) and top.change > 0
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        moved_most(tiny_model, fixes, [res.run.run_id], ["japan flag"], [0], cancel=token)

    assert res.run.label() == {"name": res.run.run_id, "note": ""}
    assert store.set_label(res.run.run_id, " ireland: no orange ", "flip") == {"name": "ireland: no orange",
                                                                            "note": "flip"}
    assert store.get(res.run.run_id).label()["name"] == "ireland: no orange"
    with pytest.raises(ValueError, match="fix name"):
        store.set_label(res.run.run_id, "x" * 81)


def test_copy_oracle_stops_once_the_render_is_no_longer_a_near_copy(tiny_model, tmp_path, monkeypatch):
    """oracle="copy": forgotten = the judge's descriptor no longer sees a near copy of the flagged
    image (no progress toward the surrogate asked), the bar benches use for methods without one."""
    from core.judge import ForgettingJudge

    still_a_copy = {"now": True}
    monkeypatch.setattr(ForgettingJudge, "shows_error", lambda self, imgs: [still_a_copy["now"]] * len(imgs))

    def on_monitor(step, img):
        if step == 10:
            still_a_copy["now"] = False

    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                  _cfg(steps=40, monitor_every=5, stop_when_fixed=True, oracle="copy", remember_filter=False),
                  on_monitor=on_monitor)
    m = res.run.metrics()
    assert res.train.steps_done == 10 and m["oracle"] == "copy" and m["flagged_seed_fixed"] is True
    assert [p["forgotten"] for p in m["monitor"]] == [False, True]


def test_mode_guard_learns_the_pictures_the_model_repeats_from_its_remember_set(tiny_model, tmp_path, monkeypatch):
    """mode_guard: the judge is shown the remember set's own outputs (decoded) before training, and
    every verdict on the flagged seed then carries its similarity to the pictures the model repeats."""
    from core.judge import ForgettingJudge

    shown = []
    real = ForgettingJudge.with_modes
    monkeypatch.setattr(ForgettingJudge, "with_modes", lambda self, outs: shown.append(list(outs)) or real(self, outs))
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    m = unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(mode_guard=True, remember_filter=False)).run.metrics()
    assert len(shown) == 1 and len(shown[0]) == 6 and shown[0][0].size == _request(tiny_model).flagged.size
    assert isinstance(m["repeated_pictures"], int) and 0 <= m["repeated_pictures"] <= 6
    assert m["forgetting"]["mode_similarity"] is not None and m["forgetting"]["mode_threshold"] > 0
    off = unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(remember_filter=False)).run.metrics()
    assert len(shown) == 1 and "repeated_pictures" not in off and off["forgetting"]["mode_similarity"] is None


def test_guard_seeds_are_redrawn_only_at_forgotten_monitor_steps_and_their_base_is_the_remember_set(
        tiny_model, tmp_path, monkeypatch):
    """The guard's drift decides only among forgotten states, so a monitor step that is not forgotten
    draws the flagged seed alone; the guard seeds' base images are the remember set's own latents
    (same seeds and settings), decoded, not drawn again; the published state's drift is measured."""
    import core.unlearn.run as run_mod

    from core.judge import FlaggedSeedVerdict

    forgotten_from, monitored, calls = {"step": 10}, [], []
    real = run_mod.generate_many
    monkeypatch.setattr(run_mod, "generate_many", lambda m, reqs, *a, **k: calls.append(len(reqs)) or real(m, reqs, *a, **k))

    def verdict(self, img):  # forgotten from a given monitor step on
        now = bool(monitored) and monitored[-1] >= forgotten_from["step"]
        return FlaggedSeedVerdict(0.9 if now else 0.1, 0.7, now, 0, 0, 0, 0.5, 0.5, "test")

    monkeypatch.setattr(run_mod.ForgettingJudge, "judge_flagged_seed", verdict)
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                  _cfg(steps=20, monitor_every=5, stop_when_fixed=False, guard_seeds=3, remember_filter=False),
                  on_monitor=lambda step, img: monitored.append(step))
    m = res.run.metrics()
    assert [p["forgotten"] for p in m["monitor"]] == [False, True, True, True]
    assert [p["drift"] is None for p in m["monitor"]] == [True, False, False, False]
    assert calls == [3, 3, 3], "guard seeds drawn at the 3 forgotten steps only; their base was decoded"
    assert m["kept_step"] in (10, 15, 20) and m["remember_drift"] == min(p["drift"] for p in m["monitor"][1:])

    # the decoded base equals the guard seeds drawn afresh at the monitor's settings (before any fix)
    fixes.remove(res.run.run_id)
    rs = build_remember_set(tiny_model, [PROMPT], _cfg(remember_set_size=3), {1})
    drawn = [g.image for g in generate_many(tiny_model, rs.kept, None, None, batch_size=3)]
    decoded = run_mod._guard_base(tiny_model, rs.data, [0, 1, 2], rs.kept, _cfg())
    assert max(mean_abs_diff(a, b) for a, b in zip(drawn, decoded)) < 2 / 255

    # never forgotten: no guard draws while training; the published state's drift is measured at the end
    calls.clear()
    forgotten_from["step"] = 10_000
    monitored.clear()
    res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                  _cfg(steps=10, monitor_every=5, stop_when_fixed=False, guard_seeds=3, remember_filter=False),
                  on_monitor=lambda step, img: monitored.append(step))
    m = res.run.metrics()
    assert calls == [4] and m["remember_drift"] is not None and m["remember_drift"] >= 0


def test_twin_seeds_hold_the_fix_until_the_other_seeds_that_drew_the_flagged_picture_stop(tiny_model, tmp_path,
                                                                                           monkeypatch):
    """A memorised picture is reached from many seeds: with twin_seeds, the remember filter's left-outs
    are re-drawn at forgotten monitor steps and judged like the flagged seed, and the fix is forgotten
    only once none of them still shows the picture."""
    import itertools

    import core.unlearn.run as run_mod
    from core.judge import FlaggedSeedVerdict

    monitored, judged = [], []  # judged: (monitor step, k-th verdict at that step); k = 0 is the flagged seed

    def verdict(self, img):  # the flagged seed is forgotten from monitor step 10 on, its twins from step 15
        step = monitored[-1] if monitored else 0
        k = sum(1 for s, _ in judged if s == step)
        judged.append((step, k))
        now = step >= (10 if k == 0 else 15)
        return FlaggedSeedVerdict(0.9 if now else 0.1, 0.7, now, 0, 0, 0, 0.5, 0.5, "test")

    monkeypatch.setattr(run_mod.ForgettingJudge, "judge_flagged_seed", verdict)
    dropped = itertools.count()

    def run(twin_seeds):
        monitored.clear()
        judged.clear()
        keep = lambda p, img: next(dropped) % 3 != 0  # noqa: E731 - leaves every third candidate out
        fixes, store = FixManager(tiny_model), RunStore(tmp_path / f"runs{twin_seeds}")
        res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                      _cfg(steps=30, monitor_every=5, stop_when_fixed=True, guard_seeds=1, twin_seeds=twin_seeds),
                      keep_in_remember=keep, on_monitor=lambda step, img: monitored.append(step))
        return res, res.run.metrics()

    res, m = run(2)
    assert len(res.excluded_seeds) >= 2 and m["twin_seeds"] == [s for _, s in res.excluded_seeds[:2]]
    assert [(p["step"], p["forgotten"], p["twins_left"]) for p in m["monitor"]] == [
        (5, False, None), (10, False, 2), (15, True, 0)]
    assert [k for s, k in judged if s in (10, 15)][:6] == [0, 1, 2, 0, 1, 2]  # flagged, then its 2 twins
    assert res.train.steps_done == 15 and m["twins_left"] == 0

    res, m = run(0)  # the flagged seed alone decides: it stops at step 10
    assert res.train.steps_done == 10 and "twin_seeds" not in m


def test_twin_forget_trains_on_the_twin_seeds_toward_each_twin_plus_the_users_edit(tiny_model, tmp_path, monkeypatch):
    """With twin_forget the forget data gains one row per twin seed: the twin as the model draws it,
    and as its target the twin plus the user's edit (surrogate - flagged). Without it, one row."""
    import itertools

    import core.unlearn.run as run_mod

    seen = []
    real_train = run_mod.train
    monkeypatch.setattr(run_mod, "train", lambda *a, **k: (seen.append(a[3]), real_train(*a, **k))[1])
    dropped = itertools.count()
    request = _request(tiny_model)

    def run(**kw):
        keep = lambda p, img: next(dropped) % 3 != 0  # noqa: E731 - leaves every third candidate out
        fixes, store = FixManager(tiny_model), RunStore(tmp_path / f"runs{len(seen)}")
        return unlearn(tiny_model, fixes, store, request, _cfg(steps=4, twin_seeds=2, **kw),
                       keep_in_remember=keep), fixes

    res, fixes = run(twin_forget=True)
    forget = seen[-1]
    twins = res.run.metrics()["twin_seeds"]
    assert forget.x_f.shape[0] == 3 and forget.x_s.shape == forget.x_f.shape
    x_f, x_s = encode(tiny_model, [request.flagged]), encode(tiny_model, [request.surrogate])
    assert torch.equal(forget.x_f[:1], x_f) and torch.equal(forget.x_s[:1], x_s)
    with fixes.disabled():  # the twins as the model drew them before the fix
        drawn = generate_many(tiny_model, [(PROMPT, s) for s in twins], batch_size=2)
    x_twins = encode(tiny_model, [g.image for g in drawn])
    assert torch.allclose(forget.x_f[1:], x_twins, atol=1e-5)
    assert torch.allclose(forget.x_s[1:], x_twins + (x_s - x_f), atol=1e-5)

    run(twin_forget=False)
    assert seen[-1].x_f.shape[0] == 1
    with pytest.raises(ValueError, match="twin_forget.*twin_seeds above 0"):
        _cfg(twin_forget=True, twin_seeds=0)


def test_guard_base_of_a_bf16_remember_set_is_drawn_at_the_models_precision_once_through_the_store(tiny_model,
                                                                                                   tmp_path):
    """The monitor draws at the model's precision, so a bf16 remember set cannot be decoded as the guard's
    base: it is drawn, and kept in the store for the next fix of the prompt."""
    import core.unlearn.run as run_mod
    from core.unlearn.remember_store import RememberStore

    cfg = _cfg(remember_set_size=3, remember_precision="bfloat16")
    rs = build_remember_set(tiny_model, [PROMPT], cfg, {1})
    store = RememberStore(tmp_path / "rem")
    base = run_mod._guard_base(tiny_model, rs.data, [0, 1, 2], rs.kept, cfg, store, FixManager(tiny_model))
    drawn = [g.image for g in generate_many(tiny_model, rs.kept, None, None, batch_size=3)]
    assert [np.asarray(a).tolist() for a in base] == [np.asarray(b).tolist() for b in drawn]
    assert len(list((tmp_path / "rem").rglob("*.safetensors"))) == 3
    decoded = run_mod._guard_base(tiny_model, rs.data, [0, 1, 2], rs.kept, _cfg())  # the bf16 latents, decoded
    assert max(mean_abs_diff(a, b) for a, b in zip(base, decoded)) > 0  # would not be the base


def _spy_remember_sets(monkeypatch) -> list:
    """The RememberData each unlearn() call trains on, in call order."""
    import core.unlearn.run as run_mod

    seen, real = [], run_mod.train

    def spy(denoiser, params, table, forget, remember, *args, **kwargs):
        seen.append(remember)
        return real(denoiser, params, table, forget, remember, *args, **kwargs)

    monkeypatch.setattr(run_mod, "train", spy)
    return seen


def test_remember_from_base_draws_the_set_with_earlier_fixes_off_but_keeps_their_pictures_fixed(tiny_model, tmp_path,
                                                                                                monkeypatch):
    """Stacked on an earlier fix, remember_from='base' asks the new fix to keep the base model's outputs
    (pulling back what the earlier fix moved), except where the base showed the earlier fix's picture:
    those seeds are remembered as the fixes draw them. Here that fix's judge sees its picture in every
    output of its prompt."""
    from core.unlearn.earlier_fixes import EarlierFix

    seen = _spy_remember_sets(monkeypatch)
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    cfg = _cfg(remember_set_size=4, remember_filter=False, remember_prompts=["japan flag"], lookalike_probe_seeds=0)
    first = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=1), cfg)
    monkeypatch.setattr(EarlierFix, "shows_picture", lambda self, prompt, image: prompt == self.prompt)

    def drawn(requests, base: bool):
        with fixes.disabled() if base else contextlib.nullcontext():
            return torch.cat([g.latent for g in generate_many(tiny_model, requests)])

    said = []
    res = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=2), cfg.with_overrides(remember_from="base"),
                  progress=lambda frac, text: said.append(text))
    assert any(t.startswith("remember set: ") and t.endswith("+ 4 as the earlier fixes draw them") for t in said)
    assert fixes.fixes[first.run.run_id].enabled  # its flag untouched while the set was drawn
    fixes.set_enabled(res.run.run_id, False)
    rows = {p: [i for i, (q, _) in enumerate(res.remember_seeds) if q == p] for p in (PROMPT, "japan flag")}
    assert len(rows["japan flag"]) == 2 and len(rows[PROMPT]) == 4  # 2 seeds each asked; 4 = capped at the set's size
    assert res.run.metrics()["remember_as_fixed"] == 4 and res.run.metrics()["remember_drawn_from"] == "base"
    for prompt, base in (("japan flag", True), (PROMPT, False)):
        requests = [res.remember_seeds[i] for i in rows[prompt]]
        assert torch.allclose(seen[-1].latents[rows[prompt]], drawn(requests, base), atol=1e-4), prompt
        assert not torch.allclose(seen[-1].latents[rows[prompt]], drawn(requests, not base), atol=1e-4), prompt
    assert json.loads((res.run.path / "config.json").read_text())["config"]["remember_from"] == "base"

    current_run = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=3), cfg)  # the default: as it is
    fixes.set_enabled(current_run.run.run_id, False)
    assert [p for p, _ in current_run.remember_seeds].count(PROMPT) == 2
    assert torch.allclose(seen[-1].latents, drawn(current_run.remember_seeds, False), atol=1e-4)
    assert not {"remember_as_fixed", "remember_drawn_from"} & set(current_run.run.metrics())


def test_remember_from_base_refuses_an_enabled_fix_without_its_run_folder(tiny_model, tmp_path):
    import shutil

    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    cfg = _cfg(remember_set_size=4, remember_filter=False)
    first = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=1), cfg)
    fixes.remove(first.run.run_id)
    bare = tmp_path / "elsewhere"
    bare.mkdir()
    shutil.copy(first.run.lora_path, bare / first.run.lora_path.name)  # a LoRA file alone: what did it remove?
    fixes.load(bare, "imported")
    with pytest.raises(ValueError, match="fix 'imported' has no run folder.*remember_from='current'"):
        unlearn(tiny_model, fixes, store, _request(tiny_model, seed=2), cfg.with_overrides(remember_from="base"))
    assert [r.run_id for r in store.list()] == [first.run.run_id] and set(fixes.fixes) == {"imported"}
    fixes.load(first.run.path, "from-its-run")  # loaded from its run folder: found there
    fixes.set_enabled("imported", False)
    res = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=2), cfg.with_overrides(remember_from="base"))
    assert res.run.path.is_dir()


def test_earlier_forget_samples_replays_each_enabled_fix_of_the_prompt_and_needs_its_run_folder(tiny_model, tmp_path,
                                                                                            monkeypatch):
    """The new fix's forget data ends with each enabled earlier fix's flagged image and surrogate (same
    prompt; a switched-off fix is not replayed); an imported LoRA file without its run folder is refused
    before any work, naming the field."""
    import shutil

    import core.unlearn.run as run_mod

    seen, real = [], run_mod.train

    def spy(denoiser, params, table, forget, *args, **kwargs):
        seen.append(forget)
        return real(denoiser, params, table, forget, *args, **kwargs)

    monkeypatch.setattr(run_mod, "train", spy)
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    cfg = _cfg(remember_set_size=4, remember_filter=False)
    first_request = _request(tiny_model, seed=1)
    first = unlearn(tiny_model, fixes, store, first_request, cfg)
    off = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=3), cfg)
    fixes.set_enabled(off.run.run_id, False)
    replay = cfg.with_overrides(earlier_forget_samples=1)
    said = []
    res = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=2), replay, progress=lambda f, text: said.append(text))
    assert any(t.startswith("the forget loss also replays 1 earlier fix(es)") for t in said)
    forget = seen[-1]
    assert forget.earlier == 1 and len(forget.x_f) == 2 and res.run.metrics()["earlier_forget_rows"] == 1
    assert torch.allclose(forget.x_f[1:], encode(tiny_model, [first_request.flagged]), atol=1e-5)
    assert torch.allclose(forget.x_s[1:], encode(tiny_model, [first_request.surrogate]), atol=1e-5)
    assert "earlier_forget_rows" not in first.run.metrics()
    fixes.set_enabled(res.run.run_id, False)
    based = unlearn(tiny_model, fixes, store, _request(tiny_model, seed=2), replay.with_overrides(remember_from="base"))
    assert seen[-1].earlier == 1 and torch.equal(seen[-1].x_f[1:], forget.x_f[1:])  # pictures remember_from read
    assert torch.equal(seen[-1].x_s[1:], forget.x_s[1:])
    fixes.set_enabled(based.run.run_id, False)
    unlearn(tiny_model, fixes, store, _request(tiny_model, seed=4), replay.with_overrides(method="neggrad"))
    assert seen[-1].earlier == 0  # the other methods do not read it

    fixes.remove(first.run.run_id)
    bare = tmp_path / "elsewhere"
    bare.mkdir()
    shutil.copy(first.run.lora_path, bare / first.run.lora_path.name)
    fixes.load(bare, "imported")
    runs_before = [r.run_id for r in store.list()]
    with pytest.raises(ValueError, match="earlier_forget_samples replays.*fix 'imported' has no run folder"
                                         ".*earlier_forget_samples 0"):
        unlearn(tiny_model, fixes, store, _request(tiny_model, seed=5), replay)
    assert [r.run_id for r in store.list()] == runs_before


def test_left_out_seeds_split_into_this_fixs_picture_and_earlier_fixes_pictures(monkeypatch):
    """With earlier fixes' pictures left out too, a left-out seed is a twin only if this fix's judge sees
    its own picture there; the rest are remembered as the fixes draw them."""
    import core.unlearn.earlier_fixes as ef

    class Judge:
        def shows_error(self, images):
            return [img in (5, 9) for img in images]  # stand-in images: the seeds themselves

    class Gen:
        def __init__(self, seed):
            self.image = seed

    monkeypatch.setattr(ef, "probe_generations", lambda model, reqs, *a, **k: [Gen(s) for _, s in reqs])
    left_out = [("p", 3), ("p", 5), ("q", 5), ("p", 9)]
    cfg = UnlearnConfig(remember_set_size=2)
    assert ef.split_left_out(None, Judge(), "p", left_out, [], cfg, None, None) == (left_out, [])
    assert ef.split_left_out(None, Judge(), "p", left_out, ["earlier"], cfg, None, None) == (
        [("p", 5), ("p", 9)], [("p", 3), ("q", 5)])
    # Without this fix's filter, everything left out was left out for the earlier pictures (capped).
    assert ef.split_left_out(None, Judge(), "p", left_out, ["earlier"], cfg.with_overrides(remember_filter=False),
                             None, None) == ([], [("p", 3), ("p", 5)])


def test_retry_seeds_train_again_with_the_next_seed_and_keep_only_the_try_that_forgot(tiny_model, tmp_path):
    """A try the oracle does not see forgotten is discarded (adapter and folder) and trained again
    from the start at seed + 1; the published fix is the one that seed alone trains."""
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    tries = []
    on_step = lambda r: tries.append(r.step) if r.step == 1 else None  # noqa: E731 - a try starts at step 1
    cfg = _cfg(steps=6, monitor_every=3, stop_when_fixed=True, retry_seeds=2, seed=7)
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), cfg, on_step=on_step,
                  is_fixed=lambda img: len(tries) >= 2)
    m = res.run.metrics()
    assert len(tries) == 2 and m["flagged_seed_fixed"] is True
    assert [t["seed"] for t in m["earlier_tries"]] == [7] and m["earlier_tries"][0]["steps_done"] == 6
    assert res.run.config["config"]["seed"] == 8 and res.run.config["config"]["retry_seeds"] == 2
    assert [r.run_id for r in store.list()] == [res.run.run_id] and list(fixes.fixes) == [res.run.run_id]

    from safetensors.torch import load_file

    retried = load_file(str(res.run.lora_path))
    fixes.remove(res.run.run_id)  # off the shared model, so the run below trains on the base alone
    alone_fixes, alone_store = FixManager(tiny_model), RunStore(tmp_path / "alone")
    calls = []  # the same oracle as the second try saw: not fixed before training, fixed at every monitor step
    alone = unlearn(tiny_model, alone_fixes, alone_store, _request(tiny_model), _cfg(steps=6, monitor_every=3,
                    stop_when_fixed=True, seed=8), is_fixed=lambda img: bool(calls.append(1)) or len(calls) > 1)
    direct = load_file(str(alone.run.lora_path))
    alone_fixes.remove(alone.run.run_id)
    assert retried.keys() == direct.keys() and all(torch.equal(retried[k], direct[k]) for k in retried)


def test_retry_seeds_publish_the_last_try_when_none_forgets(tiny_model, tmp_path):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), _cfg(steps=4, monitor_every=2, retry_seeds=1),
                  is_fixed=lambda img: False)
    m = res.run.metrics()
    assert m["flagged_seed_fixed"] is False and [t["seed"] for t in m["earlier_tries"]] == [0]
    assert res.run.config["config"]["seed"] == 1 and len(store.list()) == 1
    fixes.remove(res.run.run_id)


def _scored(monkeypatch, scores):
    """The judge's score of the flagged seed at each monitor render, in turn (the verdict itself is the oracle's)."""
    import dataclasses

    from core.judge import ForgettingJudge

    real, it = ForgettingJudge.judge_flagged_seed, iter(scores)
    monkeypatch.setattr(ForgettingJudge, "judge_flagged_seed",
                        lambda self, img: dataclasses.replace(real(self, img), score=next(it, 0.0)))


@pytest.mark.parametrize("overlapped", [False, True])
def test_near_miss_steps_train_on_past_the_last_step_when_the_score_ends_just_under_the_bar(
        tiny_model, tmp_path, monkeypatch, overlapped):
    """At step 10 (the last) the flagged seed scores 0.47 against the bar 0.5: the fix trains on, monitored,
    and stops once it is forgotten at step 20; the progress counts to the new end."""
    import core.unlearn.threads as threads_mod

    monkeypatch.setattr(threads_mod.os, "cpu_count", lambda: 2)
    _scored(monkeypatch, [0.2, 0.47, 0.49, 0.6])  # monitor steps 5, 10, 15, 20 (the oracle decides "before")
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    seen, totals = [], []
    res = unlearn(tiny_model, fixes, store, _request(tiny_model),
                  _cfg(steps=10, monitor_every=5, stop_when_fixed=True, forget_threshold=0.5, near_miss_steps=20,
                       near_miss_margin=0.05, overlap_monitor=overlapped),
                  on_step=lambda r: totals.append((r.step, r.total)),
                  is_fixed=lambda img: len(seen) >= 4, on_monitor=lambda step, img: seen.append(step))
    assert seen == [5, 10, 15, 20] and res.train.steps_done == 20 and res.train.stopped_early
    assert totals[:10] == [(s, 10) for s in range(1, 11)] and totals[10:] == [(s, 30) for s in range(11, 21)]
    m = res.run.metrics()
    assert m["flagged_seed_fixed"] is True and m["kept_step"] == 20 and m["steps_done"] == 20
    assert m["monitor_overlapped"] is overlapped
    # each point keeps the judge's second measure too (what the near miss does not read yet)
    assert all(isinstance(p["projection"], float) for p in m["monitor"])


def test_near_miss_steps_leave_a_far_miss_and_extend_only_once(tiny_model, tmp_path, monkeypatch):
    fixes, store = FixManager(tiny_model), RunStore(tmp_path / "runs")
    cfg = _cfg(steps=10, monitor_every=5, stop_when_fixed=True, forget_threshold=0.5, near_miss_steps=10,
               near_miss_margin=0.05, overlap_monitor=False)
    _scored(monkeypatch, [0.2, 0.44])  # 0.06 under the bar at the last step: ends there
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), cfg, is_fixed=lambda img: False)
    assert res.train.steps_done == 10 and res.run.metrics()["flagged_seed_fixed"] is False
    fixes.remove(res.run.run_id)
    _scored(monkeypatch, [0.2, 0.46, 0.47, 0.48])  # near at 10 and again at 20: one extension only
    res = unlearn(tiny_model, fixes, store, _request(tiny_model), cfg, is_fixed=lambda img: False)
    assert res.train.steps_done == 20 and not res.train.stopped_early
    assert [p.step for p in res.monitor_points] == [5, 10, 15, 20]


def test_near_miss_steps_need_the_guard_they_read():
    with pytest.raises(ValueError, match="near_miss_steps.*keep_best"):
        UnlearnConfig(near_miss_steps=40, stop_when_fixed=True, keep_best=False)


def test_near_miss_steps_leave_a_try_the_guard_would_publish_as_forgotten():
    """A state with the flagged seed forgotten but twins left is published as forgotten (no retry), so a
    near miss at the last step does not train on."""
    from core.unlearn.guard import FixGuard, MonitorPoint
    from core.unlearn.trainer import _near_miss

    cfg = UnlearnConfig(near_miss_steps=20, near_miss_margin=0.05, forget_threshold=0.5, stop_when_fixed=True)
    guard = FixGuard([torch.nn.Parameter(torch.zeros(2))])
    guard.record(MonitorPoint(5, False, 0.3, None))
    guard.record(MonitorPoint(10, False, 0.47, None))
    assert _near_miss(guard, 10, cfg) and not _near_miss(guard, 5, cfg)
    assert not _near_miss(guard, 10, cfg.with_overrides(near_miss_margin=0.02))
    guard.points.insert(1, MonitorPoint(8, False, 0.52, 0.01, twins_left=1))
    assert not _near_miss(guard, 10, cfg)
