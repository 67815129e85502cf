"""Evaluate many seeds in parallel processes (accelerate) and gather one JSON on the main process.

    # N processes: GPUs, or (on a machine without GPUs) N CPU processes over gloo
    accelerate launch --multi_gpu --num_processes N bench/eval_parallel.py \\
        --model embedded --prompt "ireland flag" --seeds 0-63 [--run RUN ...] --out DIR
    # one process
    PYTHONPATH=. python bench/eval_parallel.py --model ... --prompt ... --seeds 0-63 --out DIR
    # smoke run: "ireland flag", seeds 0-7, embedded model, bench/results/eval_parallel_quick/
    PYTHONPATH=. python bench/eval_parallel.py --quick

Writes DIR/eval.json (core.evaluation.evaluate's result): per prompt and seed the base image's
sha256, with --run also the fixed image's sha256 and mean |after - before|, and the flag checker's
verdicts when the model has one; per-prompt summaries; which process rendered which seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="embedded",
                   help="'embedded', a diffusers folder or a hub id (no stand-in here: results name the model)")
    p.add_argument("--prompt", action="append", default=None,
                   help="prompt (repeatable; required unless --quick, which uses 'ireland flag')")
    p.add_argument("--seeds", default=None, help="e.g. 0-63 or 0,3,5 (default 0-15; --quick: 0-7)")
    p.add_argument("--run", action="append", default=[], help="fix run folder or LoRA file (repeatable, stacked)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance (default: the model's)")
    p.add_argument("--device", default="auto", help="single-process device; launched processes take their own")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=1,
                   help="seeds per pipeline call; 1 (default) makes results independent of the process count")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for eval.json (required unless --quick: bench/results/eval_parallel_quick)")
    p.add_argument("--quick", action="store_true", help="'ireland flag', seeds 0-7 on the embedded model")
    args = p.parse_args(argv)
    if args.quick:
        args.prompt = args.prompt or ["ireland flag"]
        args.seeds = args.seeds or "0-7"
        args.out = args.out or Path("bench/results/eval_parallel_quick")
    if not args.prompt or args.out is None:
        p.error("--prompt and --out are required (or use --quick)")
    args.seeds = args.seeds or "0-15"

    from core.evaluation import EvalSpec, evaluate, launched_cpu_single_process, shutdown_processes, write_result
    from core.generate import parse_seeds

    if launched_cpu_single_process():
        print("WARNING: `accelerate launch --cpu --num_processes N` started ONE process (its CPU launcher needs "
              "MPI: --mpirun_hostfile). For N CPU processes without MPI use `accelerate launch --multi_gpu "
              "--num_processes N` on a machine without GPUs (torchrun + gloo). Continuing on one process.",
              file=sys.stderr, flush=True)
    spec = EvalSpec(model=args.model, prompts=args.prompt, seeds=parse_seeds(args.seeds), runs=args.run,
                    steps=args.steps, guidance=args.guidance, device=args.device, dtype=args.dtype,
                    batch_size=args.batch_size)
    t0 = time.perf_counter()
    try:
        result = evaluate(spec, threads=args.threads)
        if result is not None:  # the main process writes; the others just wait for it
            result["wall_s"] = round(time.perf_counter() - t0, 3)
            path = write_result(result, args.out)
    except BaseException:
        shutdown_processes(barrier=False)
        raise
    shutdown_processes()
    if result is None:
        return 0
    procs = ", ".join(f"p{w['process']}: {len(w['seeds'])} seeds in {w['generate_s']:.1f}s" for w in result["processes"])
    print(f"{result['num_processes']} process(es) [{procs}] -> {path}")
    for prompt, s in result["summary"].items():
        print(f"  {prompt!r}: {s}")
    return 0


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A launched worker leaves without the interpreter's teardown: a worker with nothing left to do
        # once aborted there in CI ("terminate called without an active exception"), after the results
        # were gathered and the process group closed, and that failed the whole launch.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
