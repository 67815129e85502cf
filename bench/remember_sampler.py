"""Could a higher-order sampler draw the remember set in fewer steps? (issue 17, part 3)

The remember set is the model's own outputs at its 20 Euler steps. Fewer Euler steps were measured
and rejected (bench/remember_steps.py: 12 steps cost 1.4 points of right seeds kept on held-out seeds).
This script asks whether DPM-Solver++ (2M) or UniPC, with flow sigmas, reach the 20-step Euler outputs
more closely at 8-12 steps than Euler does: mean |pixel difference| to the 20-step outputs, and how
often the world checker's verdict differs (the checker only measures here). Seeds 200-231 of six
prompts (tuning seeds).

    PYTHONPATH=. python bench/remember_sampler.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import command_line, environment, markdown_table, scratch_dir, write_report  # noqa: E402
from core.generate import generate  # noqa: E402
from core.models import load_model  # noqa: E402
from core.studio import Studio  # noqa: E402

PROMPTS = ["ireland flag", "japan flag", "finland flag", "sweden flag", "germany flag", "italy flag"]


def candidates(config):
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    flow = dict(num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=1.0)
    dpm = lambda: DPMSolverMultistepScheduler(**flow, algorithm_type="dpmsolver++", solver_order=2)  # noqa: E731
    euler = lambda: FlowMatchEulerDiscreteScheduler.from_config(config)  # noqa: E731
    return [("Euler", 12, euler()), ("Euler", 10, euler()), ("DPM-Solver++ 2M", 10, dpm()), ("DPM-Solver++ 2M", 8, dpm()),
            ("UniPC", 10, UniPCMultistepScheduler(**flow)), ("UniPC", 8, UniPCMultistepScheduler(**flow))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("embedded")
    studio = Studio(model, scratch_dir("sampler-"), restore=False, persist_state=False)
    seeds = list(range(200, 200 + args.seeds))
    euler20 = model.pipe.scheduler

    def draw(scheduler, steps):
        model.pipe.scheduler = scheduler
        try:
            t0 = time.perf_counter()
            images = {p: [g.image for g in generate(model, p, seeds, steps=steps)] for p in PROMPTS}
            return images, time.perf_counter() - t0
        finally:
            model.pipe.scheduler = euler20

    def verdicts(images):
        return {p: [studio.check(p, im)["verdict"] for im in images[p]] for p in PROMPTS}

    ref, ref_s = draw(euler20, 20)
    ref_v = verdicts(ref)
    rows = [["Euler (the model's)", 20, f"{ref_s:.1f}", "1.00", "0", "1.000"]]
    for name, steps, scheduler in candidates(euler20.config):
        images, seconds = draw(scheduler, steps)
        v = verdicts(images)
        mad = np.mean([np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() / 255
                       for p in PROMPTS for a, b in zip(images[p], ref[p])])
        agree = np.mean([x == y for p in PROMPTS for x, y in zip(v[p], ref_v[p])])
        rows.append([name, steps, f"{seconds:.1f}", f"{seconds / ref_s:.2f}", f"{mad:.4f}", f"{agree:.3f}"])
        print(rows[-1], flush=True)
    notes = ("Reference: the model's own sampler and steps, which the remember set, the grids and Compare use. "
             "A verdict that differs is an output the checker reads differently after nothing but a change of "
             "sampler: the noise floor of 'verdicts unchanged' measures. Model weights "
             f"`{model.fingerprint()}`, seeds {seeds[0]}-{seeds[-1]} (tuning seeds).")
    table = markdown_table(["sampler", "steps", f"seconds ({len(PROMPTS)} prompts x {len(seeds)} seeds)",
                            "time vs Euler 20", "mean |diff| to Euler 20", "checker verdict same as Euler 20"], rows)
    write_report(args.out / "remember_sampler.md", "Remember-set sampler: fewer steps with a higher-order solver?",
                 command_line(), [table, notes], environment())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
