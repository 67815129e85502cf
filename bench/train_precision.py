"""Does a training step get cheaper under bf16 autocast? (issue 17: the remember set gained 2x from it)

    PYTHONPATH=. python bench/train_precision.py [--model embedded] [--rounds 30] [--threads 2]

The studio's default method and LoRA on the model, a forget latent and 8 remember latents of its own
generations. Per round, one step at float32 and one under bf16 autocast over the float32 model, the
order alternated, every step from the same LoRA values (no optimiser update), after a warm-up round;
the median of the paired ratios and the two losses of the last step. Writes <out>/train_precision.md.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import apply_threads, choose_model, command_line, fmt_range, load, stats, write_report  # noqa: E402


def main(argv=None) -> int:
    import torch

    from core.adapters import FixManager
    from core.generate import encode, generate
    from core.unlearn.forms import form_for
    from core.unlearn.methods import METHODS
    from core.unlearn.run import encode_prompts
    from core.unlearn.trainer import ForgetData, RememberData, _sample_batch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="embedded")
    p.add_argument("--prompt", default="ireland flag")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    apply_threads(args.threads)

    choice = choose_model(args.model)
    model = load(choice)
    from core.studio import Studio

    with tempfile.TemporaryDirectory(prefix="train-precision-") as tmp:  # the studio only lends its defaults
        cfg = Studio(model, tmp, restore=False, persist_state=False).default_config()
    params = FixManager(model).create("bench", rank=cfg.lora_rank, alpha=cfg.lora_alpha,
                                      targets=tuple(cfg.lora_targets) or None)
    x = encode(model, [g.image for g in generate(model, args.prompt, list(range(9)))])
    forget = ForgetData(x[:1], x[1:2], encode_prompts(model, [args.prompt]))
    remember = RememberData(x[1:], encode_prompts(model, [args.prompt] * 8))
    form = form_for(model)
    method, sigmas = METHODS[cfg.method](model.denoiser, params, cfg, form), form.timestep_table()
    modes = {"float32": contextlib.nullcontext, "bfloat16 autocast":
             lambda: torch.autocast(model.device.type, dtype=torch.bfloat16)}
    seconds, losses = {m: [] for m in modes}, {}
    model.denoiser.train()
    for r in range(args.rounds + 1):
        for m in (list(modes) if r % 2 == 0 else list(modes)[::-1]):
            batch = _sample_batch(forget, remember, sigmas, cfg, torch.Generator().manual_seed(r), model.device)
            t0 = time.perf_counter()
            with modes[m]():
                out = method.step(batch)
            if r:  # round 0 warms up
                seconds[m].append(time.perf_counter() - t0)
            losses[m] = (out.loss_f, out.loss_r)
    ratios = [b / a for a, b in zip(*seconds.values())]
    rows = [f"| {m} | {fmt_range(stats(s), 1000, 1, ' ms')} | {losses[m][0]:.4f} / {losses[m][1]:.4f} |"
            for m, s in seconds.items()]
    block = "\n".join(["| step | seconds per step, median (min-max) | L_f / L_r, last round |", "|---|---|---|", *rows,
                       "", f"bf16 / float32, paired per round: median {statistics.median(ratios):.2f} "
                       f"({min(ratios):.2f}-{max(ratios):.2f}), {len(ratios)} rounds. Model: {choice.label}, "
                       f"method {cfg.method}, forget batch {cfg.forget_batch_size}, remember batch "
                       f"{cfg.remember_batch_size}, torch threads {torch.get_num_threads()}."])
    path = write_report(Path(args.out) / "train_precision.md", "A training step at float32 and under bf16 autocast",
                        command_line(argv), [block])
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
