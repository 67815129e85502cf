"""The benchmark code runs and returns sane numbers on tiny models (no assertions on speed)."""

from __future__ import annotations

import math

import pytest
import torch

from bench import common as C
from bench import cost
from bench import sd3_medium_timing as S

TINY_SHAPE = S.Shape(num_layers=1, num_attention_heads=2, attention_head_dim=16, joint_attention_dim=32,
                     caption_projection_dim=32, pooled_projection_dim=24, in_channels=4, sample_size=8,
                     pos_embed_max_size=16, resolution=64, clip_tokens=5, t5_tokens=3)


def test_cost_measurement_gives_positive_timings_for_every_method_and_a_finite_ratio(tiny_model):
    m = cost.measure_all(tiny_model, rounds=2, ab_rounds=2, memory_steps=1, sd3_scale=False)
    assert set(m["labels"]) == set(cost.VARIANTS) | {cost.FUSED}
    for lab in m["labels"]:
        r = m["per_round"][lab]
        assert len(r["step"]) == 2 and all(t > 0 for t in r["step"] + r["grad"] + r["cpu"]), lab
        mem = m["memory"][lab]
        assert mem["peak_mib"] > 0 and math.isfinite(mem["delta_mib"]), lab
    for key in ("ratio", "ratio_cpu", "ratio_fused"):
        assert m[key]["n"] == 2 and math.isfinite(m[key]["median"]) and m[key]["median"] > 0, key
    assert m["surgery_ops"]["core"]["median"] > 0 and m["surgery_ops"]["fused"]["median"] > 0
    # The fused proposal must not change the surgery's math.
    assert m["equivalence"]["same_projection"] and m["equivalence"]["max_rel_diff"] < 1e-6


def test_fused_project_matches_core_surgery_on_conflicting_and_agreeing_gradients():
    from core.unlearn import surgery

    g = torch.Generator().manual_seed(0)
    g_f = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    g_r = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    for mode in ("forget", "pcgrad", "off"):
        for sign in (1, -1):
            r = [sign * x for x in g_r]
            core = surgery.project(g_f, r, mode)
            fused, cos, projected = cost.fused_project(g_f, r, mode)
            assert projected == core.projected and cos == pytest.approx(core.cos, abs=1e-12)
            for a, b in zip(core.combined(), fused):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_surgery_op_count_at_sd3_medium_scale_favours_the_fused_version():
    shapes = cost.sd3_medium_lora_shapes(8)
    assert len(shapes) == 382 and sum(a * b for a, b in shapes) == 4_694_016
    few = shapes[:20]  # the counts scale with the tensor count; keep the test fast
    r = cost.surgery_ops_at_scale(few, reps=1)
    assert r["ops_fused"] < r["ops_core"] and r["s_core"]["n"] == 1


def test_flow_timing_reports_every_stage(tiny_model):
    flow = cost.time_flow(tiny_model, n_seeds=2, steps=2, remember_set_size=2, monitor_every=1)
    assert set(flow["stages"]) == {"generate 16", "flip surrogate", "fix", "compare 16"}
    assert flow["steps_done"] == 2 and flow["monitor_renders"] == 2
    assert all(v >= 0 for v in flow["fix_stages"].values())
    assert flow["fix_stages"]["training steps (sum of step times)"] > 0


def test_report_helpers_carry_the_command_line(tmp_path):
    cmd = "PYTHONPATH=. python bench/cost.py --quick"
    table = C.markdown_table(["a", "b|c"], [[1, "x|y"]], command=cmd)
    assert f"command: `{cmd}`" in table.splitlines()[0] and "b\\|c" in table
    path = C.write_report(tmp_path / "r.md", "T", cmd, [table], {"model": "m"})
    assert f"Produced by: `{cmd}`" in path.read_text()
    png = C.bar_chart(tmp_path / "r.png", ["a", "b"], [1.0, 2.0], [0.5, 1.5], [1.5, 2.5], footnote=cmd)
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert C.command_line(["bench/cost.py", "--quick", "--out", "a b"]).endswith("python bench/cost.py --quick --out 'a b'")


def test_world_reports_name_the_weights_they_measured(tiny_model, tmp_path):
    from bench.report import write_markdown

    with_model = write_markdown(tmp_path / "a.md", "T", "cmd", ["x"], [[1]], ["note"], [{"x": 1}], model=tiny_model)
    text = with_model.read_text()
    assert f"base weights sha256 `{tiny_model.fingerprint()[:16]}`" in text and f"`{tiny_model.source}`" in text
    assert text.index("Made by: `cmd`") < text.index("Model:") < text.index("| x |")
    assert "Model:" not in write_markdown(tmp_path / "b.md", "T", "cmd", ["x"], [[1]]).read_text()


def test_missing_embedded_model_falls_back_to_a_labelled_standin(monkeypatch, tmp_path, capsys):
    import core.models.loading as loading

    monkeypatch.setattr(loading, "EMBEDDED_DIR", tmp_path / "no-such-model")
    monkeypatch.setattr(C, "standin_folder", lambda *a, **k: tmp_path / "standin")
    choice = C.choose_model("embedded")
    assert choice.standin and C.STANDIN_LABEL in choice.label and choice.location == str(tmp_path / "standin")
    assert "embedded model is missing" in capsys.readouterr().out
    # Saved weights without the studio info file: a build still running, not a usable model.
    (tmp_path / "no-such-model").mkdir()
    (tmp_path / "no-such-model" / "model_index.json").write_text("{}")
    assert C.choose_model("embedded").standin


def test_sd3_timing_code_path_on_a_tiny_shape(tmp_path):
    """The real script's path (build from config, studio LoRA, trainer steps, GC on/off, surgery forget
    vs off interleaved) at a toy size."""
    info = S.run(TINY_SHAPE, torch.device("cpu"), torch.float32, (False, True), steps=2, warmup=1,
                 forget_batch=1, remember_batch=1, rank=4, surgeries=("forget", "off"), chunk=1)
    assert [(r["gc"], r["surgery"]) for r in info["results"]] == [(False, "forget"), (False, "off"), (True, "forget"),
                                                                   (True, "off")]
    for r in info["results"]:
        assert r["steps"] == 2 and r["step_s"]["min"] > 0 and r["cpu_s"]["min"] > 0 and r["peak_mib"] > 0
        assert r["flop_per_step"] > 0
        if r["surgery"] == "forget":
            assert r["vs_plain_step"]["n"] == 2 and math.isfinite(r["vs_plain_cpu"]["median"])
    S._report(info, "cmd --quick", tmp_path, "toy shape", None)
    text = (tmp_path / "sd3_medium_timing.md").read_text()
    assert "REDUCED" in text and "`cmd --quick`" in text and "vs surgery off" in text


def test_sd3_timing_reports_an_out_of_memory_setting_and_goes_on(monkeypatch, tmp_path):
    real, calls = S.train_chunk, []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) == 1:  # the first setting's warm-up
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real(*args, **kw)

    monkeypatch.setattr(S, "train_chunk", flaky)
    info = S.run(TINY_SHAPE, torch.device("cpu"), torch.float32, (False,), steps=1, warmup=1, forget_batch=1,
                 remember_batch=1, rank=4, surgeries=("forget", "off"), chunk=1)
    assert info["results"][0]["oom"] and info["results"][1]["steps"] == 1 and not info["results"][1]["oom"]
    S._report(info, "cmd", tmp_path, None, None)
    assert "**out of memory**" in (tmp_path / "sd3_medium_timing.md").read_text()


def test_lora_gets_the_same_gradients_through_gradient_checkpointing():
    """With GC on, the frozen base is recomputed in backward: the LoRA must get the same gradients."""
    from core.unlearn.config import UnlearnConfig
    from core.unlearn.methods import METHODS
    from core.unlearn.trainer import _sample_batch

    shape = S.Shape(**{**TINY_SHAPE.__dict__, "num_layers": 2})
    t = S.build_transformer(shape, torch.device("cpu"), torch.float32)
    params = S.add_fix_lora(t, rank=4)
    with torch.no_grad():
        for n, p in t.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 1e-2)
    forget, remember = S.make_data(shape, 1, 1, torch.device("cpu"))
    cfg = UnlearnConfig(forget_batch_size=1, remember_batch_size=1, lora_rank=4)
    batch = _sample_batch(forget, remember, S.training_sigmas(), cfg, torch.Generator().manual_seed(0), "cpu")
    grads = {}
    t.train()
    for gc in (False, True):
        S.set_gc(t, gc)
        grads[gc] = METHODS["surrogate"](t, params, cfg).step(batch).grads
    assert t.is_gradient_checkpointing
    assert sum(int(g.abs().sum() > 0) for g in grads[True]) >= len(params) - 2  # last block's text out: unused
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_sd3_medium_shape_is_sd3_medium():
    sh = S.SD3_MEDIUM
    assert (sh.num_layers, sh.num_attention_heads * sh.attention_head_dim, sh.joint_attention_dim) == (24, 1536, 4096)
    assert sh.image_tokens == 4096 and sh.text_tokens == 154
    # The anchors' FLOP check: 1024², 256 T5 tokens -> fwd lin 6.02 + attn 2.89 TFLOP; train (no GC) 20.7.
    assert S.Shape(t5_tokens=256).train_flop_per_sample(False) / 1e12 == pytest.approx(20.7, abs=0.05)


@pytest.mark.slow
def test_sd3_medium_real_size_one_step_at_256():
    """One real-size (2.03B, 24 layers) unlearning step at 256² on CPU: ~12 GB of RAM; 1 min on 2 free cores,
    6 min measured on a shared 2-core machine."""
    shape = S.Shape(resolution=256)
    t = S.build_transformer(shape, torch.device("cpu"), torch.float32)
    assert 2.0e9 < sum(p.numel() for p in t.parameters()) < 2.1e9
    params = S.add_fix_lora(t, rank=16)
    S.set_gc(t, True)
    kw = dict(method="surrogate", surgery="forget", forget_batch_size=1, remember_batch_size=1, lora_rank=16)
    r = S.train_chunk(t, params, S.make_data(shape, 1, 1, torch.device("cpu")), kw, 1, seed=0)
    assert len(r["step_s"]) == 1 and r["step_s"][0] > 0
    assert all(torch.isfinite(p).all() for p in params)
