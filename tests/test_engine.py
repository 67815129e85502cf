"""The CLI engine (core/engine): a command it answers gives the same files and JSON as a one-shot
command, the model is the base model again after every command, and the engine refuses what it
cannot answer faithfully (other code, other settings) so the client runs the command itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="the engine listens on a Unix socket")


def _env(sock) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "UNLEARN_ENGINE": str(sock)}


def _cli(env, *argv, cwd=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "core.cli", *map(str, argv)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _start_engine(sock: Path, model, *extra, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "engine", "--model", str(model), "--device", "cpu",
                             *extra], env=_env(sock), stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "engine ready" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "engine did not start"
        time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    folder = Path(tempfile.mkdtemp(prefix="ue-", dir="/tmp"))  # AF_UNIX paths must stay short
    sock, log = folder / "e.sock", folder / "engine.log"
    proc = _start_engine(sock, tiny_model_dir, log=log)
    yield {"sock": sock, "log": log, "proc": proc, "model": str(tiny_model_dir)}
    _stop(proc)
    shutil.rmtree(folder, ignore_errors=True)


def _pixels(folder: Path) -> dict:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("seed-*.png"))}


def test_engine_answers_as_a_one_shot_command_and_gives_back_the_base_model(engine, tmp_path):
    m = ["--model", engine["model"], "--device", "cpu"]
    on, off = _env(engine["sock"]), _env("off")
    gen = ["generate", "--prompt", "ireland flag", "--seeds", "0-2", *m]
    # relative --out: the engine runs in the client's working folder
    first = _cli(on, *gen, "--out", "gen-engine", cwd=tmp_path)
    _cli(off, *gen, "--out", "gen-here", cwd=tmp_path)
    assert json.loads(first.stdout)["out"] == "gen-engine"
    assert "engine: generate -> exit 0" in engine["log"].read_text()
    engine_px, here_px = _pixels(tmp_path / "gen-engine"), _pixels(tmp_path / "gen-here")
    assert engine_px.keys() == here_px.keys() and all(np.array_equal(engine_px[k], here_px[k]) for k in engine_px)

    _cli(off, "surrogate", "--image", tmp_path / "gen-here/seed-0001.png", "--kind", "flip", "--out", tmp_path / "s.png")
    fix = ["unlearn", "--prompt", "ireland flag", "--seed", 1, "--surrogate", tmp_path / "s.png", "--steps", 4,
           "--remember-size", 4, "--no-stop-when-fixed", *m]
    done = _cli(on, *fix, "--out", tmp_path / "a/RUN")
    assert "remember set: 4 (0 reused)" in done.stderr and "unlearning" in done.stderr  # progress reaches the client
    _cli(off, *fix, "--out", tmp_path / "b/RUN")
    from safetensors.torch import load_file

    lora_engine, lora_here = (load_file(tmp_path / f"{r}/RUN/pytorch_lora_weights.safetensors") for r in "ab")
    assert lora_engine.keys() == lora_here.keys()
    assert all(np.allclose(lora_engine[k].numpy(), lora_here[k].numpy(), atol=1e-6) for k in lora_engine)
    assert json.loads(done.stdout)["steps_done"] == 4

    # a fix trained and one stacked with --on are gone again: the next command draws the base model
    _cli(on, *fix, "--on", tmp_path / "a/RUN", "--out", tmp_path / "c/RUN")
    _cli(on, *gen, "--out", tmp_path / "gen-after")
    after = _pixels(tmp_path / "gen-after")
    assert all(np.array_equal(after[k], here_px[k]) for k in here_px)


def test_engine_usage_errors_and_help_end_the_command_not_the_engine(engine, tmp_path):
    on = _env(engine["sock"])
    bad = _cli(on, "generate", "--seeds", "0-1", check=False)  # --out missing: argparse exits 2
    assert bad.returncode == 2 and "--out" in bad.stderr
    assert "usage: unlearn-studio generate" in _cli(on, "generate", "--help").stdout
    err = _cli(on, "generate", "--prompt", "x", "--model", tmp_path / "none", "--out", tmp_path / "g", check=False)
    assert err.returncode == 1 and err.stderr.startswith("error:") and "none" in err.stderr
    assert engine["proc"].poll() is None
    assert _cli(on, "generate", "--prompt", "x", "--seeds", "0", "--model", engine["model"], "--out", tmp_path / "ok")


def test_engine_refuses_other_settings_and_the_client_runs_the_command_itself(engine, tmp_path):
    env = {**_env(engine["sock"]), "UNLEARN_SSCD_PATH": str(tmp_path / "other-sscd.pt")}
    done = _cli(env, "generate", "--prompt", "x", "--seeds", "0", "--model", engine["model"], "--out", tmp_path / "g")
    assert "UNLEARN_SSCD_PATH" in done.stderr and "running the command here instead" in done.stderr
    assert (tmp_path / "g/seed-0000.png").exists()


def test_a_client_that_leaves_stops_its_command_and_the_next_one_runs(engine, tmp_path):
    on = _env(engine["sock"])
    _cli(on, "generate", "--prompt", "x", "--seeds", "0", "--model", engine["model"], "--out", tmp_path / "g")
    _cli(on, "surrogate", "--image", tmp_path / "g/seed-0000.png", "--kind", "flip", "--out", tmp_path / "s.png")
    client = subprocess.Popen([sys.executable, "-m", "core.cli", "unlearn", "--prompt", "x", "--seed", "0",
                               "--surrogate", str(tmp_path / "s.png"), "--steps", "1000", "--remember-size", "4",
                               "--no-stop-when-fixed", "--model", engine["model"], "--out", str(tmp_path / "r/RUN")],
                              env=on, stderr=subprocess.PIPE, text=True)
    line = ""
    while "unlearning:" not in line:  # training has started
        line = client.stderr.read(64) if client.poll() is None else pytest.fail("the fix ended early")
    # one command at a time: a second client is told it waits, and runs once the first has gone
    second = subprocess.Popen([sys.executable, "-m", "core.cli", "generate", "--prompt", "x", "--seeds", "0",
                               "--model", engine["model"], "--out", str(tmp_path / "g3")],
                              env=on, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    client.kill()
    client.wait()
    assert second.wait(120) == 0
    assert "is busy with another command; waiting" in second.stderr.read()
    deadline = time.monotonic() + 60
    while "unlearn stopped: the client left" not in engine["log"].read_text():
        assert time.monotonic() < deadline, engine["log"].read_text()
        time.sleep(0.2)
    assert not (tmp_path / "r/RUN/pytorch_lora_weights.safetensors").exists()
    assert _cli(on, "generate", "--prompt", "x", "--seeds", "0", "--model", engine["model"], "--out", tmp_path / "g2")
    assert np.array_equal(_pixels(tmp_path / "g")["seed-0000.png"], _pixels(tmp_path / "g2")["seed-0000.png"])


def test_no_engine_stale_socket_and_off_run_the_command_here(tmp_path, monkeypatch):
    from core.engine.client import delegate

    folder = Path(tempfile.mkdtemp(prefix="ue-", dir="/tmp"))
    sock = folder / "e.sock"
    monkeypatch.setenv("UNLEARN_ENGINE", str(sock))
    assert delegate(["generate", "--out", "x"]) is None  # nothing there
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(sock))
    dead.close()  # the file stays, nobody listens: what a killed engine leaves
    assert sock.exists() and delegate(["generate", "--out", "x"]) is None
    monkeypatch.setenv("UNLEARN_ENGINE", "off")
    assert delegate(["generate", "--out", "x"]) is None
    shutil.rmtree(folder)


def test_engine_options_are_checked_and_a_second_engine_is_refused(engine, tiny_model_dir):
    from core.engine.server import EngineOptions

    with pytest.raises(ValueError, match="--socket .* choose a shorter path"):
        EngineOptions(socket=Path("/tmp/" + "x" * 120))
    with pytest.raises(ValueError, match="--idle-minutes 0"):
        EngineOptions(socket=Path("/tmp/e.sock"), idle_minutes=0)
    second = _cli(_env(engine["sock"]), "engine", "--model", tiny_model_dir, "--device", "cpu", check=False)
    assert second.returncode == 1 and "an engine already answers at" in second.stderr


def test_an_idle_engine_stops_and_removes_its_socket(tiny_model_dir):
    folder = Path(tempfile.mkdtemp(prefix="ue-", dir="/tmp"))
    sock, log = folder / "e.sock", folder / "engine.log"
    proc = _start_engine(sock, tiny_model_dir, "--idle-minutes", "0.1", log=log)
    try:
        assert sock.exists()
        proc.wait(60)
        assert proc.returncode == 0 and "idle for 0.1 minutes" in log.read_text() and not sock.exists()
    finally:
        _stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_cli_reaches_an_engine_before_importing_torch():
    probe = ("import sys, core.cli; from core.models.loading import EMBEDDED, FACES; "
             "print((core.cli.EMBEDDED, core.cli.FACES) == (EMBEDDED, FACES))")
    before = ("import sys, core.cli; print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", before], env=env, capture_output=True, text=True).stdout.strip() == "False"
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout.strip() == "True"


@pytest.mark.parametrize("kind", ["sd3", "ddpm"])
def test_strip_adapters_gives_back_the_base_model(kind, tiny_model_dir, ddpm_dir):
    import torch

    from core.adapters import FixManager, strip_adapters
    from core.generate import generate
    from core.models import load_model

    model = load_model(str(tiny_model_dir if kind == "sd3" else ddpm_dir))
    prompt = "x" if kind == "sd3" else ""
    base = generate(model, prompt, [0])[0].image
    fixes = FixManager(model)
    for name in ("a", "b"):
        with torch.no_grad():
            for p in fixes.create(name):
                p.add_(0.5 * torch.randn_like(p))
    assert not np.array_equal(np.asarray(generate(model, prompt, [0])[0].image), np.asarray(base))
    strip_adapters(model)
    assert not getattr(model.denoiser, "peft_config", None)
    assert not any(p.requires_grad for p in model.denoiser.parameters())
    assert np.array_equal(np.asarray(generate(model, prompt, [0])[0].image), np.asarray(base))


def test_warm_models_know_a_folder_by_its_full_path_and_its_files(tiny_model_dir, tmp_path, monkeypatch):
    from core.engine.server import WarmModels
    from core.models.loading import LoadOptions

    for side in ("a", "b"):
        shutil.copytree(tiny_model_dir, tmp_path / side / "model")
    models = WarmModels(keep=2)
    monkeypatch.chdir(tmp_path / "a")
    first = models.get("model", LoadOptions(device="cpu"))
    assert models.get("model", LoadOptions(device="cpu")) is first
    monkeypatch.chdir(tmp_path / "b")  # the same words from another folder: another model
    second = models.get("model", LoadOptions(device="cpu"))
    assert second is not first and Path(second.location).resolve().parent == (tmp_path / "b").resolve()
    # a folder rebuilt in place is loaded again
    weights = next((tmp_path / "b" / "model").rglob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert models.get("model", LoadOptions(device="cpu")) is not second
