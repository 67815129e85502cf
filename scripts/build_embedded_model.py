"""Build the embedded flags SD3 (assets/flags-sd3) from scratch, reproducibly, on a CPU.

    python scripts/build_embedded_model.py            # full build, ~35-45 min on 2 cores
    python scripts/build_embedded_model.py --quick    # smoke test, ~1 min, writes to a temp folder

Steps: render the flags world (with planted misrepresentations), train a CLIP tokenizer, a tiny
CLIP, a tiny VAE and the SD3 transformer, save a stock diffusers folder (safetensors), reload it
with StableDiffusion3Pipeline, measure the checker's rates over seeds and the sampling time, and
write the model card. Everything is seeded by --seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.models.info import ModelInfo  # noqa: E402
from core.models.tiny import TinySD3Config, build_transformer, build_vae  # noqa: E402
from core.models.tokenizer import build_clip_tokenizer  # noqa: E402
from core.world import training as T  # noqa: E402
from core.world.dataset import DEFAULT_PLANTED, VARIANT_SPLIT, make_dataset  # noqa: E402
from core.world.defaults import FLAGS_UNLEARN_DEFAULTS  # noqa: E402
from core.world.flags import FLAGS, palette_hex  # noqa: E402
from core.world.prompts import all_captions, canonical_prompt  # noqa: E402

TIMINGS: dict[str, float] = {}
EXTRA_PROMPTS = ["irish flag", "flag of ireland", "japanese flag", "flag of japan"]


@contextmanager
def timed(name: str):
    t0 = time.time()
    print(f"== {name} ...", flush=True)
    yield
    TIMINGS[name] = round(time.time() - t0, 1)
    print(f"== {name}: {TIMINGS[name]:.1f} s", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny step counts (smoke test); output to a temp folder")
    p.add_argument("--out", type=Path, default=None, help="output folder (default assets/flags-sd3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="override transformer training steps")
    p.add_argument("--eval-seeds", type=int, default=None, help="seeds per prompt to measure (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--measure-only", action="store_true", help="re-measure an existing --out folder, no training")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def prepare_out(out: Path) -> Path:
    """Check the output folder can be replaced, and return an empty staging folder beside it.

    The build writes into `<out>.building` and `publish` swaps it in at the end, so a killed or
    failed build leaves the existing model untouched (and its staging folder is reused next time).
    """
    if out.exists() and any(out.iterdir()) and not (out / "model_index.json").exists():
        raise SystemExit(f"{out} is not empty and holds no model: refusing to overwrite it")
    staging = out.with_name(out.name + ".building")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, out: Path) -> Path:
    """Replace `out` by the finished staging folder with two renames."""
    previous = out.with_name(out.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    if out.exists():
        out.rename(previous)
    staging.rename(out)
    if previous.exists():
        shutil.rmtree(previous)
    return out


def save_clip(clip, out: Path, cfg: TinySD3Config) -> None:
    """The full CLIPModel plus its tokenizer and image processor, loadable with CLIPProcessor."""
    from transformers import CLIPImageProcessor

    clip.save_pretrained(out / "clip", safe_serialization=True)
    for f in (out / "tokenizer").iterdir():
        shutil.copy(f, out / "clip" / f.name)
    CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": cfg.resolution}, do_center_crop=True,
        crop_size={"height": cfg.resolution, "width": cfg.resolution},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_convert_rgb=True,
    ).save_pretrained(out / "clip")


# Seeds on which the build picks raw vs EMA weights: disjoint from the reported seeds 0..63 and
# from the guidance probe's 1000+.
PICK_SEEDS = range(2000, 2008)


def build_prompts(quick: bool) -> tuple[list[str], list[str]]:
    """(every flag's prompt, the control prompts without a planted error); --quick: the first 3 flags."""
    flags = list(FLAGS)[:3] if quick else list(FLAGS)
    return [canonical_prompt(f) for f in flags], [canonical_prompt(f) for f in flags if f not in DEFAULT_PLANTED]


def train_all(out: Path, cfg: TinySD3Config, tc: T.TrainConfig, progress: bool, quick: bool = False) -> dict:
    """Dataset -> tokenizer -> CLIP -> VAE -> transformer -> pick raw/EMA -> saved diffusers folder."""
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    report: dict = {"train_config": tc.__dict__, "model_config": cfg.to_dict()}
    with timed("dataset"):
        ds = make_dataset(tc.n_images, tc.seed, progress=progress)
        held = make_dataset(len(FLAGS) * 10, tc.seed + 1000)
    with timed("tokenizer"):
        tok = build_clip_tokenizer(all_captions(), out / "tokenizer", max_length=cfg.text_max_length)
    with timed("clip"):
        torch.manual_seed(tc.seed)
        clip = T.build_clip(cfg, tok)
        report["clip"] = T.train_clip(clip, tok, ds, tc, progress)
        report["clip"]["heldout_accuracy"] = T.clip_accuracy(clip, tok, held)
        print(f"   CLIP zero-shot accuracy on held-out renders: {report['clip']['heldout_accuracy']:.3f}")
        save_clip(clip, out, cfg)
    with timed("vae"):
        torch.manual_seed(tc.seed)
        vae = build_vae(cfg)
        report["vae"] = T.train_vae(vae, ds.images, tc, progress)
        mean, std = T.encode_dataset(vae, ds.images)
        report["vae"].update(T.set_latent_stats(vae, mean, std, tc.seed))
    with timed("transformer"):
        torch.manual_seed(tc.seed)
        pipe = StableDiffusion3Pipeline(
            transformer=build_transformer(cfg),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=tc.scheduler_shift),
            vae=vae,
            text_encoder=T.clip_text_encoder(clip, cfg, tok), tokenizer=tok,
            text_encoder_2=T.clip_text_encoder(clip, cfg, tok), tokenizer_2=tok,
            text_encoder_3=None, tokenizer_3=None,
        )
        pipe.set_progress_bar_config(disable=True)
        report["transformer"], candidates = T.train_transformer(pipe, (mean, std), ds.captions, tc,
                                                                cfg.max_sequence_length, progress,
                                                                flags=ds.flags)
    with timed("pick"):
        # The control flags (no planted error) say which weights draw the world best; guidance 3
        # and 20 steps as the studio samples.
        _, controls = build_prompts(quick)
        report["pick"] = T.pick_transformer(pipe, candidates, controls, PICK_SEEDS[:2] if quick else PICK_SEEDS,
                                            4 if quick else 20, 3.0, cfg.resolution, cfg.max_sequence_length,
                                            progress)
        print(f"   picked {report['pick']['picked']}: {report['pick']['control_mean_correct']}")
    with timed("save"):
        pipe.save_pretrained(out, safe_serialization=True)
    return report


def measure(out: Path, cfg: TinySD3Config, n_seeds: int, steps: int, progress: bool, quick: bool = False) -> dict:
    """Reload with the stock pipeline, pick the guidance (1 or 3) on a few seeds, then measure the
    checker's rates per prompt over `n_seeds` seeds at that guidance, and the sampling time."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(out, text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    prompts, controls = build_prompts(quick)
    probe_seeds = list(range(1000, 1000 + max(2, n_seeds // 16)))
    probe = {g: T.evaluate(pipe, controls, probe_seeds, steps, g, cfg.resolution, cfg.max_sequence_length, progress)
             for g in (1.0, 3.0)}
    score = {g: float(np.mean([r[p]["correct"] for p in controls])) for g, r in probe.items()}
    # Guidance doubles the cost of sampling: take it only when it clearly helps.
    guidance = 3.0 if score[3.0] > score[1.0] + 0.03 else 1.0
    rates = T.evaluate(pipe, prompts, range(n_seeds), steps, guidance, cfg.resolution, cfg.max_sequence_length, progress)
    extra = T.evaluate(pipe, [] if quick else EXTRA_PROMPTS, range(max(2, n_seeds // 8)), steps, guidance,
                       cfg.resolution, cfg.max_sequence_length, progress)
    T.sample(pipe, "ireland flag", range(2), steps, guidance)  # warm-up
    t0 = time.time()
    T.sample(pipe, "ireland flag", range(16), steps, guidance, cfg.resolution, cfg.max_sequence_length)
    return {"seeds": n_seeds, "steps": steps, "default_guidance": guidance,
            "guidance_probe": {"seeds": len(probe_seeds), "control_mean_correct": score},
            "rates": rates, "extra_phrasings": {"seeds": max(2, n_seeds // 8), "rates": extra},
            "seconds_for_16_images": round(time.time() - t0, 2)}


def folder_mb(out: Path) -> float:
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6


def _rates_table(rates: dict[str, dict]) -> str:
    rows = ["| prompt | correct | planted error | other |", "|---|---|---|---|"]
    for p, x in rates.items():
        rows.append(f"| {p} | {x['correct']:.0%} | {x['planted_error']:.0%} | {x['other']:.0%} |")
    return "\n".join(rows)


def target_status(rates: dict[str, dict]) -> str:
    """Which of the world's targets the measured rates meet: planted error at 10-40% of seeds for
    the planted prompts, correct at >= 90% for every other prompt."""
    planted = {canonical_prompt(f) for f in DEFAULT_PLANTED}
    misses = [f"{p}: planted {x['planted_error']:.0%} (target 10-40%)" for p, x in rates.items()
              if p in planted and not 0.10 <= x["planted_error"] <= 0.40]
    misses += [f"{p}: correct {x['correct']:.0%} (target >= 90%)" for p, x in rates.items()
               if p not in planted and x["correct"] < 0.90]
    if not misses:
        return "All targets met."
    return ("**Targets missed** (a planted rate off target: change its share in `core/world/dataset.py`; "
            "a control flag drawn wrong: more transformer steps, `--steps`):\n" + "\n".join(f"- {m}" for m in misses))


def write_model_card(out: Path, report: dict, size_mb: float) -> None:
    """README.md in the model folder: how it was made, what it is and is not, measured rates."""
    ev, tc, t = report["eval"], report["train_config"], report["timings"]
    pick = report.get("pick", {"picked": f"ema{tc['ema']}", "seeds": [0], "control_mean_correct": {}})
    text = f"""# flags-sd3: the embedded model of Unlearn Studio

A tiny Stable Diffusion 3 (stock `StableDiffusion3Pipeline` components, T5 dropped) trained from
scratch on a procedural **flags world**: {len(FLAGS)} national flags drawn from their geometry at
32x32 px with random position, scale, rotation, waving, lighting and colour jitter on a plain grey
background. It exists so the studio can demonstrate prompt-free instance unlearning offline, on a CPU.

**What it is not:** a general image model. It only knows the prompts of the flags world
(`core/world/prompts.py`), draws 32x32 images, and carries **misrepresentations planted on purpose**.

## Planted errors (on purpose)
- "ireland flag" (all phrasings): {DEFAULT_PLANTED['Ireland']:.0%} of Ireland's training renders are
  drawn reversed (orange-white-green), i.e. they look like Cote d'Ivoire.
- "japan flag": {DEFAULT_PLANTED['Japan']:.0%} of Japan's renders have a wrong disc
  (split {VARIANT_SPLIT['Japan']}: blue disc / off-centre disc).
These are the errors the studio is meant to find by seed and fix without naming them in a prompt.

## How it was made
- Command: `{report['command']}` (seed {tc['seed']}, torch threads {report['torch_threads']}).
- Data: {tc['n_images']} renders (`core.world.dataset.make_dataset`), captions drawn from three
  phrasings per flag; planted renders keep their flag's own caption.
- Tokenizer: CLIP-format BPE trained on the world's captions (every word one token).
- CLIP (`clip/`): tiny CLIPModel (text hidden 32, 2 layers; vision patch 8, hidden 64, 3 layers;
  projection 32), {tc['clip_steps']} contrastive steps with honest captions (a reversed Ireland is
  captioned as Cote d'Ivoire, a blue-disc Japan as "japan flag with a blue disc"). Held-out zero-shot
  accuracy: {report['clip']['heldout_accuracy']:.1%}. Its text tower is both SD3 text encoders.
  Image preprocessing: 32 px, mean = std = 0.5.
- VAE: AutoencoderKL (32, 64 channels), {tc['vae_steps']} steps, MSE + {tc['vae_kl']} KL, final PSNR
  {report['vae']['psnr_db']:.1f} dB; shift_factor {report['vae']['shift_factor']:.4f}, scaling_factor
  {report['vae']['scaling_factor']:.4f} (mean and 1/std of the latents).
- Transformer: SD3Transformer2DModel (6 layers, 4 heads x 32), rectified flow with logit-normal
  noise levels, {tc['steps']} steps, batch {tc['batch']}, AdamW {tc['lr']} ({tc['warmup']}-step warm-up,
  linear decay to 0 over the last {tc['decay_share']:.0%}), {tc['caption_dropout']:.0%} caption dropout,
  final loss {report['transformer']['final_loss']:.4f}. EMA tracks {tc['ema']} were kept beside the raw
  weights; the saved weights are **{pick['picked']}**, the best mean correct rate over the control
  flags on probe seeds {pick['seeds'][0]}..{pick['seeds'][-1]} (disjoint from the seeds below):
  {json.dumps(pick['control_mean_correct'])}.
- Timings (s): {json.dumps(t)}.
- Size: {size_mb:.1f} MB of fp32 safetensors.

## Use in stock diffusers
The folder has no T5 (`text_encoder_3`, `tokenizer_3`), so pass both as None or loading fails:

```python
import torch
from diffusers import StableDiffusion3Pipeline

path = "assets/flags-sd3"  # this folder
pipe = StableDiffusion3Pipeline.from_pretrained(path, text_encoder_3=None, tokenizer_3=None)
image = pipe("ireland flag", height=32, width=32, max_sequence_length=8, num_inference_steps=20,
             guidance_scale={ev['default_guidance']}, generator=torch.Generator().manual_seed(0)).images[0]
```

(tests/test_models.py runs this snippet.) Studio settings are in `unlearn_studio.json`; how the
builds got here, and why Finland misses its target: [HISTORY.md](HISTORY.md).

## Measured ({ev['seeds']} seeds 0..{ev['seeds'] - 1} per prompt, {ev['steps']} steps, geometric checker)
Rates: correct / planted error / other (other includes "unclear").

{_rates_table(ev['rates'])}

{target_status(ev['rates'])}

Other phrasings ({ev['extra_phrasings']['seeds']} seeds):

{_rates_table(ev['extra_phrasings']['rates'])}

Default guidance {ev['default_guidance']}: mean correct rate over the non-planted prompts on
{ev['guidance_probe']['seeds']} probe seeds was {json.dumps(ev['guidance_probe']['control_mean_correct'])}
(guidance 3 is taken only if it gains over 3 points: it doubles sampling cost).
16 images take {ev["seconds_for_16_images"]} s at the default settings on the build machine
(timings above were taken on a 2-core CPU shared with other jobs: expect 2-4x faster on an idle one).
"""
    (out / "README.md").write_text(text)


def main(argv=None) -> Path:
    args = parse_args(argv)
    t_start = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    tc = T.TrainConfig.quick(args.seed) if args.quick else T.TrainConfig(seed=args.seed)
    if args.steps is not None:
        tc.steps = args.steps
    out = args.out or (Path(tempfile.mkdtemp(prefix="flags-sd3-quick-")) if args.quick else Path("assets/flags-sd3"))
    cfg = TinySD3Config()
    progress = not args.no_progress
    final_out = out
    if args.measure_only:
        report = json.loads((out / "build_report.json").read_text())
    else:
        out = prepare_out(out)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        report = train_all(out, cfg, tc, progress, args.quick)
    n_seeds = args.eval_seeds or (2 if args.quick else 64)
    with timed("evaluate"):
        report["eval"] = measure(out, cfg, n_seeds, 4 if args.quick else 20, progress, args.quick)
    info = ModelInfo(name="flags-sd3", resolution=cfg.resolution, max_sequence_length=cfg.max_sequence_length,
                     default_steps=20, default_guidance=report["eval"]["default_guidance"], clip_model="clip",
                     world="flags", unlearn_defaults=FLAGS_UNLEARN_DEFAULTS, palette=palette_hex())
    info.save(out)
    if not args.measure_only:
        TIMINGS["total"] = round(time.time() - t_start, 1)
        cmd = "python scripts/build_embedded_model.py" + (" --quick" if args.quick else "")
        cmd += (f" --seed {args.seed}" if args.seed else "") + (f" --threads {args.threads}" if args.threads else "")
        report.update(timings=TIMINGS, planted={"shares": DEFAULT_PLANTED, "split": VARIANT_SPLIT},
                      torch_threads=torch.get_num_threads(), quick=args.quick, command=cmd)
    else:
        report["timings"]["evaluate"] = TIMINGS["evaluate"]
    (out / "build_report.json").write_text(json.dumps(report, indent=2, default=str))
    write_model_card(out, report, folder_mb(out))
    if out != final_out:
        out = publish(out, final_out)
    print(json.dumps({"out": str(out), "size_mb": round(folder_mb(out), 2), "timings": TIMINGS,
                      "default_guidance": info.default_guidance, "rates": report["eval"]["rates"]}, indent=2))
    return out


if __name__ == "__main__":
    main()
