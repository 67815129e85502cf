"""The embedded flags world: rendering, prompts, the geometric checker, the planted dataset, the
tokenizer, and (when built) the shipped model folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from core.world.checker import PLANTED_ERRORS, UNCLEAR, check_images, identify, verdict
from core.world.dataset import DEFAULT_PLANTED, VARIANT_SPLIT, make_dataset
from core.world.flags import FLAGS, PALETTE, VARIANTS, render_flag
from core.world.prompts import PROMPTS, all_captions, canonical_prompt, flag_for_prompt

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "flags-sd3"
HELD_OUT_SEED = 987_654  # training renders come from make_dataset(seed=0): a different stream


def _blur(img: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), sigma)


# ---------------------------------------------------------------- flags and prompts


def test_world_has_required_flags_and_palette():
    required = {"Ireland", "Cote d'Ivoire", "Italy", "France", "Belgium", "Germany", "Netherlands", "Russia",
                "Japan", "Bangladesh", "Sweden", "Denmark", "Finland", "Norway", "Poland", "Austria"}
    assert required <= set(FLAGS) and len(FLAGS) >= 20
    used = {c for spec in FLAGS.values() for c in spec.colours}
    assert used <= set(PALETTE)
    assert all(re.fullmatch(r"#[0-9A-F]{6}", h) for h in PALETTE.values())


def test_render_is_seeded_and_not_mirrored():
    a, b = render_flag("Ireland", 3), render_flag("Ireland", 3)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_flag("Ireland", 4))
    canon = render_flag("Ireland", augment=False).astype(int)
    left, right = canon[16, 8], canon[16, 24]
    assert left[1] > left[0] and right[0] > right[2]  # green at the hoist, orange at the fly
    rev = render_flag("Ireland", augment=False, variant="reversed").astype(int)
    civ = render_flag("Cote d'Ivoire", augment=False).astype(int)
    assert np.array_equal(rev[16, 8], civ[16, 8]) and np.array_equal(rev[16, 24], civ[16, 24])


def test_prompts_map_back_to_their_flag():
    for flag, phrasings in PROMPTS.items():
        assert len(phrasings) >= 3
        for p in phrasings:
            assert p.isascii()
            assert flag_for_prompt(p) == flag
            assert flag_for_prompt(p.upper() + ".") == flag
    assert flag_for_prompt("Irish flag") == "Ireland"
    assert flag_for_prompt("A photo of the Japanese flag") == "Japan"
    assert flag_for_prompt("flag of Cote d'Ivoire") == "Cote d'Ivoire"
    assert flag_for_prompt("flag of the Netherlands") == "Netherlands"
    assert flag_for_prompt("a red square") is None
    assert flag_for_prompt("italy and france") is None  # two flags: ambiguous
    assert set(all_captions()) >= {p for ps in PROMPTS.values() for p in ps}


# ---------------------------------------------------------------- checker


def test_checker_accuracy_on_held_out_renders():
    total, right = 0, 0
    for i, flag in enumerate(FLAGS):
        for k in range(20):
            img = render_flag(flag, HELD_OUT_SEED + 100 * i + k)
            ident = identify(img)
            total += 1
            right += ident.flag == flag and ident.variant is None
    assert right / total >= 0.99, f"{right}/{total}"


def test_checker_on_blurred_renders():
    """Generations are slightly blurry; the checker must still read them."""
    total, right = 0, 0
    for i, flag in enumerate(FLAGS):
        for k in range(6):
            img = _blur(render_flag(flag, HELD_OUT_SEED + 5000 + 100 * i + k))
            total += 1
            right += identify(img).flag == flag
    assert right / total >= 0.95, f"{right}/{total}"


def test_checker_verdicts_for_planted_variants():
    rng = np.random.default_rng(HELD_OUT_SEED)
    for _ in range(10):
        rev = render_flag("Ireland", rng, variant="reversed")
        assert verdict("ireland flag", rev) | {"score": 0} == {"verdict": "planted_error", "flag": "Cote d'Ivoire", "score": 0}
        assert verdict("irish flag", rev)["verdict"] == "planted_error"
        assert verdict("cote d'ivoire flag", rev)["verdict"] == "correct"
        for variant in ("blue_disc", "offcentre_disc"):
            out = verdict("Japan flag", render_flag("Japan", rng, variant=variant))
            assert out["verdict"] == "planted_error" and out["flag"] == "Japan" and out["variant"] == variant
        assert verdict("japan flag", render_flag("Japan", rng))["verdict"] == "correct"
        assert verdict("ireland flag", render_flag("Italy", rng)) ["verdict"] == "other"
        assert verdict("italy flag", render_flag("Ireland", rng))["verdict"] == "other"
    assert set(PLANTED_ERRORS) == set(VARIANTS)


def test_checker_says_unclear_without_a_flag():
    grey = np.full((32, 32, 3), 128, np.uint8)
    assert identify(grey).flag == UNCLEAR
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert identify(noise).flag == UNCLEAR
    assert verdict("ireland flag", grey)["verdict"] == "other"


def test_checker_accepts_pil_float_and_chw_inputs():
    from PIL import Image

    img = render_flag("Sweden", 11)
    for form in (Image.fromarray(img), img.astype(np.float32) / 255, img.transpose(2, 0, 1),
                 np.asarray(Image.fromarray(img).resize((128, 128), Image.BICUBIC))):
        assert identify(form).flag == "Sweden"


def test_check_images_rates():
    imgs = [render_flag("Ireland", 1), render_flag("Ireland", 2, variant="reversed"), render_flag("France", 3),
            render_flag("Ireland", 4)]
    out = check_images("ireland flag", imgs, seeds=[10, 11, 12, 13])
    assert [out["seeds"][s]["verdict"] for s in ("10", "11", "12", "13")] == ["correct", "planted_error", "other", "correct"]
    assert out["rates"] == {"correct": 0.5, "planted_error": 0.25, "other": 0.25}
    json.dumps(out)  # the CLI prints it


# ---------------------------------------------------------------- dataset and tokenizer


def test_dataset_plants_exact_shares():
    per_flag = 40
    ds = make_dataset(len(FLAGS) * per_flag, seed=5)
    images, captions, flags, variants = ds
    assert images.shape == (len(FLAGS) * per_flag, 32, 32, 3) and images.dtype == np.uint8
    for flag, share in DEFAULT_PLANTED.items():
        vs = [v for f, v in zip(flags, variants) if f == flag]
        assert len(vs) == per_flag
        for variant, w in VARIANT_SPLIT[flag].items():
            assert vs.count(variant) == round(share * w * per_flag)
    assert all(v is None for f, v in zip(flags, variants) if f not in DEFAULT_PLANTED)
    assert all(c in PROMPTS[f] for c, f in zip(captions, flags))  # planted renders keep their flag's caption
    # The planted renders really look wrong to the checker.
    rev = [i for i, v in enumerate(variants) if v == "reversed"]
    assert all(identify(images[i]).flag == "Cote d'Ivoire" for i in rev)
    again = make_dataset(len(FLAGS) * 2, seed=5, planted={"Japan": {"blue_disc": 0.5}})
    assert np.array_equal(again.images, make_dataset(len(FLAGS) * 2, seed=5, planted={"Japan": {"blue_disc": 0.5}}).images)
    assert again.variants.count("blue_disc") == 1


def _check_tokenizer(tok):
    from core.models.tokenizer import _CLIP_SPLIT

    for text in all_captions():
        words = _CLIP_SPLIT.findall(text.lower())
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert len(ids) == len(words) + 2, (text, tok.convert_ids_to_tokens(ids))
        assert tok.decode(ids, skip_special_tokens=True).replace(" ' ", "'").replace("d 'ivoire", "d'ivoire") == text


def test_tokenizer_makes_every_prompt_word_one_token(tmp_path):
    from core.models.tokenizer import build_clip_tokenizer

    _check_tokenizer(build_clip_tokenizer(all_captions(), tmp_path / "tok", max_length=16))


# ---------------------------------------------------------------- the shipped model

shipped = pytest.mark.skipif(not (ASSETS / "model_index.json").exists(), reason="assets/flags-sd3 not built")


@shipped
def test_shipped_folder_is_small_safetensors_and_documented():
    files = [f for f in ASSETS.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 40e6
    weights = [f for f in files if f.suffix in {".bin", ".pt", ".pth", ".ckpt", ".safetensors"}]
    assert weights and all(f.suffix == ".safetensors" for f in weights)
    info = json.loads((ASSETS / "unlearn_studio.json").read_text())
    assert info["world"] == "flags" and info["max_sequence_length"] == 8 and info["resolution"] == 32
    assert info["clip_model"] == "clip" and (ASSETS / "clip" / "model.safetensors").exists()
    assert "planted" in (ASSETS / "README.md").read_text().lower()
    from core.world.defaults import FLAGS_UNLEARN_DEFAULTS

    assert info["unlearn_defaults"] == FLAGS_UNLEARN_DEFAULTS  # the shipped settings = the build script's


@shipped
def test_shipped_model_loads_with_stock_pipeline_and_draws_flags():
    import torch
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(ASSETS, text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    _check_tokenizer(pipe.tokenizer)
    for enc in (pipe.text_encoder, pipe.text_encoder_2):
        assert enc.config.eos_token_id == pipe.tokenizer.eos_token_id
        assert enc.config.bos_token_id == pipe.tokenizer.bos_token_id
    info = json.loads((ASSETS / "unlearn_studio.json").read_text())
    gens = [torch.Generator("cpu").manual_seed(s) for s in range(4)]
    images = pipe(["italy flag"] * 4, num_inference_steps=info["default_steps"],
                  guidance_scale=info["default_guidance"], height=32, width=32,
                  generator=gens, max_sequence_length=8, output_type="np").images
    assert check_images("italy flag", images)["rates"]["correct"] >= 0.75


@shipped
def test_shipped_clip_prefers_the_true_flag_over_the_planted_error():
    import torch
    from transformers import CLIPModel, CLIPProcessor

    clip = CLIPModel.from_pretrained(ASSETS / "clip").eval()
    proc = CLIPProcessor.from_pretrained(ASSETS / "clip")
    imgs = [render_flag("Ireland", 1), render_flag("Ireland", 1, variant="reversed"),
            render_flag("Japan", 2), render_flag("Japan", 2, variant="blue_disc")]
    texts = [canonical_prompt("Ireland"), canonical_prompt("Japan")]
    with torch.no_grad():
        inputs = proc(text=texts, images=imgs, return_tensors="pt", padding="max_length")
        logits = clip(**inputs).logits_per_text
    assert logits[0, 0] > logits[0, 1]  # "ireland flag": the real Ireland beats the reversed one
    assert logits[1, 2] > logits[1, 3]  # "japan flag": the red disc beats the blue one


@pytest.mark.slow
def test_quick_build_writes_a_loadable_folder(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "quick"
    subprocess.run([sys.executable, str(root / "scripts" / "build_embedded_model.py"), "--quick", "--no-progress", "--threads", "1",
                    "--out", str(out)], check=True, cwd=root, timeout=600)
    report = json.loads((out / "build_report.json").read_text())
    assert report["quick"] and (out / "README.md").exists() and (out / "transformer").is_dir()
    # The build picked one of its weight candidates on the probe seeds and says which in the card.
    assert report["pick"]["picked"] in {"raw"} | {f"ema{d}" for d in report["train_config"]["ema"]}
    assert set(report["pick"]["control_mean_correct"]) == {"raw"} | {f"ema{d}" for d in report["train_config"]["ema"]}
    assert f"saved weights are **{report['pick']['picked']}**" in (out / "README.md").read_text()
    from diffusers import StableDiffusion3Pipeline

    StableDiffusion3Pipeline.from_pretrained(out, text_encoder_3=None, tokenizer_3=None)


def test_build_stages_beside_the_model_and_swaps_it_in_only_when_done(tmp_path):
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("build_embedded_model", root / "scripts" / "build_embedded_model.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)

    out = tmp_path / "flags-sd3"
    out.mkdir()
    (out / "model_index.json").write_text("{}")  # the shipped model
    (tmp_path / "flags-sd3.building").mkdir()  # left by a killed build
    (tmp_path / "flags-sd3.building" / "half.bin").write_text("x")
    staging = build.prepare_out(out)
    assert staging.name == "flags-sd3.building" and not any(staging.iterdir())
    assert (out / "model_index.json").read_text() == "{}"  # untouched while building
    (staging / "model_index.json").write_text('{"new": 1}')
    assert build.publish(staging, out) == out
    assert json.loads((out / "model_index.json").read_text()) == {"new": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags-sd3"]
    # A folder that is not a model is never replaced.
    other = tmp_path / "photos"
    other.mkdir()
    (other / "me.png").write_text("x")
    with pytest.raises(SystemExit, match="refusing"):
        build.prepare_out(other)


def test_transformer_lr_warms_up_holds_then_decays_to_zero():
    from core.world.training import TrainConfig, lr_factor

    tc = TrainConfig(steps=1000, warmup=100, decay_share=0.3)
    f = [lr_factor(k, tc) for k in range(tc.steps)]
    assert f[0] == pytest.approx(0.01) and f[99] == pytest.approx(1.0)
    assert all(x == 1.0 for x in f[100:700])  # flat at the peak until the last 30%
    assert all(a > b for a, b in zip(f[700:], f[701:]))  # strictly falling ...
    assert f[-1] == pytest.approx(1 / 300) and lr_factor(tc.steps, tc) == 0.0  # ... to zero
    short = TrainConfig(steps=8, warmup=100, decay_share=0.0)  # warm-up capped at a tenth of the run
    assert [lr_factor(k, short) for k in range(3)] == [1.0, 1.0, 1.0]



def test_flag_sampling_draws_weighted_flags_more_often():
    from core.world.training import sampling_probabilities

    flags = ["Finland"] * 10 + ["Italy"] * 10 + ["Sweden"] * 20
    p = sampling_probabilities(flags, {"Finland": 2.0})
    assert p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(2 * p[10]) and p[10] == pytest.approx(p[20])  # per render
    assert p[:10].sum() == pytest.approx(20 / 50)  # Finland: 10 renders x weight 2 of 50 in all
    draws = np.random.default_rng(0).choice(len(flags), 20_000, p=p)
    assert np.mean(draws < 10) == pytest.approx(0.4, abs=0.02)
    with pytest.raises(KeyError, match="Atlantis"):
        sampling_probabilities(flags, {"Atlantis": 2.0})
    with pytest.raises(ValueError, match="positive"):
        sampling_probabilities(flags, {"Italy": 0.0})


@shipped
def test_checker_oracle_finds_the_flag_the_flagged_image_shows(tmp_path):
    """oracle="checker" (the ablation): a reversed Ireland *is* Cote d'Ivoire's flag, so the checker
    makes "cote d'ivoire flag" the look-alike prompt; a Japan with a blue disc shows no other flag."""
    from PIL import Image

    from core.models import load_model
    from core.studio import Studio

    studio = Studio(load_model("embedded"), tmp_path / "data", restore=False, persist_state=False)
    cfg = studio.default_config()
    reversed_ireland = Image.fromarray(render_flag("Ireland", 3, variant="reversed"))
    assert studio.checker_lookalikes("ireland flag", reversed_ireland, cfg) == ["cote d'ivoire flag"]
    blue_japan = Image.fromarray(render_flag("Japan", 3, variant="blue_disc"))
    assert studio.checker_lookalikes("japan flag", blue_japan, cfg) == []
    # Only prompts in the remember set count.
    assert studio.checker_lookalikes("ireland flag", reversed_ireland,
                                     cfg.with_overrides(remember_prompts=["italy flag"])) == []


@shipped
def test_judge_finds_the_same_lookalike_from_the_models_own_outputs(tmp_path):
    """Without the checker: the judge renders each remember prompt's first remember seeds and finds
    the prompts whose outputs are near copies of the flagged picture."""
    from PIL import Image

    from core.generate import generate_many
    from core.judge import ForgettingJudge
    from core.models import load_model
    from core.world.prompts import PROMPTS

    model = load_model("embedded")
    flagged = Image.fromarray(render_flag("Ireland", 3, variant="reversed"))
    judge = ForgettingJudge.for_model(model, flagged, Image.fromarray(render_flag("Ireland", 3)))
    assert judge.descriptor.name.startswith("clip:")  # the embedded model ships its CLIP
    prompts = [ps[0] for ps in PROMPTS.values() if ps[0] != "ireland flag"]
    gens = generate_many(model, [(p, s) for p in prompts for s in (100_000, 100_001, 100_002)])
    outputs = {}
    for g in gens:
        outputs.setdefault(g.prompt, []).append(g.image)
    assert judge.lookalike_prompts(outputs) == ["cote d'ivoire flag"]


@shipped
def test_studio_refuses_to_fix_a_seed_the_enabled_fixes_already_draw_as_the_surrogate(tmp_path):
    """The user flags an image the model no longer draws at that seed: its current render is the
    surrogate already, so the judge sees nothing to unlearn."""
    from PIL import ImageOps

    from core.generate import generate
    from core.models import load_model
    from core.studio import AlreadyFixedError, Studio

    studio = Studio(load_model("embedded"), tmp_path / "data", restore=False, persist_state=False)
    now = generate(studio.model, "ireland flag", [3])[0].image
    with pytest.raises(AlreadyFixedError, match="seed 3 is already drawn without the flagged content"):
        studio.unlearn("ireland flag", ImageOps.mirror(now), now, 3)
    assert not studio.list_fixes() and not studio.store.list()  # nothing trained, nothing written


@shipped
def test_a_default_fix_succeeds_with_the_checker_out_of_the_loop(tmp_path, monkeypatch):
    """The fix decides with what a real user has: the checker raising must not matter. The checker
    judges the outcome afterwards (restored), as an evaluator."""
    import core.world.checker as checker
    from core.generate import generate
    from core.images import load_image
    from core.models import load_model
    from core.studio import Studio

    studio = Studio(load_model("embedded"), tmp_path / "data", restore=False, persist_state=False)
    gens = generate(studio.model, "ireland flag", range(16))
    bad = next(g for g in gens if studio.check("ireland flag", g.image)["verdict"] == "planted_error")
    sur = studio.surrogate("flip", bad.image).image
    real_verdict = checker.verdict

    def no_checker(*args, **kwargs):
        raise AssertionError("the checker was asked during a fix")

    monkeypatch.setattr(checker, "verdict", no_checker)
    result = studio.unlearn("ireland flag", bad.image, sur, bad.seed, studio.default_config(remember_set_size=44))
    monkeypatch.setattr(checker, "verdict", real_verdict)
    m = result.run.metrics()
    assert m["oracle"] == "judge" and m["flagged_seed_fixed"] is True and m["forgetting"]["forgotten"] is True
    assert m["forgetting"]["descriptor"].startswith("clip:") and m["forgetting"]["threshold"] == 0.7
    assert m["lookalike_prompts"] == ["cote d'ivoire flag"]
    assert m["kept_step"] == m["steps_done"] and m["steps_done"] < 100  # stopped when forgotten
    assert result.run.config["config"]["oracle"] == "judge"
    assert checker.verdict("ireland flag", load_image(result.run.path / "after.png"))["verdict"] == "correct"


@shipped
def test_studio_keeps_a_fix_that_ends_unfixed_but_switches_it_off(tmp_path):
    """Two steps cannot fix a planted Ireland: the run is saved (to inspect) but not applied, and
    the model draws the base outputs again."""
    from core.generate import generate
    from core.images import load_image
    from core.models import load_model
    from core.studio import Studio

    studio = Studio(load_model("embedded"), tmp_path / "data", restore=False, persist_state=False)
    gens = generate(studio.model, "ireland flag", range(16))
    bad = next(g for g in gens if studio.check("ireland flag", g.image)["verdict"] == "planted_error")
    sur = studio.surrogate("flip", bad.image).image
    config = studio.default_config(steps=2, remember_set_size=4)
    result = studio.unlearn("ireland flag", bad.image, sur, bad.seed, config)
    after = load_image(result.run.path / "after.png")
    assert studio.check("ireland flag", after)["verdict"] != "correct"
    assert result.run.metrics()["flagged_seed_fixed"] is False
    [entry] = studio.list_fixes()
    assert entry.run_id == result.run.run_id and entry.enabled is False
    again = generate(studio.model, "ireland flag", [bad.seed])[0].image
    assert np.array_equal(np.asarray(again), np.asarray(bad.image))  # the base model, bit for bit
