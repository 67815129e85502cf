"""Evaluation over many seeds, split across processes with accelerate.

Every seed is independent (its initial noise comes from its own CPU generator, see core.generate),
so the seeds are shared out between processes (`PartialState.split_between_processes`); each
process loads the model and the fixes itself, renders its seeds, and the rows are gathered on the
main process (`gather_object`) into one result:

    per (prompt, seed): sha256 of the base image; with fixes, also the fixed image's hash and the
    mean |after - before| (pixels 0..1); with a flag checker (the embedded world), its verdicts.

Seeds are rendered one per pipeline call by default (`batch_size=1`), so a seed's pixels do not
depend on which other seeds share its batch and a run on N processes is bit-identical (on CPU,
with the same thread count) to a run on one.

Launch, N processes (GPUs, or CPU processes on a machine without GPUs: torchrun + gloo):

    accelerate launch --multi_gpu --num_processes N bench/eval_parallel.py --model M --prompt P --seeds 0-63 ...

(`accelerate launch --cpu --num_processes N` starts a single process unless MPI is set up with
--mpirun_hostfile; bench/eval_parallel.py warns when it sees that.)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .compare import mean_abs_diff

FIX_FILE = "pytorch_lora_weights.safetensors"


@dataclass
class EvalSpec:
    model: str  # 'embedded', a diffusers folder or a hub id
    prompts: list[str]
    seeds: list[int]
    runs: list[str] = field(default_factory=list)  # fix run folders (or LoRA .safetensors files), stacked
    steps: int | None = None  # sampling steps (None: the model's default)
    guidance: float | None = None  # None: the model's default
    device: str = "auto"  # single-process device; under a launcher each process takes its own
    dtype: str = "auto"
    batch_size: int = 1  # seeds per pipeline call; 1 keeps results independent of the split


class EvaluationError(RuntimeError):
    """Bad inputs (fixes for another base model, duplicate seeds) or a gather that lost rows."""


def image_hash(img: Image.Image) -> str:
    """sha256 of the image's size and RGB bytes (PNG encoder settings do not enter)."""
    arr = np.asarray(img.convert("RGB"))
    h = hashlib.sha256(f"{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def load_fixes(studio, runs: Sequence[str | Path]) -> list[dict]:
    """Load each run's LoRA (stacked, enabled); see Studio.load_runs."""
    from .studio import WrongBaseError

    try:
        return studio.load_runs(runs)
    except WrongBaseError as err:
        raise EvaluationError(str(err)) from err


def evaluate_shard(studio, prompts: Sequence[str], seeds: Sequence[int], fix_names: Sequence[str],
                   steps: int | None = None, guidance: float | None = None, batch_size: int = 1) -> list[dict]:
    """Rows for this process's seeds: base image (fixes off) and, with fixes, the fixed image."""
    from .generate import generate, initial_noise

    model, fixes = studio.model, studio.fixes
    judge = studio.check if studio.has_checker else None
    rows = []
    for prompt in prompts:
        for start in range(0, len(seeds), batch_size):
            chunk = list(seeds[start:start + batch_size])
            noises = [initial_noise(model, s) for s in chunk]
            with fixes.disabled():
                before = generate(model, prompt, chunk, steps, guidance, batch_size=batch_size, noises=noises)
            after = None
            if fix_names:
                with fixes.only(list(fix_names)):
                    after = generate(model, prompt, chunk, steps, guidance, batch_size=batch_size, noises=noises)
            for i, g in enumerate(before):
                row = {"prompt": prompt, "seed": g.seed, "hash": image_hash(g.image)}
                if judge:
                    row["verdict"] = judge(prompt, g.image)
                if after is not None:
                    a = after[i].image
                    row["hash_after"] = image_hash(a)
                    row["mean_abs_diff"] = round(mean_abs_diff(g.image, a), 6)
                    if judge:
                        row["verdict_after"] = judge(prompt, a)
                rows.append(row)
    return rows


def assemble(rows: list[dict], prompts: Sequence[str], seeds: Sequence[int]) -> tuple[dict, dict]:
    """Gathered rows -> per_seed[prompt][seed] and per-prompt summaries; every (prompt, seed)
    exactly once or EvaluationError."""
    per: dict[str, dict[str, dict]] = {p: {} for p in prompts}
    for r in rows:
        key = str(r["seed"])
        if key in per.setdefault(r["prompt"], {}):
            raise EvaluationError(f"seed {key} of {r['prompt']!r} came back twice from the processes")
        per[r["prompt"]][key] = {k: v for k, v in r.items() if k not in ("prompt", "seed")}
    for p in prompts:
        missing = [s for s in seeds if str(s) not in per[p]]
        if missing:
            raise EvaluationError(f"{len(missing)} seeds of {p!r} missing after the gather: {missing[:8]}")
        per[p] = {str(s): per[p][str(s)] for s in seeds}
    summary = {}
    for p, by_seed in per.items():
        vals = list(by_seed.values())
        s: dict = {"seeds": len(vals)}
        if vals and "mean_abs_diff" in vals[0]:
            d = [v["mean_abs_diff"] for v in vals]
            s.update(mean_abs_diff_mean=round(float(np.mean(d)), 6), mean_abs_diff_max=round(float(np.max(d)), 6),
                     changed_seeds=int(sum(x > 0 for x in d)))
        for key in ("verdict", "verdict_after"):
            if vals and key in vals[0]:
                verdicts = [v[key]["verdict"] for v in vals]
                s[f"{key}_rates"] = {k: round(verdicts.count(k) / len(verdicts), 4)
                                     for k in ("correct", "planted_error", "other")}
        summary[p] = s
    return per, summary


def _want_cpu(device: str) -> bool:
    import torch

    from accelerate.utils import parse_flag_from_env

    return device == "cpu" or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


def evaluate(spec: EvalSpec, state=None, threads: int | None = None) -> dict | None:
    """Run `spec` on this process's share of the seeds; the main process returns the gathered
    result, the others None. Works unlaunched (one process) as well."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object

    from .models.loading import LoadOptions, load_model
    from .studio import Studio

    if len(set(spec.seeds)) != len(spec.seeds):
        raise EvaluationError("duplicate seeds in the request")
    if spec.batch_size < 1:
        raise EvaluationError("batch_size must be >= 1")
    state = state or PartialState(cpu=_want_cpu(spec.device))
    if threads:
        torch.set_num_threads(threads)
    device = spec.device
    if state.num_processes > 1 or device == "auto":
        device = "cpu" if state.device.type == "cpu" else str(state.device)
    t0 = time.perf_counter()
    model = load_model(spec.model, LoadOptions(device=device, dtype=spec.dtype))
    studio = Studio(model, data_dir=Path(tempfile.mkdtemp(prefix="unlearn-eval-")), restore=False, persist_state=False)
    fixes = load_fixes(studio, spec.runs)
    t_load = time.perf_counter() - t0
    with state.split_between_processes(list(spec.seeds)) as mine:
        mine = list(mine)
        t1 = time.perf_counter()
        rows = evaluate_shard(studio, spec.prompts, mine, [f["name"] for f in fixes], spec.steps, spec.guidance,
                              spec.batch_size)
        t_gen = time.perf_counter() - t1
    work = gather_object([{"process": state.process_index, "seeds": mine, "load_s": round(t_load, 3),
                           "generate_s": round(t_gen, 3), "device": str(model.device),
                           "torch_threads": torch.get_num_threads()}])
    rows = gather_object(rows)
    if not state.is_main_process:
        return None
    per_seed, summary = assemble(rows, spec.prompts, spec.seeds)
    return {
        "spec": asdict(spec),
        "model": {"name": model.info.name, "location": model.location,
                  "resolution": model.info.resolution,
                  "steps": spec.steps or model.info.default_steps,
                  "guidance": model.info.default_guidance if spec.guidance is None else spec.guidance},
        "fixes": fixes,
        "has_checker": studio.has_checker,
        "num_processes": state.num_processes,
        "distributed_type": str(state.distributed_type),
        "processes": sorted(work, key=lambda w: w["process"]),
        "per_seed": per_seed,
        "summary": summary,
    }


def shutdown_processes(barrier: bool = True) -> None:
    """Let every launched process reach the same point, then close the process group. Without
    this a worker that finished early exits with gloo threads still running and aborts
    ("terminate called without an active exception"), failing the whole launch."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if barrier:  # skipped after an error: the other processes may never arrive
            dist.barrier()
        dist.destroy_process_group()


def write_result(result: dict, out_dir: str | Path, name: str = "eval.json") -> Path:
    from .runs import atomic_write_json

    return atomic_write_json(Path(out_dir) / name, result)


def launched_cpu_single_process() -> bool:
    """True when `accelerate launch --cpu --num_processes N>1` ran us alone (no MPI): its simple
    launcher sets MASTER_ADDR for N > 1 but starts one process."""
    from accelerate.utils import parse_flag_from_env

    ranks = ("WORLD_SIZE", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
    return parse_flag_from_env("ACCELERATE_USE_CPU") and "MASTER_ADDR" in os.environ and not any(
        k in os.environ for k in ranks)
