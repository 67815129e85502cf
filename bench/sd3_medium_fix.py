"""One real-size fix on an SD3-medium-shaped model with random weights, through the studio's own code.

    PYTHONPATH=. python bench/sd3_medium_fix.py --out $OUT                 # GPU: 1024², bf16, < 10 min
    PYTHONPATH=. python bench/sd3_medium_fix.py --dry-run --device cpu     # CPU: reduced shape, bf16

Builds a StableDiffusion3Pipeline from SD3-medium's configs with random weights (no download): the
transformer of bench.sd3_medium_timing.SD3_MEDIUM (2.03B), SD3's 16-channel VAE, CLIP-L and CLIP-G
text encoders (T5 dropped, as the studio does by default; 77 zero T5 tokens appended), a locally
trained CLIP tokenizer. Then, through `core.studio.Studio` exactly as the app and CLI call it:

  1. generate the flagged seed; flip surrogate;
  2. fix A, gradient checkpointing off: the remember set is generated (and written to the store);
  3. fix A switched off, the in-memory set cache emptied (as after a restart), fix B with gradient
     checkpointing on: the remember set comes from the on-disk store;
  4. compare fix A against the base on `--compare-seeds` seeds.

Per stage: wall seconds (synchronised), peak GPU memory (torch.cuda.max_memory_allocated). Stages
are written to OUT/sd3_medium_fix.json as they finish, so a call cut short still reports what it
did; `--budget-s` skips the stages left once it is spent. Random weights: the images are noise, so
only times and memory mean anything here, not the fix's quality.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench import common as C
from bench.sd3_medium_timing import SD3_MEDIUM, Shape

CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768)
CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              projection_dim=1280, hidden_act="gelu")
SD3_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=16, norm_num_groups=32,
               shift_factor=0.0609, scaling_factor=1.5305)
PROMPT = "a red fox in the snow"


def build_model(shape: Shape, device: torch.device, dtype: torch.dtype, text_layers: int | None, sampling_steps: int):
    """A LoadedModel around a random SD3-medium-shaped pipeline (text layers reduced only for dry runs)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from diffusers.utils import logging as dlogging
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from core.models.info import ModelInfo
    from core.models.loading import wrap_pipeline
    from core.models.tokenizer import build_clip_tokenizer

    dlogging.set_verbosity_error()
    tok = build_clip_tokenizer([PROMPT, "a photo of a cat", "a city at night", "a bowl of fruit"],
                               tempfile.mkdtemp(prefix="sd3tok-"), max_length=77)

    def text_encoder(cfg):
        layers = min(text_layers or cfg["num_hidden_layers"], cfg["num_hidden_layers"])
        return CLIPTextModelWithProjection(CLIPTextConfig(
            **{**cfg, "num_hidden_layers": layers}, vocab_size=49408, max_position_embeddings=77,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))

    n = len(SD3_VAE["block_out_channels"])
    torch.manual_seed(0)
    with torch.device(device):
        transformer = SD3Transformer2DModel(**shape.config())
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                            up_block_types=("UpDecoderBlock2D",) * n, use_quant_conv=False, use_post_quant_conv=False,
                            sample_size=shape.resolution, **SD3_VAE)
        te1, te2 = text_encoder(CLIP_L), text_encoder(CLIP_G)
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                    vae=vae, text_encoder=te1, tokenizer=tok, text_encoder_2=te2, tokenizer_2=tok,
                                    text_encoder_3=None, tokenizer_3=None)
    pipe.to(device, dtype)
    for m in (transformer, vae, te1, te2):
        m.requires_grad_(False)
    info = ModelInfo(name="sd3-medium-shaped (random weights)", resolution=shape.resolution,
                     max_sequence_length=shape.t5_tokens, default_steps=sampling_steps, default_guidance=7.0,
                     clip_model="none")
    return wrap_pipeline(pipe, info, source="sd3-medium-shaped-random")


class Stages:
    """Times and peak memory per stage, written to JSON after each one."""

    def __init__(self, device, path: Path, meta: dict, budget_s: float):
        self.device, self.path, self.meta, self.budget_s = device, path, meta, budget_s
        self.t_start, self.rows = time.perf_counter(), []

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t_start)

    def run(self, name: str, fn, **extra):
        with C.PeakMemory(self.device) as mem:
            t0 = time.perf_counter()
            out = fn()
            C.sync(self.device)
            secs = time.perf_counter() - t0
        self.rows.append({"stage": name, "seconds": round(secs, 3), "peak_mib": round(mem.peak, 1), **extra})
        print(f"  {name}: {secs:.1f} s, peak {mem.peak / 1024:.2f} GiB", flush=True)
        self.save()
        return out

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({**self.meta, "stages": self.rows}, indent=1, default=str))


def timed_fix(studio, stages: Stages, name: str, flagged, surrogate, config, gc: bool) -> str:
    """One Studio.unlearn; splits its wall time into remember set, training steps, monitor renders and the rest."""
    marks: dict = {"steps": [], "monitor": 0}
    t = studio.model.pipe.transformer
    t.enable_gradient_checkpointing() if gc else t.disable_gradient_checkpointing()

    def progress(frac, msg):
        if frac >= 1 and msg.startswith("remember set:"):
            C.sync(stages.device)
            marks["remember_done"], marks["remember_msg"] = time.perf_counter(), msg

    t0 = time.perf_counter()
    res = stages.run(name, lambda: studio.unlearn(PROMPT, flagged, surrogate, 0, config, {"kind": "flip"},
                                                  on_step=lambda r: marks["steps"].append(r.seconds),
                                                  on_monitor=lambda s, img: marks.__setitem__("monitor", marks["monitor"] + 1),
                                                  progress=progress), gc=gc)
    m = res.run.metrics()
    stages.rows[-1].update(
        before_render_and_remember_set_s=round(marks.get("remember_done", t0) - t0, 3),
        remember_message=marks.get("remember_msg"), remember_reused=m.get("remember_reused"),
        remember_generated=m.get("remember_generated"), train_steps=len(marks["steps"]),
        train_steps_s=round(sum(marks["steps"]), 3),
        step_s_median=round(C.stats(marks["steps"][1:] or marks["steps"])["median"], 4),
        monitor_renders=marks["monitor"])
    stages.save()
    return res.run.run_id


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="bf16", help="bf16 (default) | fp32 | fp16")
    p.add_argument("--out", type=Path, default=C.DEFAULT_OUT)
    p.add_argument("--dry-run", action="store_true",
                   help="reduced shape for a CPU check of the code path: 2 layers, 2-layer text encoders, 256², "
                        "4 remember images, 4 steps, 2 sampling steps, 2 compare seeds")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--remember-size", type=int, default=None, help="remember set (default 100, the paper's)")
    p.add_argument("--steps", type=int, default=None, help="training steps per fix (default 100)")
    p.add_argument("--sampling-steps", type=int, default=None, help="denoising steps (default 28, SD3's)")
    p.add_argument("--batch", type=int, default=4, help="forget and remember batch per step (default 4 + 4)")
    p.add_argument("--compare-seeds", type=int, default=None, help="seeds in the compare (default 8)")
    p.add_argument("--budget-s", type=float, default=540, help="skip the stages left after this many seconds")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    C.apply_threads(args.threads)
    from core.models.loading import LoadOptions
    from core.studio import Studio

    opts = LoadOptions(device=args.device, dtype=args.dtype)
    device, dtype = opts.resolved_device(), opts.resolved_dtype()
    dry = args.dry_run
    shape = replace(SD3_MEDIUM, num_layers=2 if dry else 24, resolution=args.resolution or (256 if dry else 1024))
    steps, size = args.steps or (4 if dry else 100), args.remember_size or (4 if dry else 100)
    sampling, n_cmp = args.sampling_steps or (2 if dry else 28), args.compare_seeds or (2 if dry else 8)
    meta = {"command": C.command_line(), "dry_run": dry, "device": str(device), "dtype": str(dtype),
            "shape": asdict(shape), "remember_set_size": size, "train_steps": steps, "sampling_steps": sampling,
            "batch": f"{args.batch}+{args.batch}", "environment": C.environment(device)}
    stages = Stages(device, Path(args.out) / ("sd3_medium_fix_dry.json" if dry else "sd3_medium_fix.json"), meta,
                    args.budget_s)
    print(f"{'DRY RUN, REDUCED SHAPE' if dry else 'SD3-medium shape'}: {shape.num_layers} layers, {shape.resolution}², "
          f"{device}, {dtype}", flush=True)
    model = stages.run("build (random weights)", lambda: build_model(shape, device, dtype, 2 if dry else None, sampling))
    meta["transformer_params"] = sum(q.numel() for q in model.pipe.transformer.parameters())
    stages.run("base fingerprint (sha256 of the weights)", model.fingerprint)
    studio = Studio(model, C.scratch_dir("sd3fix-"), restore=False, persist_state=False)
    config = studio.default_config(steps=steps, remember_set_size=size, forget_batch_size=args.batch,
                                   remember_batch_size=args.batch, lora_rank=16)
    flagged = stages.run("generate the flagged seed", lambda: studio.generate(PROMPT, [0], save=False)[0].image)
    surrogate = studio.surrogate("flip", flagged).image
    run_a = timed_fix(studio, stages, "fix A (GC off, remember set generated)", flagged, surrogate, config, gc=False)
    plan = [("fix B", lambda: _fix_b(studio, stages, run_a, flagged, surrogate, config)),
            ("compare", lambda: stages.run(f"compare {n_cmp} seeds (before + after)",
                                           lambda: studio.compare([PROMPT], list(range(n_cmp)), [run_a])))]
    for name, fn in plan:
        if stages.left() <= 0:
            stages.rows.append({"stage": name, "skipped": f"budget of {args.budget_s:.0f} s spent"})
            stages.save()
            continue
        fn()
    print(json.dumps(stages.rows, indent=1, default=str))
    return 0


def _fix_b(studio, stages: Stages, run_a: str, flagged, surrogate, config) -> None:
    studio.set_enabled(run_a, False)  # back to the base model: the state fix A's remember set was drawn from
    studio.remember_cache.clear()  # as after a restart: only the on-disk store is left
    timed_fix(studio, stages, "fix B (GC on, remember set from the store)", flagged, surrogate, config, gc=True)
    studio.set_enabled(run_a, True)


if __name__ == "__main__":
    sys.exit(main())
