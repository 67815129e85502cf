"""The remember set on disk: reuse, keys, damaged entries, eviction, keep verdicts, batching."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.adapters import FixManager
from core.generate import generate_many, images_per_call
from core.unlearn.config import UnlearnConfig
from core.unlearn.remember import RememberCache, build_remember_set
from core.unlearn.remember_store import RememberStore

PROMPTS = ["ireland flag", "japan flag"]


def _cfg(**kw) -> UnlearnConfig:
    return UnlearnConfig(**{"remember_set_size": 4, "remember_seed_start": 50, **kw})


def _build(model, store, fixes=None, **kw):
    keep, keep_key = kw.pop("keep", None), kw.pop("keep_key", None)
    return build_remember_set(model, PROMPTS, _cfg(**kw), {51}, keep, store=store, fixes=fixes or FixManager(model),
                              keep_key=keep_key)


def test_a_second_build_reuses_every_generation_bit_for_bit(tiny_model, tmp_path):
    store = RememberStore(tmp_path / "rem")
    first = _build(tiny_model, store)
    assert (first.generated, first.reused) == (4, 0) and store.stats.written == 4
    assert 51 not in [s for _, s in first.kept]
    again = _build(tiny_model, RememberStore(tmp_path / "rem"))  # a new process would open it like this
    assert (again.generated, again.reused, again.pipeline_calls) == (0, 4, 0)
    assert again.kept == first.kept and torch.equal(again.data.latents, first.data.latents)
    assert again.message() == "remember set: 4 (4 reused)"
    assert not list((tmp_path / "rem").rglob("*.tmp"))  # atomic writes leave no temp files


def test_other_steps_guidance_or_fixes_are_other_keys(tiny_model, tmp_path):
    store = RememberStore(tmp_path / "rem")
    _build(tiny_model, store)
    assert _build(tiny_model, store, remember_sampling_steps=2).reused == 0
    assert _build(tiny_model, store, guidance=2.0).reused == 0
    fixes = FixManager(tiny_model)
    params = fixes.create("f1")
    with torch.no_grad():
        for p in params:
            p.add_(0.01)
    fixes.freeze()
    with_fix = _build(tiny_model, store, fixes)
    assert with_fix.reused == 0
    fixes.set_enabled("f1", True, weight=0.5)  # same fix, other weight: another model state
    assert _build(tiny_model, store, fixes).reused == 0
    fixes.set_enabled("f1", False)  # back to the base: the first generations serve again
    assert _build(tiny_model, store, fixes).reused == 4
    assert _build(tiny_model, store, remember_precision="bfloat16").reused == 0  # bf16 draws differ


def test_a_bf16_remember_set_is_close_to_the_models_own_and_keys_stay_for_the_model_dtype(tiny_model):
    """bf16 autocast draws nearly the same remember set (what it costs a fix: bench/results);
    entries stored before precision existed keep their key at the model's own precision."""
    from core.generate import generate_many, sampling_precision
    from core.unlearn.remember_store import GenKey

    reqs = [("ireland flag", s) for s in range(4)]
    own = torch.cat([g.latent for g in generate_many(tiny_model, reqs, decode_images=False)])
    bf16 = torch.cat([g.latent for g in generate_many(tiny_model, reqs, decode_images=False, precision="bfloat16")])
    rel = float((own - bf16).norm() / own.norm())
    assert 0 < rel < 0.1, rel
    assert sampling_precision(tiny_model, "bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="precision='fp8'"):
        sampling_precision(tiny_model, "fp8")
    key = GenKey("s", "p", 1, 20, 3.0)
    assert "precision" not in key.text() and "bfloat16" in GenKey("s", "p", 1, 20, 3.0, "bfloat16").text()


def test_a_damaged_entry_is_rebuilt_not_trusted(tiny_model, tmp_path):
    store = RememberStore(tmp_path / "rem")
    first = _build(tiny_model, store)
    files = sorted((tmp_path / "rem").rglob("*.safetensors"))
    files[0].write_bytes(files[0].read_bytes()[:40])  # truncated
    data = bytearray(files[1].read_bytes())
    data[-3] ^= 0xFF  # one flipped byte inside the latent: still parses, hash differs
    files[1].write_bytes(bytes(data))
    store = RememberStore(tmp_path / "rem")
    again = _build(tiny_model, store)
    assert store.stats.corrupt == 2 and (again.generated, again.reused) == (2, 2)
    # Regenerated in a batch of 2 instead of 4: the same up to CPU batch-size rounding.
    assert torch.allclose(again.data.latents, first.data.latents, atol=1e-5)
    assert _build(tiny_model, RememberStore(tmp_path / "rem")).reused == 4  # rewritten whole


def test_the_store_is_bounded_least_recently_used_first(tiny_model, tmp_path):
    import os

    store = RememberStore(tmp_path / "rem")
    _build(tiny_model, store)
    files = sorted((tmp_path / "rem").rglob("*.safetensors"))
    one = files[0].stat().st_size
    for k, f in enumerate(files):
        os.utime(f, (1000 + k, 1000 + k))
    small = RememberStore(tmp_path / "rem", max_bytes=2 * one)
    assert small.evict() == 2 and small.size_bytes() <= 2 * one
    assert [f.exists() for f in files] == [False, False, True, True]
    assert _build(tiny_model, RememberStore(tmp_path / "rem", max_bytes=0)).generated == 4  # 0 MB: nothing kept


def test_keep_verdicts_are_stored_under_their_rule_key_only(tiny_model, tmp_path):
    store = RememberStore(tmp_path / "rem")
    seen = []

    def keep(prompt, image):
        seen.append(image)
        return len(seen) % 3 != 0  # drop every third candidate

    first = _build(tiny_model, store, keep=keep, keep_key="rule-1")
    assert len(first.kept) == 4 and first.excluded and all(img is not None for img in seen)
    n = len(seen)
    again = _build(tiny_model, store, keep=keep, keep_key="rule-1")
    assert len(seen) == n and again.kept == first.kept and again.excluded == first.excluded
    other = _build(tiny_model, store, keep=lambda p, img: seen.append(img) or True, keep_key="rule-2")
    assert len(seen) > n and other.reused >= 4  # generations reused, judged again (decoded) under the new rule


def test_without_a_filter_nothing_is_decoded_and_latents_match(tiny_model):
    reqs = [("ireland flag", 3), ("japan flag", 4), ("ireland flag", 5)]
    plain = generate_many(tiny_model, reqs)
    bare = generate_many(tiny_model, reqs, decode_images=False, batch_size=None)
    assert all(g.image is None for g in bare)
    for a, b in zip(plain, bare):
        assert torch.allclose(a.latent, b.latent, atol=1e-5)


def test_images_per_call_follows_the_memory_budget(tiny_model):
    assert images_per_call(tiny_model, budget=1) == 1
    small = images_per_call(tiny_model, guidance=3.0, budget=2 << 20)
    assert 1 < small < images_per_call(tiny_model, guidance=3.0, budget=64 << 20)
    assert images_per_call(tiny_model, guidance=1.0, budget=2 << 20) >= 2 * small  # no guidance: half the memory


def test_cache_over_store_and_unlearn_reports_reuse(tiny_model, tmp_path):
    from core.studio import Studio

    from .test_unlearn_runs import _request

    studio = Studio(tiny_model, tmp_path / "data", restore=False, persist_state=False)
    req = _request(tiny_model)
    cfg = studio.default_config(steps=2, remember_set_size=4, monitor_every=0)
    first = studio.unlearn(req.prompt, req.flagged, req.surrogate, req.seed, cfg)
    assert first.run.metrics()["remember_reused"] == 0 and first.run.metrics()["remember_generated"] >= 4
    assert list((tmp_path / "data" / "runs" / ".remember").rglob("*.safetensors"))
    assert [r.run_id for r in studio.store.list()] == [first.run.run_id]  # the store is not a run
    studio.set_enabled(first.run.run_id, False)
    restarted = Studio(tiny_model, tmp_path / "data", restore=False, persist_state=False)
    restarted.fixes = studio.fixes
    second = restarted.unlearn(req.prompt, req.flagged, req.surrogate, req.seed, cfg)
    assert second.run.metrics()["remember_reused"] == 4 and second.run.metrics()["remember_generated"] == 0
    assert isinstance(restarted.remember_cache, RememberCache) and restarted.remember_cache.misses == 1


def test_lookalike_probes_are_the_remember_sets_first_generations(tiny_model, tmp_path):
    from core.unlearn.remember import probe_generations

    store, fixes = RememberStore(tmp_path / "rem"), FixManager(tiny_model)
    probes = probe_generations(tiny_model, [("japan flag", 50), ("japan flag", 52)], _cfg(), store, fixes)
    assert [(g.prompt, g.seed) for g in probes] == [("japan flag", 50), ("japan flag", 52)]
    assert all(g.image is not None for g in probes) and store.stats.written == 2
    built = _build(tiny_model, store, fixes)  # japan's quota is seeds 50 and 52 (51 is excluded): both reused
    assert (built.generated, built.reused) == (2, 2)
    again = probe_generations(tiny_model, [("japan flag", 52)], _cfg(), store, fixes)
    assert torch.equal(again[0].latent, probes[1].latent)
    assert again[0].image.tobytes() == probes[1].image.tobytes()
    bare = probe_generations(tiny_model, [("japan flag", 52)], _cfg())  # no store: drawn, same result
    assert torch.allclose(bare[0].latent, probes[1].latent, atol=1e-5)


def test_grids_and_compare_share_the_store_and_a_fix_is_another_key(tiny_model, tmp_path):
    from core.generate import generate
    from core.studio import Studio

    from .test_unlearn_runs import _request

    studio = Studio(tiny_model, tmp_path / "data", restore=False, persist_state=False)
    store = studio.generation_store
    grid = studio.generate("ireland flag", [3, 4], save=False)
    assert store.stats.written == 2
    fresh = generate(tiny_model, "ireland flag", [3, 4])
    assert all(torch.allclose(a.latent, b.latent, atol=1e-5) for a, b in zip(grid, fresh))
    again = studio.generate("ireland flag", [3, 4], save=False)  # a repeated grid is not drawn again
    assert store.stats.written == 2 and [g.image.tobytes() for g in again] == [g.image.tobytes() for g in grid]
    assert all(torch.equal(g.noise, f.noise) for g, f in zip(again, fresh))

    req = _request(tiny_model)
    res = studio.unlearn(req.prompt, req.flagged, req.surrogate, req.seed,
                         studio.default_config(steps=3, remember_set_size=4, monitor_every=0, learning_rate=5e-2))
    written = store.stats.written
    cmps, _ = studio.compare(["ireland flag"], [3, 4], [res.run.run_id])
    # before = the grid (base weights): reused; after = the fix on: a new key, drawn now
    assert [g.image.tobytes() for g in cmps[0].before] == [g.image.tobytes() for g in grid]
    assert store.stats.written == written + 2
    with studio.fixes.only([res.run.run_id]):
        with_fix = generate(tiny_model, "ireland flag", [3, 4])
    assert all(torch.allclose(a.latent, b.latent, atol=1e-5) for a, b in zip(cmps[0].after, with_fix))
    assert not torch.allclose(cmps[0].after[0].latent, grid[0].latent, atol=1e-4)  # the fix moved it
    studio.set_enabled(res.run.run_id, True)  # (a fix that ended unfixed starts off)
    fixed_grid = studio.generate("ireland flag", [3, 4], save=False)  # the fix on: its own key
    assert [g.image.tobytes() for g in fixed_grid] == [g.image.tobytes() for g in cmps[0].after]


def test_prepare_fix_draws_in_the_background_what_the_fix_then_reuses(tiny_model, tmp_path):
    from core.studio import Studio
    from core.unlearn.remember import first_requests, remember_prompts_for

    from .test_unlearn_runs import _request

    studio = Studio(tiny_model, tmp_path / "data", restore=False, persist_state=False)
    req = _request(tiny_model)
    cfg = studio.default_config(steps=2, remember_set_size=6, monitor_every=0, lookalike_share=0.0,
                                remember_filter=False)
    asked = first_requests(remember_prompts_for(tiny_model, req.prompt, cfg), cfg)
    assert len(asked) == 6 and asked[0] == (req.prompt, cfg.remember_seed_start)
    prep = studio.prepare_fix(req.prompt, config=cfg).wait(timeout=120)
    assert not prep.running and (prep.done, prep.drawn, prep.error) == (6, 6, None)
    assert prep.message().endswith("6/6 ready (6 drawn in the background)")
    res = studio.unlearn(req.prompt, req.flagged, req.surrogate, req.seed, cfg)
    m = res.run.metrics()
    assert (m["remember_reused"], m["remember_generated"]) == (6, 0)
    studio.set_enabled(res.run.run_id, True)
    # A fix drawing from the base model (remember_from="base") finds the base generations already there,
    base_prep = studio.prepare_fix(req.prompt, config=cfg.with_overrides(remember_from="base")).wait(timeout=120)
    assert (base_prep.done, base_prep.drawn) == (6, 0) and studio.fixes.fixes[res.run.run_id].enabled
    # while one drawing from the model as it is (the fix on: another state) draws them anew.
    assert studio.prepare_fix(req.prompt, config=cfg).wait(timeout=120).drawn == 6


def test_a_user_job_runs_while_preparing_and_a_fix_stops_the_preparation(tiny_model, tmp_path):
    from core.generate import generate
    from core.studio import Studio
    from core.unlearn.prepare import PREPARE_BATCH

    from .test_unlearn_runs import _request

    studio = Studio(tiny_model, tmp_path / "data", restore=False, persist_state=False)
    cfg = studio.default_config(remember_set_size=8 * PREPARE_BATCH, lookalike_share=0.0)
    # Made first: while preparing, the model is used only through the studio (its lock).
    plain, req = generate(tiny_model, "japan flag", [3, 4]), _request(tiny_model)
    prep = studio.prepare_fix("ireland flag", config=cfg)
    grid = studio.generate("japan flag", [3, 4], save=False)  # takes the lock between two batches
    assert all(torch.allclose(a.latent, b.latent, atol=1e-5) for a, b in zip(grid, plain))
    studio.unlearn(req.prompt, req.flagged, req.surrogate, req.seed,
                   studio.default_config(steps=1, remember_set_size=2, monitor_every=0))
    assert prep.token.cancelled and not prep.wait(timeout=60).running
    assert prep.done < prep.total and prep.error is None
    stopped = studio.prepare_fix("ireland flag", config=cfg)
    studio.stop_preparing()
    assert stopped.wait(timeout=60).done < stopped.total
    off = Studio(tiny_model, tmp_path / "off", restore=False, persist_state=False, remember_store_mb=0)
    idle = off.prepare_fix("ireland flag", config=cfg)  # nowhere to keep them: nothing is drawn
    assert not idle.running and idle.done == 0 and "remember store is off" in idle.message()


def test_likely_lookalikes_are_prompts_whose_outputs_mostly_copy_the_flagged_image():
    from PIL import Image, ImageOps

    from core.judge import likely_lookalikes

    flagged = Image.new("RGB", (32, 32), (200, 30, 30))
    flagged.paste((20, 160, 40), (0, 0, 16, 32))
    other = ImageOps.invert(flagged)
    outputs = {"copies": [flagged, flagged.copy(), other], "others": [other, other, flagged]}
    assert likely_lookalikes(None, flagged, outputs) == ["copies"]  # 2 of 3 near copies vs 1 of 3


def test_prepare_fix_with_the_flagged_image_draws_ahead_for_its_likely_lookalikes(tiny_model, tmp_path, monkeypatch):
    import core.unlearn.prepare as prepare_module
    from core.studio import Studio
    from core.unlearn.remember import first_requests, remember_prompts_for

    from .test_unlearn_runs import _request

    seen = {}

    def guess(model, flagged, outputs):  # the descriptor's verdict, fixed: which prompts look alike
        seen.update(outputs)
        return ["japan flag"]

    monkeypatch.setattr(prepare_module, "likely_lookalikes", guess)
    studio = Studio(tiny_model, tmp_path / "data", restore=False, persist_state=False)
    req = _request(tiny_model)
    cfg = studio.default_config(remember_set_size=12, remember_prompts=["ireland flag", "japan flag", "italy flag"])
    plain = studio.prepare_fix(req.prompt, config=cfg).wait(timeout=120)
    prep = studio.prepare_fix(req.prompt, config=cfg, flagged=req.flagged).wait(timeout=120)
    prompts = remember_prompts_for(tiny_model, req.prompt, cfg)
    wanted = set(first_requests(prompts, cfg)) | set(first_requests(prompts, cfg.with_overrides(
        lookalike_prompts=["japan flag"])))
    assert prep.error is None and prep.lookalikes == ["japan flag"] and "japan flag" in prep.message()
    assert prep.total == len(wanted) > plain.total and prep.done == prep.total
    assert prep.drawn == prep.total - plain.total  # the first requests were in the store already
    assert set(seen) == set(prompts[1:]) and all(len(v) == cfg.lookalike_probe_seeds for v in seen.values())


def test_a_process_ending_while_preparing_stops_the_preparation_and_exits_cleanly(tmp_path):
    """Ended mid-draw, the background thread was killed inside a torch op: the process aborted (exit 134,
    "terminate called without an active exception"), which failed a passing test run. The exit hook stops
    the preparation and waits for its batch."""
    import subprocess
    import sys
    import textwrap

    from core.models.ddpm import save_tiny_ddpm

    folder = save_tiny_ddpm(tmp_path / "m")
    script = textwrap.dedent(f"""
        import time

        from core.models import load_model
        from core.studio import Studio
        from core.unlearn import prepare

        studio = Studio(load_model({str(folder)!r}), {str(tmp_path / "data")!r}, restore=False, persist_state=False)
        prep = studio.prepare_fix("", config=studio.default_config(remember_set_size=4096))
        assert prep in prepare._RUNNING
        started = time.time()
        while prep.done == 0 and time.time() - started < 60:  # exit in the middle of the drawing
            time.sleep(0.05)
        assert prep.running
        print("exiting while preparing")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0 and "exiting while preparing" in done.stdout, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
