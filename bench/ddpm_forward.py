"""What a DDPM UNet's `dtype` costs per forward (faces world): the studio's UNet class against diffusers' own.

diffusers' `ModelMixin.dtype` walks every submodule on each access, and UNet2DModel's forward asks
for it once per call. core.models.ddpm.prepare_unet reads it from the input conv instead. Both
UNets here hold the same weights and one LoRA fix (the faces defaults' rank and targets); rounds
alternate between them, so a drift of the shared machine's speed hits both. Reported: one `dtype`
access, one batch-1 forward (a monitor render makes 10 of them per monitor step) and a whole 10-step
render of one seed, as medians over rounds, with the ratio studio / diffusers per round.

    PYTHONPATH=. python bench/ddpm_forward.py [--model faces] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import command_line, environment, fmt_range, markdown_table, stats, write_report  # noqa: E402
from core.generate import initial_noise  # noqa: E402
from core.models import load_model  # noqa: E402
from core.models import ddpm  # noqa: E402


def diffusers_dtype_twin(model):
    """A second pipeline on the same weights whose UNet keeps diffusers' own `dtype` property (PEFT's
    adapter API added as prepare_unet adds it, nothing else)."""
    from diffusers.loaders.peft import PeftAdapterMixin

    pipe = ddpm.load_ddpm(model.location, True, False, {})
    cls = type(pipe.unet)
    pipe.unet.__class__ = type(cls.__name__, (PeftAdapterMixin, cls), {"__module__": cls.__module__})
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.requires_grad_(False)
    return pipe


def with_fix(unet, config: dict) -> None:
    """One LoRA adapter, on, as a fix is during its monitor renders."""
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=config["lora_rank"], lora_alpha=config["lora_rank"], init_lora_weights="gaussian",
                                target_modules=list(config["lora_targets"]), lora_dropout=0.0), adapter_name="fix")
    unet.set_adapters(["fix"])


def per_call(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


@torch.no_grad()
def measure(pipe, noise: torch.Tensor, steps: int) -> dict:
    unet = pipe.unet
    x = noise.to(unet.device)
    return {"dtype_ms": per_call(lambda: unet.dtype, 200) * 1e3,
            "forward_ms": per_call(lambda: unet(x, 500), 30) * 1e3,
            "render_ms": per_call(lambda: ddpm.sample(pipe, noise, steps), 5) * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="faces")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", default="ddpm_forward")
    args = ap.parse_args()

    model = load_model(args.model)
    if not model.unconditional:
        raise SystemExit(f"--model {args.model}: this bench measures a DDPM's UNet; give an unconditional model")
    config = {"lora_rank": model.info.unlearn_defaults.get("lora_rank", 8),
              "lora_targets": model.info.unlearn_defaults.get("lora_targets") or list(ddpm.UNET_LORA_TARGETS)}
    twin = diffusers_dtype_twin(model)
    for unet in (model.pipe.unet, twin.unet):
        with_fix(unet, config)
    steps = model.info.default_steps
    noise = initial_noise(model, 0)
    measure(model.pipe, noise, steps), measure(twin, noise, steps)  # warm-up
    runs = {"studio": [], "diffusers": []}
    for _ in range(args.rounds):
        runs["studio"].append(measure(model.pipe, noise, steps))
        runs["diffusers"].append(measure(twin, noise, steps))
    keys = ("dtype_ms", "forward_ms", "render_ms")
    ratios = {k: [s[k] / d[k] for s, d in zip(runs["studio"], runs["diffusers"])] for k in keys}
    record = {"model": model.location, "rounds": args.rounds, "lora": config, "steps": steps,
              "environment": environment(), "runs": runs,
              "median": {who: {k: statistics.median(r[k] for r in rs) for k in keys} for who, rs in runs.items()},
              "ratio_studio_over_diffusers": {k: stats(v) for k, v in ratios.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = [[label, fmt_range(stats(r[k] for r in runs["studio"]), digits=3), fmt_range(stats(r[k] for r in runs["diffusers"]),
             digits=3), fmt_range(record["ratio_studio_over_diffusers"][k], digits=3)]
            for k, label in zip(keys, ("one `dtype` access (ms)", "one batch-1 forward (ms)",
                                       f"one {steps}-step render of a seed (ms)"))]
    table = markdown_table(["what", "studio UNet: median (min-max)", "diffusers' dtype: median (min-max)",
                            "ratio studio / diffusers"], rows)
    write_report(args.out / f"{args.name}.md", "A DDPM UNet's dtype per forward: the studio's class against diffusers' own",
                 command_line(), [table], {"model": model.location, "rounds": args.rounds,
                                           "LoRA fix": f"rank {config['lora_rank']} on {', '.join(config['lora_targets'])}",
                                           "environment": json.dumps(record["environment"])})
    print((args.out / f"{args.name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
