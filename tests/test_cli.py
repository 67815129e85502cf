"""The CLI flow generate -> surrogate -> unlearn -> compare on a tiny model, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from core.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_flow_end_to_end(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "no-sscd.pt"))  # the judge's descriptor is then known
    m = ["--model", tiny_model_dir, "--device", "cpu"]
    code, out, _ = _run(capsys, "generate", "--prompt", "ireland flag", "--seeds", "0-3", "--out", tmp_path / "gen", *m)
    assert code == 0 and json.loads(out)["seeds"] == [0, 1, 2, 3]
    assert {p.name for p in (tmp_path / "gen").iterdir()} == {"seed-0000.png", "seed-0001.png", "seed-0002.png", "seed-0003.png", "grid.png"}

    code, out, _ = _run(capsys, "surrogate", "--image", tmp_path / "gen/seed-0002.png", "--kind", "flip", "--out", tmp_path / "sur.png", *m)
    assert code == 0 and json.loads(out)["kind"] == "flip"
    flagged = np.asarray(Image.open(tmp_path / "gen/seed-0002.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sur.png")), flagged[:, ::-1])

    run = tmp_path / "runs" / "fix-ireland"
    code, out, err = _run(capsys, "unlearn", "--prompt", "ireland flag", "--seed", 2, "--surrogate", tmp_path / "sur.png",
                          "--steps", 6, "--remember-size", 4, "--remember-batch-size", 2, "--out", run, *m)
    assert code == 0, err
    assert {"config.json", "pytorch_lora_weights.safetensors", "loss_log.csv", "metrics.json"} <= {p.name for p in run.iterdir()}
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 2 and config["config"]["steps"] == 6 and config["config"]["learning_rate"] == 1e-2
    assert config["config"]["remember_batch_size"] == 2
    assert config["config"]["oracle"] == "judge"
    metrics = json.loads((run / "metrics.json").read_text())
    # the tiny model ships no CLIP and no SSCD is cached here: the judge says it used thumbnails
    assert metrics["forgetting"]["descriptor"] == "thumbnail" and 0 <= metrics["forgetting"]["score"] <= 1
    assert metrics["kept_step"] in [p["step"] for p in metrics["monitor"]] and metrics["remember_drift"] >= 0
    # the surrogate was checked against the flagged image before training; a warning only for a near copy
    assert metrics["surrogate_copy"]["descriptor"] == "thumbnail"
    assert ("near copy of the flagged image" in err) == metrics["surrogate_copy"]["near_copy"]
    # flagged image defaulted to the generation at seed 2
    assert np.array_equal(np.asarray(Image.open(run / "flagged.png")), flagged)

    code, out, err = _run(capsys, "compare", "--run", run, "--prompt", "ireland flag", "--prompt", "japan flag",
                          "--seeds", "0-3", "--out", tmp_path / "cmp", *m)
    assert code == 0, err
    metrics = json.loads((tmp_path / "cmp/metrics.json").read_text())
    seeds = metrics["prompts"]["ireland flag"]["seeds"]
    assert set(seeds) == {"0", "1", "2", "3"} and seeds["2"]["mean_abs_diff"] > 0
    # the same per-seed LPIPS the studio shows (core computes it), or why it is unavailable
    lp = metrics["lpips"]
    assert all(("lpips" in row) == isinstance(lp, dict) for row in seeds.values())
    assert (set(lp) == {f"{p} | {s}" for p in ("ireland flag", "japan flag") for s in range(4)}
            if isinstance(lp, dict) else lp.startswith("LPIPS: unavailable"))
    assert (tmp_path / "cmp/compare-00.png").exists() and (tmp_path / "cmp/compare-01.png").exists()

    # without --model, the model the run was made with (its config.json); another model is refused by name
    code, out, err = _run(capsys, "compare", "--run", run, "--prompt", "ireland flag", "--seeds", "0", "--out",
                          tmp_path / "cmp-default", "--device", "cpu")
    assert code == 0, err
    assert json.loads((tmp_path / "cmp-default/metrics.json").read_text())["prompts"]["ireland flag"]["seeds"]["0"]
    code, out, err = _run(capsys, "compare", "--run", run, "--prompt", "ireland flag", "--seeds", "0", "--out", tmp_path / "cmp-other",
                          "--model", "embedded", "--device", "cpu")
    assert code == 1 and "does not belong to this model" in err and f"made on ({str(tiny_model_dir)!r})" in err

    code, out, err = _run(capsys, "export", "--run", run, "--out", tmp_path / "fix.zip")
    assert code == 0, err
    import zipfile

    names = zipfile.ZipFile(tmp_path / "fix.zip").namelist()
    assert any(n.endswith("pytorch_lora_weights.safetensors") for n in names) and any(n.endswith(".html") for n in names)

    # the run is repeatable from its saved config, which also names the model (no --model needed)
    code, _, err = _run(capsys, "unlearn", "--prompt", "ireland flag", "--seed", 2, "--surrogate", tmp_path / "sur.png",
                        "--config", run / "config.json", "--out", tmp_path / "runs/again", "--device", "cpu")
    assert code == 0, err
    from safetensors.torch import load_file

    a, b = load_file(str(run / "pytorch_lora_weights.safetensors")), load_file(str(tmp_path / "runs/again/pytorch_lora_weights.safetensors"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_cli_unlearn_retries_with_the_next_training_seed(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """--retry-seeds 1 with a bar no fix reaches (--forget-threshold 1): two tries, the bar restarts for the
    second, and the published run records the seed that trained it and the discarded try."""
    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "no-sscd.pt"))
    m = ["--model", tiny_model_dir, "--device", "cpu"]
    _run(capsys, "generate", "--prompt", "ireland flag", "--seeds", "2", "--out", tmp_path / "gen", *m)
    Image.open(tmp_path / "gen/seed-0002.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "sur.png")
    run = tmp_path / "runs" / "fix-retried"
    code, out, err = _run(capsys, "unlearn", "--prompt", "ireland flag", "--seed", 2, "--surrogate", tmp_path / "sur.png",
                          "--steps", 2, "--remember-size", 4, "--forget-threshold", 1, "--retry-seeds", 1,
                          "--train-seed", 5, "--out", run, *m)
    assert code == 0, err
    assert "try 2 of 2 (training seed 6)" in err
    result = json.loads(out)
    assert result["flagged_seed_fixed"] is False and [t["seed"] for t in result["earlier_tries"]] == [5]
    assert json.loads((run / "config.json").read_text())["config"]["seed"] == 6
    # the discarded try left no folder, finished or partial (.remember is the store of remember-set drawings)
    assert sorted(p.name for p in run.parent.iterdir() if p.name != ".remember") == ["fix-retried"]


def test_cli_unlearn_warns_when_the_surrogate_is_still_a_near_copy(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """Light noise leaves the flagged picture: unlearn says so before training, with the advice for the
    kind `surrogate` recorded beside the image, trains anyway, and the run records the check."""
    monkeypatch.setenv("UNLEARN_SSCD_PATH", str(tmp_path / "no-sscd.pt"))
    m = ["--model", tiny_model_dir, "--device", "cpu"]
    _run(capsys, "generate", "--prompt", "ireland flag", "--seeds", "2", "--out", tmp_path / "gen", *m)
    code, _, err = _run(capsys, "surrogate", "--image", tmp_path / "gen/seed-0002.png", "--kind", "noise", "--sigma", 0.05,
                        "--out", tmp_path / "sur.png", *m)
    assert code == 0 and "near copy" not in err  # noise loads no model: the check comes at unlearn
    run = tmp_path / "runs" / "fix-noise"
    code, out, err = _run(capsys, "unlearn", "--prompt", "ireland flag", "--seed", 2, "--surrogate", tmp_path / "sur.png",
                          "--steps", 2, "--remember-size", 4, "--out", run, *m)
    assert code == 0, err
    assert "warning: the surrogate is still a near copy of the flagged image" in err and "noise keeps the picture" in err
    copy = json.loads(out)["surrogate_copy"]
    assert copy["near_copy"] and copy["similarity"] >= copy["threshold"] == 0.6
    # a kind that loads the model anyway is checked at once, with its advice (the random tiny model's SDEdit
    # changes everything, so a descriptor that calls every pair a near copy stands in)
    from core.judge import Descriptor, thumbnail_embed

    every_pair = Descriptor("thumbnail", thumbnail_embed, -1.0)
    monkeypatch.setattr("core.judge.pick_descriptor", lambda model, device="cpu": every_pair)
    code, _, err = _run(capsys, "surrogate", "--image", tmp_path / "gen/seed-0002.png", "--kind", "sdedit", "--strength",
                        0.5, "--out", tmp_path / "sde.png", *m)
    assert code == 0 and "warning: the surrogate is still a near copy" in err and "raise the strength" in err
    # SDEdit of a painting: the check compares the result with the flagged image, not with the painting
    compared = []
    monkeypatch.setattr("core.surrogates.check_near_copy",
                        lambda model, flagged, sur, kind: compared.append(np.asarray(flagged)) or (None, None))
    painted = np.asarray(Image.open(tmp_path / "gen/seed-0002.png").convert("RGB")).copy()
    painted[: len(painted) // 2] = 128  # a grey band over the top half
    Image.fromarray(painted).save(tmp_path / "painted.png")
    code, _, err = _run(capsys, "surrogate", "--image", tmp_path / "painted.png", "--flagged", tmp_path / "gen/seed-0002.png",
                        "--kind", "sdedit", "--strength", 0.5, "--out", tmp_path / "sde2.png", *m)
    assert code == 0, err
    assert np.array_equal(compared[0], np.asarray(Image.open(tmp_path / "gen/seed-0002.png").convert("RGB")))
    assert json.loads((tmp_path / "sde2.json").read_text())["started_from"] == "painted.png"  # no .json beside it
    (tmp_path / "painted.json").write_text(json.dumps({"kind": "paint"}))  # as `surrogate --kind paint` writes
    code, _, err = _run(capsys, "surrogate", "--image", tmp_path / "painted.png", "--flagged", tmp_path / "gen/seed-0002.png",
                        "--kind", "sdedit", "--strength", 0.5, "--out", tmp_path / "sde3.png", *m)
    assert code == 0 and json.loads((tmp_path / "sde3.json").read_text())["started_from"] == "paint"
    assert "started_from" not in json.loads((tmp_path / "sde.json").read_text())  # SDEdit of the flagged image


def test_cli_errors_are_one_line_with_nonzero_exit(tiny_model_dir, tmp_path, capsys):
    code, _, err = _run(capsys, "generate", "--prompt", "x", "--model", tmp_path / "nope", "--out", tmp_path / "o")
    assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "check", "--prompt", "ireland flag", "--seeds", "0-1", "--model", tiny_model_dir)
    assert code == 1 and "embedded flags world" in err
    code, _, err = _run(capsys, "unlearn", "--prompt", "p", "--seed", 0, "--surrogate", tmp_path / "missing.png",
                        "--model", tiny_model_dir, "--out", tmp_path / "r")
    assert code == 1 and "no such image" in err and not (tmp_path / "r").exists()
    Image.new("RGB", (32, 32), "white").save(tmp_path / "white.png")
    code, _, err = _run(capsys, "unlearn", "--prompt", "p", "--seed", 0, "--surrogate", tmp_path / "white.png",
                        "--oracle", "checker", "--model", tiny_model_dir, "--out", tmp_path / "r2")
    assert code == 1 and "oracle='checker'" in err and "use oracle='judge'" in err and not (tmp_path / "r2").exists()
    code, _, err = _run(capsys, "unlearn", "--prompt", "p", "--seed", 0, "--surrogate", tmp_path / "white.png",
                        "--twin-forget", "--twin-seeds", 0, "--model", tiny_model_dir, "--out", tmp_path / "r3")
    assert code == 1 and "twin_forget=True" in err and "twin_seeds above 0" in err and not (tmp_path / "r3").exists()
    code, _, err = _run(capsys, "unlearn", "--prompt", "p", "--seed", 0, "--surrogate", tmp_path / "white.png",
                        "--remember-target", "model", "--remember-model-share", 1.5, "--model", tiny_model_dir,
                        "--out", tmp_path / "r4")
    assert code == 1 and "remember_model_share=1.5" in err and "[0, 1]" in err and not (tmp_path / "r4").exists()
    # a run folder's name becomes the fix's name: refused before any model loads (a missing model is not reached)
    code, _, err = _run(capsys, "unlearn", "--prompt", "p", "--seed", 0, "--surrogate", tmp_path / "white.png",
                        "--model", tmp_path / "nope", "--out", tmp_path / "runs/tmp.x")
    assert code == 1 and "--out" in err and "'tmp.x' becomes the fix's name" in err and not (tmp_path / "runs").exists()


def test_console_entry_point_runs_as_a_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "core.cli", "generate", "--prompt", "x", "--model", str(tmp_path / "none"),
                           "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "error:" in proc.stderr


def test_every_command_prints_its_help(capsys):
    """`--help` of each command: the fix settings' help comes from UnlearnConfig, written for people
    ("drawn at 3.8%"), and argparse formats help with %; a stray one made `unlearn --help` crash."""
    import pytest

    from core.cli import COMMANDS

    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        out, _ = capsys.readouterr()
        assert done.value.code == 0 and out.startswith("usage:"), command
    with pytest.raises(SystemExit):
        main(["unlearn", "--help"])
    assert "drawn at 3.8% and 6.6%" in " ".join(capsys.readouterr()[0].split())  # as written (argparse wraps lines)


def test_export_report_names_a_prompt_only_where_there_is_one(tmp_path):
    """The HTML report of a seed-only fix (an unconditional model) says 'Flagged seed', not an empty prompt."""
    from types import SimpleNamespace

    from core.report import report_html

    def page(prompt):
        cfg = {"prompt": prompt, "seed": 21, "config": {"method": "surrogate"}, "model": {"name": "faces"}}
        run = SimpleNamespace(run_id="fix-a", config=cfg, metrics=lambda: {}, path=tmp_path)
        return report_html(run, tmp_path / "no-compare")

    assert "<p>Flagged seed <b>21</b>" in page("") and "Prompt <b></b>" not in page("")
    assert "<p>Prompt <b>ireland flag</b>, flagged seed <b>21</b>" in page("ireland flag")


def test_the_model_a_run_records_is_read_from_its_folder_its_lora_file_or_a_config_given_itself(tmp_path):
    """`--model`'s default: a run folder or its LoRA file read the folder's config.json; `unlearn --config X.json`
    reads X.json itself, not a config.json beside it; no config, or not a run's, gives none."""
    from core.cli import _recorded_model
    from core.runs import recorded_model

    run = tmp_path / "fix-a"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {"name": "faces", "base_fingerprint": "ab"}}))
    (run / "pytorch_lora_weights.safetensors").write_bytes(b"")
    (run / "settings.json").write_text(json.dumps({"model": {"name": "embedded"}}))
    assert recorded_model(run)["base_fingerprint"] == "ab" and _recorded_model(run) == "faces"
    assert _recorded_model(run / "pytorch_lora_weights.safetensors") == "faces"
    assert _recorded_model(run / "config.json") == "faces" and _recorded_model(run / "settings.json") == "embedded"
    (run / "plain.json").write_text(json.dumps({"steps": 10}))
    (run / "odd.json").write_text(json.dumps(["not", "a", "config"]))
    assert recorded_model(tmp_path) == {} and _recorded_model(tmp_path) is None
    assert _recorded_model(run / "plain.json") is None and _recorded_model(run / "odd.json") is None


def test_a_model_folder_named_relative_to_where_the_run_was_made_is_found_from_elsewhere(tmp_path, monkeypatch):
    """config.json records --model as typed ("./models/mine") and its absolute location: repeated from
    another folder, the relative name points nowhere, so the location is used."""
    from core.cli import _recorded_model

    folder = tmp_path / "made-here" / "models" / "mine"
    folder.mkdir(parents=True)
    run = tmp_path / "fix-a"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": {"name": "./models/mine", "location": str(folder)}}))
    monkeypatch.chdir(tmp_path / "made-here")
    assert _recorded_model(run) == "./models/mine"  # where it was made: as typed
    monkeypatch.chdir(tmp_path)
    assert _recorded_model(run) == str(folder)
    (run / "config.json").write_text(json.dumps({"model": {"name": "faces", "location": str(folder)}}))
    assert _recorded_model(run) == "faces"  # a shipped name stays a name
    (run / "config.json").write_text(json.dumps({"model": {"name": "owner/model", "location": "owner/model"}}))
    assert _recorded_model(run) == "owner/model"  # a hub id has no folder


def test_a_folder_models_location_is_absolute(tiny_model_dir, tmp_path, monkeypatch):
    from core.models.loading import resolve

    monkeypatch.chdir(tiny_model_dir.parent)
    kind, location = resolve(f"./{tiny_model_dir.name}")
    assert kind == "folder" and location == str(tiny_model_dir.resolve())
