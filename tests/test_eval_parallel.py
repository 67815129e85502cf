"""Evaluation split over 2 accelerate processes gathers every seed once, identical to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.evaluation import EvaluationError, assemble, launched_cpu_single_process

REPO = Path(__file__).resolve().parents[1]
PROMPT = "ireland flag"
SEEDS = list(range(6))


@pytest.fixture(scope="module")
def fix_run(tiny_model_dir, tmp_path_factory):
    """A run folder holding a non-trivial LoRA fix (random B) for the tiny model, with its base fingerprint."""
    from core.adapters import FixManager
    from core.models import load_model

    model = load_model(str(tiny_model_dir))
    fixes = FixManager(model)
    torch.manual_seed(0)
    fixes.create("fix1", rank=4)
    with torch.no_grad():
        for n, p in model.pipe.transformer.named_parameters():
            if ".fix1." in n and "lora_B" in n:
                p.normal_(0, 0.05)
    run = tmp_path_factory.mktemp("runs") / "fix1"
    run.mkdir()
    fixes.save("fix1", run)
    (run / "config.json").write_text(json.dumps({"model": {"base_fingerprint": model.fingerprint()}}))
    return run


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", ACCELERATE_DISABLE_RICH="1")
    for k in ("WORLD_SIZE", "LOCAL_RANK", "RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU"):
        env.pop(k, None)
    return env


def _run(cmd: list[str], out: Path) -> dict:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads((out / "eval.json").read_text())


def _args(model_dir, run, out) -> list[str]:
    return ["bench/eval_parallel.py", "--model", str(model_dir), "--prompt", PROMPT, "--seeds", "0-5",
            "--run", str(run), "--device", "cpu", "--threads", "1", "--out", str(out)]


def test_two_processes_gather_every_seed_once_and_match_one_process(tiny_model_dir, fix_run, tmp_path):
    # `accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is configured
    # (accelerate 1.x simple launcher); --multi_gpu on a machine without GPUs runs torchrun with 2 CPU
    # processes over gloo, which is what a real split needs.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    par = _run(launch + _args(tiny_model_dir, fix_run, tmp_path / "par"), tmp_path / "par")
    one = _run([sys.executable] + _args(tiny_model_dir, fix_run, tmp_path / "one"), tmp_path / "one")

    assert par["num_processes"] == 2 and one["num_processes"] == 1
    shares = [w["seeds"] for w in par["processes"]]
    assert len(shares) == 2 and all(shares), shares  # both processes rendered some seeds
    assert sorted(s for share in shares for s in share) == SEEDS  # disjoint, complete
    assert list(par["per_seed"][PROMPT]) == [str(s) for s in SEEDS]  # every seed exactly once, in order
    # Bit-identical images (seeded noise, one seed per pipeline call) and the same fix effect.
    assert par["per_seed"] == one["per_seed"]
    assert par["summary"] == one["summary"]
    rows = par["per_seed"][PROMPT].values()
    assert all(r["hash"] != r["hash_after"] and r["mean_abs_diff"] > 0 for r in rows)
    assert par["fixes"][0]["base_fingerprint"] and par["has_checker"] is False


def test_assemble_refuses_duplicates_and_missing_seeds():
    row = lambda s: {"prompt": "p", "seed": s, "hash": str(s)}  # noqa: E731
    per, summary = assemble([row(1), row(0)], ["p"], [0, 1])
    assert list(per["p"]) == ["0", "1"] and summary["p"]["seeds"] == 2
    with pytest.raises(EvaluationError, match="twice"):
        assemble([row(0), row(0), row(1)], ["p"], [0, 1])
    with pytest.raises(EvaluationError, match="missing"):
        assemble([row(0)], ["p"], [0, 1])


def test_fix_for_another_base_model_is_refused(tiny_model, fix_run, tmp_path):
    from core.evaluation import load_fixes
    from core.studio import Studio

    studio = Studio(tiny_model, data_dir=tmp_path / "data", restore=False, persist_state=False)
    assert [f["name"] for f in load_fixes(studio, [fix_run])] == ["fix1"]
    bad = tmp_path / "other"
    bad.mkdir()
    (bad / "pytorch_lora_weights.safetensors").write_bytes((fix_run / "pytorch_lora_weights.safetensors").read_bytes())
    (bad / "config.json").write_text(json.dumps({"model": {"base_fingerprint": "0000"}}))
    with pytest.raises(EvaluationError, match="does not belong"):
        load_fixes(studio, [bad])


def test_cpu_launcher_that_started_one_process_is_detected(monkeypatch):
    for k in ("WORLD_SIZE", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert launched_cpu_single_process()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not launched_cpu_single_process()
