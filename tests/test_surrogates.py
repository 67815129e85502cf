"""Surrogate makers: paint compositing, flip/noise, SDEdit and CLIP edit on a tiny model."""

import numpy as np
import pytest
import torch
from PIL import Image

from core.images import ImageInputError, ensure_rgb, fit_to_model, load_image
from core.surrogates import ClipEditParams, NoiseParams, SDEditParams, composite_layers, make_surrogate


def _flag(size=16):
    arr = np.zeros((size, size, 3), np.uint8)
    arr[:, : size // 3] = (22, 155, 98)
    arr[:, size // 3 : 2 * size // 3] = (255, 255, 255)
    arr[:, 2 * size // 3 :] = (255, 136, 62)
    return Image.fromarray(arr)


def test_paint_composites_layers_over_the_flagged_image():
    bg = _flag()
    layer = Image.new("RGBA", bg.size, (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (0, 0, 4, 4))
    half = Image.new("RGBA", bg.size, (0, 0, 0, 0))
    half.paste((0, 0, 255, 128), (8, 8, 10, 10))
    out = np.asarray(composite_layers(bg, [layer, half]))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[15, 15]) == tuple(np.asarray(bg)[15, 15])  # untouched pixels stay exact
    blended = out[9, 9].astype(int)
    assert abs(blended[2] - (255 * 128 + 255 * 127) // 255) <= 2 and blended[0] < 200
    sur = make_surrogate("paint", bg, params={"layers": [layer]})
    assert sur.info["kind"] == "paint" and 0 < sur.info["changed_fraction"] < 0.1


def test_paint_refuses_empty_canvas_and_wrong_layer_size():
    bg = _flag()
    with pytest.raises(ImageInputError, match="empty"):
        make_surrogate("paint", bg, params={"layers": [Image.new("RGBA", bg.size, (0, 0, 0, 0))]})
    with pytest.raises(ImageInputError, match="16x16"):
        composite_layers(bg, [Image.new("RGBA", (20, 20), (255, 0, 0, 255))])


def test_flip_reverses_a_tricolour_and_noise_is_seeded():
    bg = _flag()
    flipped = np.asarray(make_surrogate("flip", bg).image)
    assert np.array_equal(flipped, np.asarray(bg)[:, ::-1])
    a = make_surrogate("noise", bg, params=NoiseParams(sigma=0.2, seed=3)).image
    b = make_surrogate("noise", bg, params=NoiseParams(sigma=0.2, seed=3)).image
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(bg))
    with pytest.raises(ValueError, match="sigma"):
        make_surrogate("noise", bg, params={"sigma": 0})


def test_unknown_kind_and_image_conversions():
    with pytest.raises(ValueError, match="choose one of"):
        make_surrogate("magic", _flag())
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert ensure_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert ensure_rgb(Image.new("I;16", (4, 4), 1000)).mode == "RGB"
    assert fit_to_model(_flag(32), 16).size == (16, 16)
    with pytest.raises(ImageInputError, match="square"):
        fit_to_model(Image.new("RGB", (16, 20)), 16)


def test_load_image_rejects_bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "page.png").write_text("<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    for name in ("empty.png", "junk.png", "page.png", "missing.png"):
        with pytest.raises(ImageInputError):
            load_image(tmp_path / name)
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.tiff")
    with pytest.raises(ImageInputError, match="TIFF"):
        load_image(tmp_path / "ok.tiff")


def test_sdedit_runs_on_the_model_and_strength_controls_change(tiny_model):
    from core.generate import generate

    img = generate(tiny_model, "ireland flag", [0])[0].image
    weak = make_surrogate("sdedit", img, tiny_model, SDEditParams(strength=0.25, prompt="ireland flag"))
    strong = make_surrogate("sdedit", img, tiny_model, SDEditParams(strength=1.0, prompt="ireland flag"))
    assert weak.image.size == img.size
    d = lambda a: np.abs(np.asarray(a, float) - np.asarray(img, float)).mean()  # noqa: E731
    assert d(weak.image) < d(strong.image)
    with pytest.raises(ValueError, match="strength"):
        make_surrogate("sdedit", img, tiny_model, {"strength": 1.5})


def test_clip_edit_raises_clip_similarity_to_the_target_text(tiny_model_dir, tmp_path):
    """Plumbing on a random tiny CLIP: the optimiser must raise the similarity it optimises.
    (No claim about image quality: the CLIP here is untrained.)"""
    import shutil

    from transformers import CLIPConfig, CLIPModel

    from core.generate import generate
    from core.models import load_model

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    tok = load_model(str(folder)).pipe.tokenizer
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=8, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=4),
        projection_dim=8)
    CLIPModel(cfg).save_pretrained(folder / "clip")
    model = load_model(str(folder))
    img = generate(model, "ireland flag", [0])[0].image
    lo = make_surrogate("clip", img, model, ClipEditParams(text="japan flag", clip_weight=0.5, steps=15))
    hi = make_surrogate("clip", img, model, ClipEditParams(text="japan flag", clip_weight=32, steps=15))
    assert hi.info["clip_similarity_after"] > hi.info["clip_similarity_before"]
    change = lambda s: np.abs(np.asarray(s.image, float) - np.asarray(img, float)).mean()  # noqa: E731
    assert change(hi) > change(lo)  # the weight is the forgetting/fidelity knob
    with pytest.raises(ValueError, match="clip_weight=100"):
        make_surrogate("clip", img, model, {"text": "x", "clip_weight": 100})


def test_clip_edit_without_clip_weights_says_how_to_get_them(tiny_model):
    from core.generate import generate
    from core.models.loading import ModelNotFoundError

    img = generate(tiny_model, "ireland flag", [0])[0].image
    with pytest.raises(ModelNotFoundError, match="CLIP"):
        make_surrogate("clip", img, tiny_model, {"text": "ireland flag"})


def test_other_seed_is_that_seeds_output_and_refuses_a_copy_or_a_missing_prompt(tiny_model):
    """The model's own output at another seed (same prompt and sampling as the grid); the flagged
    seed itself, a copy of the flagged output, teaches a fix nothing and is refused."""
    from core.generate import generate

    flagged, other = (g.image for g in generate(tiny_model, "ireland flag", [0, 1], steps=4))
    sur = make_surrogate("other_seed", flagged, tiny_model, {"seed": 1, "prompt": "ireland flag", "steps": 4})
    assert np.array_equal(np.asarray(sur.image), np.asarray(other))
    assert sur.info["kind"] == "other_seed" and sur.info["seed"] == 1 and sur.info["copy_similarity"] < 0.9
    with pytest.raises(ValueError, match="other_seed.seed=0 draws a copy of the flagged output"):
        make_surrogate("other_seed", flagged, tiny_model, {"seed": 0, "prompt": "ireland flag", "steps": 4})
    with pytest.raises(ValueError, match="other_seed.prompt is empty"):
        make_surrogate("other_seed", flagged, tiny_model, {"seed": 1})
    with pytest.raises(ValueError, match="other_seed draws the surrogate with the model"):
        make_surrogate("other_seed", flagged, None, {"seed": 1, "prompt": "ireland flag"})


def test_suggesting_a_seed_is_refused_for_a_prompted_model_and_without_one(tiny_model):
    """A prompt's right outputs look alike at every seed: 'no picture the grid repeats' would rule them
    all out, so the suggestion is for unconditional models, and says what to do instead."""
    from core.surrogates import SeedSurveyParams, survey_other_seeds

    flagged = Image.new("RGB", (32, 32), "red")
    with pytest.raises(ValueError, match="for unconditional models: for a prompt, type the seed"):
        survey_other_seeds(tiny_model, flagged, SeedSurveyParams(count=4))
    with pytest.raises(ValueError, match="load one first"):
        survey_other_seeds(None, flagged, SeedSurveyParams(count=4))


def test_other_seed_takes_a_flagged_image_of_another_square_size(tiny_model, monkeypatch):
    """The flagged image is compared as the fix sees it, at the model's size: a descriptor that embeds
    a batch (CLIP) took one size only, and a larger square flagged image failed."""
    from core.generate import generate
    from core.judge import Descriptor, thumbnail_embed

    res, seen = tiny_model.info.resolution, []

    def strict(images):
        seen.append({img.size for img in images})
        return thumbnail_embed(images)

    monkeypatch.setattr("core.judge.pick_descriptor", lambda model, device="cpu": Descriptor("strict", strict, 0.9))
    flagged, other = (g.image for g in generate(tiny_model, "ireland flag", [0, 1], steps=4))
    sur = make_surrogate("other_seed", flagged.resize((4 * res, 4 * res)), tiny_model,
                         {"seed": 1, "prompt": "ireland flag", "steps": 4})
    assert np.array_equal(np.asarray(sur.image), np.asarray(other)) and seen == [{(res, res)}]
