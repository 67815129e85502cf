"""Seeded generation, and fixes as LoRA adapters: toggle, stack, save, load in a stock pipeline."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.adapters import AdapterError, FixManager
from core.generate import generate, generate_many, image_grid, initial_noise, parse_seeds
from core.models.loading import base_fingerprint, base_state_dict


def _arrays(gens):
    return [np.asarray(g.image) for g in gens]


def _perturb_fix(fixes, name, scale=0.5, seed=0):
    """A fix with visible effect, without training: random LoRA B weights."""
    params = fixes.create(name, rank=4)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=g) * scale)
    fixes.freeze()


def test_parse_seeds():
    assert parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_seeds([5, 2]) == [5, 2]
    with pytest.raises(ValueError):
        parse_seeds("5-2")
    with pytest.raises(ValueError):
        parse_seeds(" , ")


def test_same_seed_same_state_is_bit_identical_and_seeds_differ(tiny_model):
    a = _arrays(generate(tiny_model, "ireland flag", [0, 1, 2]))
    b = _arrays(generate(tiny_model, "ireland flag", [0, 1, 2]))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1])
    # the initial noise depends on the seed alone
    assert torch.equal(initial_noise(tiny_model, 5), initial_noise(tiny_model, 5))


def test_output_of_a_seed_does_not_depend_on_its_batch(tiny_model):
    alone = _arrays(generate(tiny_model, "japan flag", [3]))[0]
    in_batch = _arrays(generate(tiny_model, "japan flag", [0, 3, 9]))[1]
    # Batched CPU matmuls may round differently; images must agree to within one level.
    assert np.abs(alone.astype(int) - in_batch.astype(int)).max() <= 1


def test_generating_many_prompts_in_one_batch_matches_one_prompt_at_a_time(tiny_model):
    mixed = generate_many(tiny_model, [("japan flag", 3), ("ireland flag", 4), ("japan flag", 5)])
    assert [(g.prompt, g.seed) for g in mixed] == [("japan flag", 3), ("ireland flag", 4), ("japan flag", 5)]
    japan = _arrays(generate(tiny_model, "japan flag", [3, 5]))
    ireland = _arrays(generate(tiny_model, "ireland flag", [4]))
    for got, want in zip(_arrays(mixed), [japan[0], ireland[0], japan[1]]):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="empty"):
        generate_many(tiny_model, [("japan flag", 0), ("  ", 1)])


def test_grid_has_one_cell_per_image(tiny_model):
    gens = generate(tiny_model, "ireland flag", [0, 1, 2])
    grid = image_grid([g.image for g in gens], [str(g.seed) for g in gens], cols=2, cell=32)
    assert grid.width == 2 * (32 + 4) + 4 and grid.height == 2 * (32 + 14 + 4) + 4


def test_disabling_fixes_restores_base_outputs_bit_identically(tiny_model):
    base = _arrays(generate(tiny_model, "ireland flag", [0, 1]))
    base_weights = {k: v.clone() for k, v in base_state_dict(tiny_model.pipe.transformer).items()}
    fingerprint = base_fingerprint(tiny_model.pipe.transformer)
    fixes = FixManager(tiny_model)
    _perturb_fix(fixes, "fix-a")
    fixed = _arrays(generate(tiny_model, "ireland flag", [0, 1]))
    assert not np.array_equal(base[0], fixed[0])
    from core.unlearn.remember_store import model_state

    with_fix = model_state(tiny_model, fixes).digest
    with fixes.disabled():
        again = _arrays(generate(tiny_model, "ireland flag", [0, 1]))
        # What acts now is the base model (the store's key says so), though the fix stays enabled.
        assert fixes.active == [] and fixes.fixes["fix-a"].enabled
        assert model_state(tiny_model, fixes).digest == model_state(tiny_model, None).digest != with_fix
    assert all(np.array_equal(x, y) for x, y in zip(base, again))
    assert [f.name for f in fixes.active] == ["fix-a"] and model_state(tiny_model, fixes).digest == with_fix
    fixes.set_enabled("fix-a", False)
    assert all(np.array_equal(x, y) for x, y in zip(base, _arrays(generate(tiny_model, "ireland flag", [0, 1]))))
    # the base weights were never written, and the fingerprint ignores the adapters
    after = base_state_dict(tiny_model.pipe.transformer)
    assert after.keys() == base_weights.keys() and all(torch.equal(after[k], base_weights[k]) for k in after)
    assert base_fingerprint(tiny_model.pipe.transformer) == fingerprint


def test_fixes_stack_and_remove(tiny_model):
    fixes = FixManager(tiny_model)
    _perturb_fix(fixes, "one", seed=1)
    only_one = _arrays(generate(tiny_model, "ireland flag", [0]))[0]
    _perturb_fix(fixes, "two", seed=2)
    both = _arrays(generate(tiny_model, "ireland flag", [0]))[0]
    assert not np.array_equal(only_one, both)
    fixes.remove("two")
    assert np.array_equal(only_one, _arrays(generate(tiny_model, "ireland flag", [0]))[0])


def test_a_muted_fix_adds_nothing_and_the_other_fixes_keep_acting(tiny_model):
    """FixManager.muted(name): remember_target "model"'s reference, the model as before that fix."""
    fixes = FixManager(tiny_model)
    base = _arrays(generate(tiny_model, "ireland flag", [0, 1]))
    _perturb_fix(fixes, "earlier", seed=1)
    earlier_only = _arrays(generate(tiny_model, "ireland flag", [0, 1]))
    _perturb_fix(fixes, "new", seed=2)
    both = _arrays(generate(tiny_model, "ireland flag", [0, 1]))
    assert not np.array_equal(earlier_only[0], both[0])
    with fixes.muted("new"):
        muted = _arrays(generate(tiny_model, "ireland flag", [0, 1]))
        # nothing was switched: both fixes stay enabled and active (the store's key is unchanged)
        assert [f.name for f in fixes.active] == ["earlier", "new"]
    assert all(np.array_equal(x, y) for x, y in zip(earlier_only, muted))
    assert all(np.array_equal(x, y) for x, y in zip(both, _arrays(generate(tiny_model, "ireland flag", [0, 1]))))
    with fixes.muted("new", "earlier"):  # every fix muted: the base model's outputs
        assert all(np.array_equal(x, y) for x, y in zip(base, _arrays(generate(tiny_model, "ireland flag", [0, 1]))))
    with pytest.raises(AdapterError):
        with fixes.muted("missing"):
            pass


def test_saved_fix_loads_in_stock_pipeline_and_reproduces_outputs(tiny_model, tiny_model_dir, tmp_path):
    from diffusers import StableDiffusion3Pipeline

    from core.models import ModelInfo, wrap_pipeline

    fixes = FixManager(tiny_model)
    _perturb_fix(fixes, "fix-save")
    expected = _arrays(generate(tiny_model, "flag of japan", [0, 4]))
    path = fixes.save("fix-save", tmp_path / "lora")
    assert path.name == "pytorch_lora_weights.safetensors"

    stock = StableDiffusion3Pipeline.from_pretrained(str(tiny_model_dir), text_encoder_3=None, tokenizer_3=None)
    stock.load_lora_weights(str(tmp_path / "lora"))  # the plain diffusers call a user would make
    got = _arrays(generate(wrap_pipeline(stock, tiny_model.info), "flag of japan", [0, 4]))
    assert all(np.abs(x.astype(int) - y.astype(int)).max() <= 1 for x, y in zip(expected, got))
    # and through the manager, under another name
    fresh = FixManager(wrap_pipeline(StableDiffusion3Pipeline.from_pretrained(
        str(tiny_model_dir), text_encoder_3=None, tokenizer_3=None), ModelInfo(**vars(tiny_model.info))))
    fresh.load(path, "reloaded")
    got2 = _arrays(generate(fresh.model, "flag of japan", [0, 4]))
    assert all(np.abs(x.astype(int) - y.astype(int)).max() <= 1 for x, y in zip(expected, got2))


def test_bad_fix_files_are_refused_and_leave_the_model_unchanged(tiny_model, tmp_path):
    fixes = FixManager(tiny_model)
    base = _arrays(generate(tiny_model, "ireland flag", [0]))[0]
    pickle_file = tmp_path / "evil.bin"
    pickle_file.write_bytes(b"\x80\x04not a real pickle")
    with pytest.raises(AdapterError, match="safetensors"):
        fixes.load(pickle_file, "evil")
    cut = tmp_path / "cut.safetensors"
    _perturb_fix(fixes, "donor")
    full = fixes.save("donor", tmp_path / "donor")
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AdapterError, match="corrupt|unreadable"):
        fixes.load(cut, "cut")
    nan_file = tmp_path / "nan.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.full((4, 4), float("nan"))}, str(nan_file))
    with pytest.raises(AdapterError, match="NaN"):
        fixes.load(nan_file, "nan")
    fixes.remove("donor")
    assert set(fixes.fixes) == set()
    assert np.array_equal(base, _arrays(generate(tiny_model, "ireland flag", [0]))[0])


def test_fix_names_are_checked(tiny_model):
    fixes = FixManager(tiny_model)
    for bad in ("../x", "a.b", "", "x" * 81):
        with pytest.raises(AdapterError):
            fixes.create(bad)


def test_comparison_figures_side_by_side_and_stacked_hold_the_same_three_grids():
    from PIL import Image

    from core.compare import PromptComparison, comparison_figure, comparison_panels, stacked_comparison_figure
    from core.generate import Generated

    def gens(colour):
        return [Generated("p", s, Image.new("RGB", (16, 16), colour), torch.zeros(1), torch.zeros(1)) for s in (0, 1, 2)]

    cmps = [PromptComparison(p, [0, 1, 2], gens("red"), gens("blue"), {s: {"mean_abs_diff": 0.5} for s in (0, 1, 2)})
            for p in ("a", "b")]
    panels = comparison_panels(cmps[0], highlight_seed=1, cell=32)
    assert len(panels) == 3 and len({p.size for p in panels}) == 1
    w, h = panels[0].size
    assert comparison_figure(cmps[0], 1, cell=32).size == (3 * w + 2 * 8, h)
    stacked = stacked_comparison_figure(cmps, {"a": 1}, cell=32, top=30)
    assert stacked.size == (w, 30 + 6 * h + 5 * 8)
    # red vs blue differs by the heatmap's maximum everywhere: bright yellow cells, none in "before"
    def yellow(img):
        a = np.asarray(img.convert("RGB")).astype(int)
        return int(((a[..., 0] > 200) & (a[..., 1] > 200) & (a[..., 2] < 200)).sum())

    assert yellow(panels[2]) >= 3 * 16 * 16 and yellow(panels[0]) == 0
