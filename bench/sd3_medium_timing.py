"""Unlearning-step cost of an SD3-medium-shaped transformer: s/step and peak memory, GC on/off.

    PYTHONPATH=. python bench/sd3_medium_timing.py                       # on a GPU: 100 steps at 1024²,
                                                                         # GC off/on x surgery forget/off
    PYTHONPATH=. python bench/sd3_medium_timing.py --resolution 512 --batch 8
    PYTHONPATH=. python bench/sd3_medium_timing.py --quick --device cpu  # reduced shape, < 2 min
    PYTHONPATH=. python bench/sd3_medium_timing.py --fix [--dry-run]     # a whole fix, via the studio

No download: the transformer is built from SD3-medium's config with random weights (sample_size
128, patch 2, 16 channels, 24 layers, 24 heads x 64, joint_attention_dim 4096, caption projection
1536, pooled 2048, pos_embed_max_size 192; 2.03B parameters), in bf16 on cuda (fp32 on cpu). The fix
LoRA is the studio's own (core.adapters.FixManager.create), and the steps are the studio's trainer
(core.unlearn.trainer.train) running the real method (on cuda with surgery forget and off interleaved,
for the surgery's cost ratio) on random latents (B, 16, res/8, res/8) and random prompt embeddings
(B, 77 + t5_tokens, 4096) + pooled (B, 2048); text encoders and VAE are not loaded (the studio
precomputes embeddings and latents before training). --fix runs bench/sd3_medium_fix.py instead,
which builds the whole pipeline and times a fix end to end.

--t5-tokens: the studio drops T5 by default and then appends 77 zero tokens (LoadOptions.drop_t5,
max_sequence_length 77); with T5 kept SD3 uses 256. On cpu --quick runs a reduced shape (2 layers,
256², batch 1 + 1) and says so; the full shape on cpu takes ~15 s per sample at 256², ~12 GB of RAM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench import common as C


@dataclass
class Shape:
    """SD3Transformer2DModel config + the token/latent geometry of a training sample."""

    num_layers: int = 24
    num_attention_heads: int = 24
    attention_head_dim: int = 64
    joint_attention_dim: int = 4096
    caption_projection_dim: int = 1536
    pooled_projection_dim: int = 2048
    in_channels: int = 16
    patch_size: int = 2
    sample_size: int = 128
    pos_embed_max_size: int = 192
    resolution: int = 1024  # pixels; latents are resolution / vae_factor
    vae_factor: int = 8
    clip_tokens: int = 77
    t5_tokens: int = 77

    def config(self) -> dict:
        return dict(sample_size=self.sample_size, patch_size=self.patch_size, in_channels=self.in_channels,
                    out_channels=self.in_channels, num_layers=self.num_layers,
                    attention_head_dim=self.attention_head_dim, num_attention_heads=self.num_attention_heads,
                    joint_attention_dim=self.joint_attention_dim, caption_projection_dim=self.caption_projection_dim,
                    pooled_projection_dim=self.pooled_projection_dim,
                    pos_embed_max_size=self.pos_embed_max_size)

    @property
    def latent(self) -> int:
        return self.resolution // self.vae_factor

    @property
    def image_tokens(self) -> int:
        return (self.latent // self.patch_size) ** 2

    @property
    def text_tokens(self) -> int:
        return self.clip_tokens + self.t5_tokens

    @property
    def width(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    def train_flop_per_sample(self, gc: bool) -> float:
        """Lower-bound FLOP of one LoRA training sample (shared/reference/sd3-gpu-anchors.md): per-token
        matmul params L*12*d^2 (adaLN runs once per sample); fwd = 2*P*N + 4*L*N^2*d; LoRA training =
        2*lin + 3*attn (frozen linears need dX only); gradient checkpointing adds one forward."""
        n, d, layers = self.image_tokens + self.text_tokens, self.width, self.num_layers
        lin, attn = 2 * layers * 12 * d * d * n, 4 * layers * n * n * d
        return 2 * lin + 3 * attn + ((lin + attn) if gc else 0)


SD3_MEDIUM = Shape()


def build_transformer(shape: Shape, device: torch.device, dtype: torch.dtype):
    from diffusers import SD3Transformer2DModel
    from diffusers.utils import logging as dlogging

    dlogging.set_verbosity_error()  # the "keep in float32" note of .to(dtype) is about loading checkpoints
    with torch.device(device):
        t = SD3Transformer2DModel(**shape.config())
    t = t.to(dtype=dtype)
    t.requires_grad_(False)
    return t


def add_fix_lora(transformer, rank: int, fp32: bool = False) -> list[torch.nn.Parameter]:
    """The studio's fix LoRA (FixManager.create) on a bare transformer."""
    from core.adapters import FixManager

    shim = SimpleNamespace(pipe=SimpleNamespace(transformer=transformer))
    torch.manual_seed(0)
    params = FixManager(shim).create("fix", rank=rank)
    if fp32:  # what diffusers' training scripts do (cast_training_params) for half-precision bases
        for p in params:
            p.data = p.data.float()
    return params


def make_data(shape: Shape, forget_batch: int, remember_batch: int, device, seed: int = 0):
    from core.unlearn.objectives import Conditioning
    from core.unlearn.trainer import ForgetData, RememberData

    g = torch.Generator("cpu").manual_seed(seed)
    lat = (shape.in_channels, shape.latent, shape.latent)
    n_r = max(2 * remember_batch, 8)

    def cond(n):
        return Conditioning(torch.randn(n, shape.text_tokens, shape.joint_attention_dim, generator=g).to(device),
                            torch.randn(n, shape.pooled_projection_dim, generator=g).to(device))

    x_f = torch.randn(1, *lat, generator=g)
    forget = ForgetData(x_f.to(device), torch.flip(x_f, dims=[-1]).to(device), cond(1))
    remember = RememberData(torch.randn(n_r, *lat, generator=g).to(device), cond(n_r))
    return forget, remember


def training_sigmas(shift: float = 3.0) -> torch.Tensor:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=shift).sigmas.float()  # SD3-medium's scheduler shift


def set_gc(transformer, on: bool) -> None:
    if on:
        transformer.enable_gradient_checkpointing()
    else:
        transformer.disable_gradient_checkpointing()


def train_chunk(transformer, params, data, cfg_kw: dict, steps: int, seed: int) -> dict:
    """`steps` steps of core.unlearn.trainer.train; per-step trainer seconds and CPU seconds, and the
    synchronised wall time of the chunk."""
    from core.unlearn.config import UnlearnConfig
    from core.unlearn.trainer import train

    device = params[0].device
    forget, remember = data
    cfg = UnlearnConfig(steps=steps, seed=seed, monitor_every=0, **cfg_kw)
    cpu_marks = []

    def on_step(r):
        cpu_marks.append(time.process_time())

    C.sync(device)
    c0, t0 = time.process_time(), time.perf_counter()
    res = train(transformer, params, training_sigmas(), forget, remember, cfg, on_step)
    C.sync(device)
    wall = time.perf_counter() - t0
    cpu = [m - p for m, p in zip(cpu_marks, [c0] + cpu_marks[:-1])]
    return {"step_s": [r.seconds for r in res.reports], "cpu_s": cpu, "wall_s": wall}


def setting_name(gc: bool, surgery: str) -> str:
    return f"GC {'on' if gc else 'off'}, surgery {surgery}"


def time_settings(transformer, params, shape: Shape, settings, steps: int, warmup: int, forget_batch: int,
                  remember_batch: int, method: str = "surrogate", rank: int = 16, chunk: int | None = None,
                  progress: bool = False) -> list[dict]:
    """settings: (gradient checkpointing, surgery) pairs. Per setting a warm-up chunk under PeakMemory
    (a step's peak, optimiser state included); then `steps` timed steps in chunks of `chunk`, the
    settings alternating chunk by chunk, order rotated (chunk = steps: one contiguous run each, for a
    dedicated GPU; chunk = 1: A B A B single steps, for a shared CPU)."""
    device = params[0].device
    data = make_data(shape, forget_batch, remember_batch, device)
    base = dict(method=method, forget_batch_size=forget_batch, remember_batch_size=remember_batch, lora_rank=rank,
                learning_rate=1e-4)
    settings = list(settings)
    chunk = max(1, min(chunk or steps, steps))
    out = {s: {"step": [], "cpu": [], "wall": 0.0, "rounds": []} for s in settings}
    for gc, surgery in settings:
        set_gc(transformer, gc)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        o = out[(gc, surgery)]
        try:
            with C.PeakMemory(device) as mem:
                train_chunk(transformer, params, data, {**base, "surgery": surgery}, max(warmup, 1), seed=0)
        except torch.OutOfMemoryError as err:  # report it and go on with the other settings
            o.update(oom=str(err).splitlines()[0][:200], peak_mib=float("nan"), delta_mib=float("nan"),
                     memory_method=mem.method)
            for p in params:
                p.grad = None
            torch.cuda.empty_cache() if device.type == "cuda" else None
            if progress:
                print(f"  {setting_name(gc, surgery)}: out of memory, skipped", flush=True)
            continue
        o.update(peak_mib=mem.peak, delta_mib=mem.delta, memory_method=mem.method)
        if device.type == "cuda":
            o["peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    runnable = [s for s in settings if "oom" not in out[s]]
    done, rnd = 0, 0
    while done < steps and runnable:
        n = min(chunk, steps - done)
        k = rnd % len(runnable)
        for gc, surgery in runnable[k:] + runnable[:k]:
            set_gc(transformer, gc)
            r = train_chunk(transformer, params, data, {**base, "surgery": surgery}, n, seed=1 + rnd)
            o = out[(gc, surgery)]
            o["step"] += r["step_s"]
            o["cpu"] += r["cpu_s"]
            o["wall"] += r["wall_s"]
            o["rounds"].append({"step": C.stats(r["step_s"])["median"], "cpu": C.stats(r["cpu_s"])["median"]})
        done += n
        rnd += 1
        if progress and chunk < steps:
            print(f"    {done}/{steps} steps: " + ", ".join(f"{setting_name(*s)} {out[s]['step'][-1]:.2f}s"
                                                          for s in runnable), flush=True)
    results = []
    for gc, surgery in settings:
        o = out[(gc, surgery)]
        flop = shape.train_flop_per_sample(gc) * (forget_batch + remember_batch)
        st = C.stats(o["step"])
        res = {"gc": gc, "surgery": surgery, "steps": len(o["step"]), "warmup": max(warmup, 1), "chunk": chunk,
               "step_s": st, "cpu_s": C.stats(o["cpu"]), "wall_s_per_step": o["wall"] / max(len(o["step"]), 1),
               "peak_mib": o["peak_mib"], "delta_mib": o["delta_mib"], "memory_method": o["memory_method"],
               "peak_reserved_mib": o.get("peak_reserved_mib", float("nan")), "flop_per_step": flop,
               "tflops_achieved": flop / st["median"] / 1e12 if st["n"] else float("nan"), "oom": o.get("oom")}
        plain = out.get((gc, "off"))
        if surgery != "off" and plain is not None and plain["rounds"] and o["rounds"]:  # paired per round: the surgery step vs the plain step
            for key in ("step", "cpu"):
                res[f"vs_plain_{key}"] = C.stats(a[key] / b[key] for a, b in zip(o["rounds"], plain["rounds"]) if b[key] > 0)
        results.append(res)
    return results


def run(shape: Shape, device: torch.device, dtype: torch.dtype, gcs=(False, True), steps: int = 3, warmup: int = 1,
        forget_batch: int = 4, remember_batch: int = 4, rank: int = 16, fp32_lora: bool = False,
        method: str = "surrogate", surgeries=("forget",), chunk: int | None = None, progress: bool = False) -> dict:
    t0 = time.perf_counter()
    transformer = build_transformer(shape, device, dtype)
    C.sync(device)
    build_s = time.perf_counter() - t0
    params = add_fix_lora(transformer, rank, fp32_lora)
    info = {"shape": asdict(shape), "device": str(device), "dtype": str(dtype), "build_s": build_s,
            "base_params": sum(p.numel() for n, p in transformer.named_parameters() if "lora_" not in n),
            "lora_params": sum(p.numel() for p in params), "lora_dtype": str(params[0].dtype), "rank": rank,
            "lora_tensors": len(params), "forget_batch": forget_batch, "remember_batch": remember_batch,
            "method": method, "image_tokens": shape.image_tokens, "text_tokens": shape.text_tokens}
    if progress:
        print(f"built {info['base_params'] / 1e9:.2f}B params in {build_s:.1f}s; LoRA r{rank} "
              f"{info['lora_params'] / 1e6:.2f}M; tokens {shape.image_tokens} image + {shape.text_tokens} text",
              flush=True)
    settings = [(gc, s) for gc in gcs for s in (surgeries if method == "surrogate" else ("forget",))]
    info["results"] = time_settings(transformer, params, shape, settings, steps, warmup, forget_batch,
                                    remember_batch, method, rank, chunk, progress)
    if progress:
        for r in (r for r in info["results"] if not r.get("oom")):
            print(f"  {setting_name(r['gc'], r['surgery'])}: {C.fmt_range(r['step_s'], 1, 3)} s/step, CPU "
                  f"{C.fmt_range(r['cpu_s'], 1, 3)} s/step, peak {r['peak_mib'] / 1024:.2f} GiB", flush=True)
    return info


def _report(info: dict, cmd: str, out: Path, reduced: str | None, quick_gpu_note: str | None) -> None:
    sh = info["shape"]
    dev = info["device"]
    env = C.environment(dev)
    cuda = dev.startswith("cuda")
    surgery_col = info["method"] == "surrogate"
    rows = []
    for r in info["results"]:
        row = [("on" if r["gc"] else "off")] + ([r["surgery"]] if surgery_col else [])
        if r.get("oom"):
            rows.append(row + ["**out of memory**"])
            continue
        row += [C.fmt_range(r["step_s"], 1, 3)] + ([] if cuda else [C.fmt_range(r["cpu_s"], 1, 3)])
        row += [f"{r['wall_s_per_step']:.3f}", f"{r['step_s']['median'] * 100 / 60:.1f}"]
        if surgery_col:
            vs = [C.fmt_range(r["vs_plain_step"], 1, 3) if "vs_plain_step" in r else "-"]
            vs += [] if cuda else [C.fmt_range(r["vs_plain_cpu"], 1, 3) if "vs_plain_cpu" in r else "-"]
            row += vs
        row += [f"{r['peak_mib'] / 1024:.2f}"] + ([f"{r['peak_reserved_mib'] / 1024:.2f}"] if cuda else [])
        row += [f"{r['delta_mib'] / 1024:+.2f}", f"{r['flop_per_step'] / 1e12:.3f}", f"{r['tflops_achieved']:.3f}"]
        rows.append(row)
    headers = ["GC"] + (["surgery"] if surgery_col else []) + ["s/step"] + ([] if cuda else ["CPU s/step"])
    headers += ["wall s/step", "min per 100 steps"]
    if surgery_col:
        headers += ["vs surgery off"] + ([] if cuda else ["vs off (CPU time)"])
    headers += ["peak GiB"] + (["peak reserved GiB"] if cuda else []) + ["Δ GiB", "est. TFLOP/step", "achieved TFLOP/s"]
    rows = [row + ["-"] * (len(headers) - len(row)) for row in rows]
    r0 = next((r for r in info["results"] if not r.get("oom")), info["results"][0])
    order = ("one contiguous run per setting, settings in turn" if r0["chunk"] >= r0["steps"] else f"settings "
             f"alternating every {r0['chunk']} step(s), order rotated per round")
    blocks = []
    if reduced:
        blocks.append(f"> **REDUCED SHAPE (cpu --quick): {reduced}. These numbers are not SD3-medium's.** They check the "
                      "code path and give a CPU scale; run on a GPU without --quick for the real shape.\n")
    if quick_gpu_note:
        blocks.append(f"> {quick_gpu_note}\n")
    blocks.append(
        f"Transformer: {sh['num_layers']} layers, {sh['num_attention_heads']} heads × {sh['attention_head_dim']}, joint "
        f"attention {sh['joint_attention_dim']}, caption projection {sh['caption_projection_dim']}, pooled "
        f"{sh['pooled_projection_dim']}, patch {sh['patch_size']}, {sh['in_channels']} latent channels; "
        f"{info['base_params'] / 1e9:.3f}B base parameters, random weights, {info['dtype']} on {dev}, built in "
        f"{info['build_s']:.1f} s. Fix LoRA: rank {info['rank']} on core.adapters.SD3_LORA_TARGETS, "
        f"{info['lora_tensors']} tensors, {info['lora_params'] / 1e6:.2f}M parameters ({info['lora_dtype']}). Sample: "
        f"{sh['resolution']}² → latents {sh['in_channels']}×{sh['resolution'] // sh['vae_factor']}² = "
        f"{info['image_tokens']} image tokens + {info['text_tokens']} text tokens (77 CLIP + {sh['t5_tokens']} T5). "
        f"Step: core.unlearn.trainer.train, method {info['method']}, forget + remember batch {info['forget_batch']} + "
        f"{info['remember_batch']}.\n")
    blocks.append(
        f"Timing: {order}. *s/step*: the trainer's per-step seconds (StepReport.seconds), median (min–max) over the "
        "measured steps after warm-up; *CPU s/step*: this process's CPU seconds per step (on a shared CPU the steadier "
        "measure of work); *wall*: synchronised wall time / steps; *vs surgery off*: the step's time over the plain "
        "combined step's (surgery off, same GC) of the same round, median (min–max) over rounds. *peak*: "
        + r0["memory_method"] + f" over the warm-up step(s) ({r0['warmup']}, optimiser state included); *Δ*: rise over "
        "the memory held before them (weights, LoRA, data). *est. TFLOP/step*: lower bound from the anchors' formula "
        "(per-token matmuls + attention; LoRA backward = dX only; GC adds a forward); *achieved*: that / s/step.\n")
    blocks.append(C.markdown_table(headers, rows, command=cmd,
                                   caption=f"{r0['steps']} measured steps per setting after {r0['warmup']} warm-up"))
    meta = {"device": dev, "environment": ", ".join(f"{k} {v}" for k, v in env.items())}
    C.write_report(out / "sd3_medium_timing.md", "SD3-medium-shaped unlearning step: time and memory"
                   + (" — REDUCED CPU QUICK SHAPE" if reduced else ""), cmd, blocks, meta)
    (out / "sd3_medium_timing.json").write_text(json.dumps({"command": cmd, "reduced": reduced, "environment": env, **info},
                                                           indent=2, default=str))


def main(argv=None) -> int:
    if "--fix" in (argv := sys.argv[1:] if argv is None else list(argv)):  # remember set, training, compare
        return __import__("bench.sd3_medium_fix", fromlist=["main"]).main([a for a in argv if a != "--fix"])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    C.add_common_args(p, model=False)
    p.add_argument("--steps", type=int, default=None, help="measured steps per setting (default: 100 cuda, 3 cpu)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured first steps (default: 3 cuda, 1 cpu)")
    p.add_argument("--resolution", type=int, default=None, help="image side in pixels (default 1024; cpu --quick 256)")
    p.add_argument("--batch", type=int, default=None, help="forget batch (default 4; cpu --quick 1)")
    p.add_argument("--remember-batch", type=int, default=None, help="remember batch (default: = --batch)")
    p.add_argument("--rank", type=int, default=16, help="fix LoRA rank (studio default 8)")
    p.add_argument("--gc", choices=["off", "on", "both"], default="both", help="gradient checkpointing")
    p.add_argument("--t5-tokens", type=int, default=77, help="77: T5 dropped (studio default); 256: T5 kept")
    p.add_argument("--layers", type=int, default=None, help="override the layer count (cpu --quick: 2)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 cuda, fp32 cpu) | fp32 | bf16 | fp16")
    p.add_argument("--fp32-lora", action="store_true", help="keep LoRA weights in fp32 (diffusers' scripts do)")
    p.add_argument("--chunk", type=int, default=None, help="steps per setting before switching GC (cuda: all; cpu: 1)")
    p.add_argument("--method", default="surrogate", choices=["surrogate", "neggrad", "erasediff", "siss"])
    p.add_argument("--surgery", default=None, choices=["off", "forget", "pcgrad", "both"],
                   help="surrogate's surgery; both = forget and off interleaved, for its cost ratio (cuda: both; cpu: forget)")
    args = p.parse_args(argv)
    cmd = C.command_line()
    C.apply_threads(args.threads)
    from core.models.loading import LoadOptions

    opts = LoadOptions(device=args.device, dtype=args.dtype)
    device, dtype = opts.resolved_device(), opts.resolved_dtype()
    cuda = device.type == "cuda"
    reduced = None
    shape = replace(SD3_MEDIUM, t5_tokens=args.t5_tokens)
    batch = args.batch
    if args.quick and not cuda:
        shape = replace(shape, num_layers=args.layers or 2, resolution=args.resolution or 256)
        batch = batch or 1
        reduced = (f"{shape.num_layers} of 24 layers, {shape.resolution}² instead of 1024², batch {batch}+"
                   f"{args.remember_batch or batch} (width, heads, embeddings and LoRA targets as SD3-medium)")
        print(f"NOTE: cpu --quick: REDUCED SHAPE — {reduced}.", flush=True)
    else:
        shape = replace(shape, num_layers=args.layers or 24, resolution=args.resolution or 1024)
    if args.layers and not reduced and args.layers != 24:
        reduced = f"{args.layers} of 24 layers"
    batch = batch or 4
    steps = args.steps or ((10 if args.quick else 100) if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    if not cuda and not args.quick:
        print("WARNING: full SD3-medium shape on cpu (~9 GB fp32, ~15 s per sample at 256²); pass --quick.", flush=True)
    gcs = {"off": (False,), "on": (True,), "both": (False, True)}[args.gc]
    surgery = args.surgery or ("both" if cuda else "forget")
    surgeries = ("forget", "off") if surgery == "both" else (surgery,)
    info = run(shape, device, dtype, gcs, steps, warmup, batch, args.remember_batch or batch, args.rank,
               args.fp32_lora, args.method, surgeries, args.chunk or (None if cuda else 1), progress=True)
    note = "GPU --quick: 10 measured steps instead of 100." if (cuda and args.quick) else None
    _report(info, cmd, Path(args.out), reduced, note)
    print(f"wrote {Path(args.out) / 'sd3_medium_timing.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
