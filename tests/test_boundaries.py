"""Typed boundaries: surrogate parameters, UnlearnConfig, per-operation requests, and core free of the GUI."""

import ast
from pathlib import Path

import pytest
from PIL import Image

from core.cli import build_parser, surrogate_values
from core.requests import CompareRequest, GenerateRequest, RelapseRequest, StudioOptions
from core.surrogates import SURROGATE_KINDS, SURROGATES, NoiseParams, SDEditParams, make_surrogate, param_spec
from core.surrogates.checks import canvas_surrogate, require_changed
from core.unlearn.config import CHOICES, METHODS, UNSET, UnlearnConfig

ROOT = Path(__file__).resolve().parents[1]


def _img(size=8):
    img = Image.new("RGB", (size, size), (0, 120, 0))
    img.paste((255, 255, 255), (size // 2, 0, size, size))
    return img


# -- surrogate parameters --------------------------------------------------------------------
def test_unknown_surrogate_parameter_is_an_error_not_a_silent_default():
    with pytest.raises(ValueError, match="no parameter 'sigm'.*sigma, seed"):
        make_surrogate("noise", _img(), None, {"sigm": 0.5})
    with pytest.raises(ValueError, match="no parameter 'sigma'"):
        make_surrogate("flip", _img(), None, {"sigma": 0.5})


@pytest.mark.parametrize("kind,values,match", [
    ("noise", {"sigma": 0}, r"noise.sigma=0: out of range; choose a value in \(0, 1\]"),
    ("noise", {"seed": -1}, r"noise.seed=-1"),
    ("noise", {"seed": 2.5}, r"whole number"),
    ("sdedit", {"strength": 1.5}, r"sdedit.strength=1.5"),
    ("sdedit", {"steps": 2.5}, r"sdedit.steps=2.5: must be a whole number"),
    ("clip", {"text": "x", "clip_weight": 100}, r"clip.clip_weight=100"),
    ("clip", {"text": "  "}, r"clip.text is empty"),
    ("paint", {"layers": ["not an image"]}, r"paint.layers\[0\]"),
])
def test_surrogate_parameters_are_range_checked_naming_the_field(kind, values, match):
    with pytest.raises(ValueError, match=match):
        SURROGATES[kind].params(values)


def test_every_maker_registers_a_frozen_params_class_with_help():
    from dataclasses import fields

    for kind, maker in SURROGATES.items():
        assert maker.params_type.kind == kind
        for f in fields(maker.params_type):
            assert param_spec(maker.params_type, f.name)["help"], (kind, f.name)
    with pytest.raises(Exception):
        NoiseParams().sigma = 0.5  # frozen: a made surrogate's parameters cannot drift


def test_cli_surrogate_flags_come_from_the_dataclass_metadata():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["surrogate"]
    actions = {a.dest: a for a in sub._actions}
    assert tuple(actions["kind"].choices) == SURROGATE_KINDS
    assert param_spec(SDEditParams, "strength")["help"] in actions["strength"].help
    assert "(0, 1]" in actions["sigma"].help and actions["sigma"].type is float
    args = parser.parse_args(["surrogate", "--image", "a.png", "--kind", "flip", "--sigma", "0.3", "--out", "b.png"])
    with pytest.raises(ValueError, match="--sigma does not apply to --kind flip"):
        surrogate_values(args)
    args = parser.parse_args(["surrogate", "--image", "a.png", "--kind", "noise", "--sigma", "0.3", "--out", "b.png"])
    assert surrogate_values(args) == {"sigma": 0.3}


def test_identical_surrogate_and_blank_canvas_rules_live_in_core():
    flat = Image.new("RGB", (8, 8), (10, 10, 10))
    with pytest.raises(ValueError, match="identical"):
        make_surrogate("flip", flat)  # a symmetric image flips onto itself
    with pytest.raises(ValueError, match="identical"):
        require_changed(flat, flat.copy())
    img = _img()
    big = img.resize((32, 32), Image.NEAREST)
    # Blank: transparent RGBA layers and an all-black layer without alpha paint nothing.
    blank = [Image.new("RGBA", (32, 32), (255, 0, 0, 0)), Image.new("RGB", (32, 32))]
    with pytest.raises(ValueError, match="canvas is empty"):
        canvas_surrogate(img, big, blank, 8)
    edited = big.copy()
    edited.paste((255, 0, 0), (0, 0, 8, 8))  # an uploaded, already edited background is a surrogate
    sur = canvas_surrogate(img, edited, blank, 8)
    assert sur.image.size == (8, 8) and sur.info["uploaded"] is True
    layer = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    layer.paste((0, 0, 255, 255), (0, 0, 4, 4))
    sur = canvas_surrogate(img, big, [layer], 8)
    assert sur.image.getpixel((0, 0)) == (0, 0, 255) and sur.image.getpixel((7, 7)) == img.getpixel((7, 7))
    assert sur.info["canvas"] == "32px" and sur.info["changed_fraction_canvas"] > 0


# -- UnlearnConfig ----------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("lora_alpha", 0.0), ("logit_std", 0.0), ("weight_decay", -0.1), ("sampling_steps", 0), ("guidance", -1.0),
    ("neggrad_weight", 0.0), ("erasediff_eta", -0.5), ("siss_scaling_norm", 0.0), ("remember_seed_start", -1),
    ("steps", 2.5), ("lora_rank", True), ("stop_when_fixed", 1), ("learning_rate", float("nan")),
    ("remember_prompts", "ireland flag"), ("flagged_prompt_share", 0.0), ("method", "magic"),
])
def test_config_validates_every_field_naming_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"UnlearnConfig\.{field}="):
        UnlearnConfig(**{field: value})


def test_settle_patience_without_keep_best_is_refused_not_silently_inert():
    # Patience waits on the state the guard keeps; with keep_best off nothing is kept.
    with pytest.raises(ValueError, match=r"UnlearnConfig\.settle_patience=10: set keep_best true"):
        UnlearnConfig(settle_steps=60, settle_patience=10, keep_best=False)
    UnlearnConfig(settle_steps=60, settle_patience=0, keep_best=False)  # settles all 60: fine
    UnlearnConfig(settle_steps=60, settle_patience=10, keep_best=False, stop_when_fixed=False)  # no settling at all


def test_with_overrides_tells_not_given_from_an_explicit_reset():
    cfg = UnlearnConfig(flagged_prompt_share=0.4, sampling_steps=8)
    assert cfg.with_overrides(flagged_prompt_share=UNSET).flagged_prompt_share == 0.4
    reset = cfg.with_overrides(flagged_prompt_share=None, sampling_steps=None)
    assert reset.flagged_prompt_share is None and reset.sampling_steps is None
    with pytest.raises(ValueError, match="UnlearnConfig.steps=None"):
        cfg.with_overrides(steps=None)  # None is a value: only optional fields accept it


def test_cli_choices_and_reset_read_the_config():
    parser = build_parser()
    args = parser.parse_args(["unlearn", "--prompt", "p", "--seed", "0", "--surrogate", "s.png", "--out", "o",
                              "--method", "siss", "--flagged-prompt-share", "none"])
    from core.cli import _unlearn_overrides

    assert _unlearn_overrides(args) == {"method": "siss", "flagged_prompt_share": None}
    args = parser.parse_args(["unlearn", "--prompt", "p", "--seed", "3", "--surrogate", "s", "--out", "o", "--train-seed", "7"])
    assert args.seed == 3 and _unlearn_overrides(args) == {"seed": 7}
    args = parser.parse_args(["unlearn", "--seed", "3", "--surrogate", "s", "--out", "o", "--forget-snr-gamma", "5"])
    assert _unlearn_overrides(args) == {"forget_snr_gamma": 5.0}
    args = parser.parse_args(["unlearn", "--seed", "3", "--surrogate", "s", "--out", "o", "--earlier-forget-samples", "1"])
    assert _unlearn_overrides(args) == {"earlier_forget_samples": 1}
    sub = parser._subparsers._group_actions[0].choices["unlearn"]
    actions = {a.dest.removeprefix("cfg_"): a for a in sub._actions}
    assert tuple(actions["method"].choices) == METHODS == CHOICES["method"]
    assert tuple(actions["surgery"].choices) == CHOICES["surgery"]
    assert actions["steps"].help == UnlearnConfig.help()["steps"]
    with pytest.raises(SystemExit):
        parser.parse_args(["unlearn", "--prompt", "p", "--seed", "0", "--surrogate", "s", "--out", "o", "--method", "x"])


def test_method_registry_matches_the_one_list_of_names():
    from core.unlearn.methods import METHODS as REGISTRY

    assert tuple(REGISTRY) == METHODS


# -- per-operation requests -------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: GenerateRequest("", (0,)), "generate.prompt"),
    (lambda: GenerateRequest("p", ()), "generate.seeds is empty"),
    (lambda: GenerateRequest("p", (0,), steps=2.5), "generate.steps=2.5"),
    (lambda: GenerateRequest("p", (0,), guidance=-1.0), "generate.guidance=-1.0"),
    (lambda: CompareRequest(("p",), (-1,)), "compare.seeds contains -1"),
    (lambda: CompareRequest(("p",), (0,), highlight={"p": "3"}), r"compare.highlight\['p'\]"),
    (lambda: RelapseRequest("p", 0, ()), "relapse.fixes is empty"),
    (lambda: StudioOptions(port=70000), "studio.port=70000"),
])
def test_requests_fail_before_any_work_naming_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- core never imports the GUI ---------------------------------------------------------------
def test_core_never_imports_gui_or_gradio():
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] not in ("gui", "gradio"), f"{path} imports {name}"


def test_studio_command_is_served_by_the_launcher_not_core(capsys):
    from core.cli import main

    assert main(["studio", "--port", "7861"]) == 1
    assert "gui.launcher" in capsys.readouterr().err
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["unlearn-studio"] == "gui.launcher:main"


def test_twin_patience_without_keep_best_is_refused_not_silently_inert():
    from core.unlearn.config import UnlearnConfig

    with pytest.raises(ValueError, match=r"UnlearnConfig\.twin_patience=10: set keep_best true"):
        UnlearnConfig(twin_seeds=4, twin_patience=10, keep_best=False)
    UnlearnConfig(twin_seeds=4, twin_patience=10, keep_best=False, stop_when_fixed=False)  # runs every step anyway
