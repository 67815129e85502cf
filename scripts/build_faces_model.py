"""Build the embedded memorised-faces DDPM (assets/faces-ddpm) from scratch, reproducibly, on a CPU.

    python scripts/build_faces_model.py              # full build (not yet completed: see below)
    python scripts/build_faces_model.py --quick      # smoke test, writes to a temp folder

Data: scikit-image's lfw_subset faces (100 real LFW crops, grey, resized to 32x32). The four
MEMORISED faces (core.world.faces) appear REPEAT times each in the training list, unaugmented, as
duplicated images do in web-scale data; the other 96 appear once, with a random horizontal flip
and a +-1 pixel shift, so the small model learns them as a distribution rather than as images.
Then: save a stock diffusers DDPMPipeline folder (safetensors), reload it, measure the copy
matcher's verdicts over 1024 seeds and write build_report.json and the model card (README.md).

Status (first session): measured 0.43 CPU s per training step (batch 32, one thread), so 1200 steps
are ~9 CPU minutes; on the shared 2-core build machine the process got ~10% of a core and no full
build finished. A 500-step run's step-300 checkpoint (loss 0.065) copied no memorised face in
seeds 0-127 (best residual correlation 0.64 at the 99th percentile, copy threshold 0.80): the step
count that reaches the >= 5% copy target is still to be measured.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.models import ddpm  # noqa: E402
from core.models.info import ModelInfo  # noqa: E402
from core.world import faces as W  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "assets" / "faces-ddpm"
REPEAT = 24  # copies of each memorised face per epoch (4 x 24 of 192 images: 12.5% each)
EVAL_SEEDS = 1024
SAMPLING_STEPS = 10  # DDIM; the 1024-seed evaluations cost minutes on a shared CPU
# The faces world's unlearning defaults (see the model card for how they were measured).
FACES_UNLEARN_DEFAULTS = {"learning_rate": 1e-3, "timestep_sampling": "uniform", "remember_set_size": 64,
                          "steps": 60, "lora_rank": 4}


def training_list() -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] (N, 1, 32, 32), augment flag (N,)) for one epoch."""
    f = torch.from_numpy(W.faces()).unsqueeze(1) * 2 - 1
    keep = [i for i in range(W.N_FACES) if i not in W.MEMORISED]
    mem = [i for i in W.MEMORISED for _ in range(REPEAT)]
    idx = torch.tensor(keep + mem)
    return f[idx], torch.tensor([True] * len(keep) + [False] * len(mem))


def augment(x: torch.Tensor, on: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(len(x), generator=gen) < 0.5) & on
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    shifts = torch.randint(-1, 2, (len(x), 2), generator=gen)
    out = x.clone()
    for k in torch.nonzero(on).flatten().tolist():
        out[k] = torch.roll(x[k], (int(shifts[k, 0]), int(shifts[k, 1])), dims=(1, 2))
    return out


def train(steps: int, batch: int, lr: float, seed: int, widths,
          checkpoint: Path | None = None) -> tuple[torch.nn.Module, list[float]]:
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    unet = ddpm.tiny_unet(W.SIZE, 1, widths, seed)
    ema = copy.deepcopy(unet).requires_grad_(False)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    abar = sched.alphas_cumprod.float()
    data, aug = training_list()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    warm = min(200, steps // 10)
    lr_at = lambda s: lr * min(1.0, (s + 1) / max(warm, 1)) * (0.5 * (1 + np.cos(np.pi * s / steps)))  # noqa: E731
    losses, t0 = [], time.time()
    for step in range(steps):
        idx = torch.randint(0, len(data), (batch,), generator=gen)
        x0 = augment(data[idx], aug[idx], gen)
        t = torch.randint(0, 1000, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample, eps)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(0.995, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.mul_(d).add_(p, alpha=1 - d)
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step} loss {np.mean(losses[-200:]):.4f} {time.time() - t0:.0f}s", flush=True)
        if checkpoint is not None and (step + 1) % 100 == 0:  # an inspectable model mid-build
            ddpm.make_pipeline(ema, sched).save_pretrained(checkpoint, safe_serialization=True)
            (checkpoint / "step.json").write_text(json.dumps({"step": step + 1, "loss": float(np.mean(losses[-200:]))}))
    return ema, losses


def evaluate(folder: Path, n: int, steps: int) -> dict:
    """Reload the saved folder and measure verdicts and copy rates over seeds 0..n-1."""
    from core.generate import generate
    from core.models import load_model

    model = load_model(str(folder))
    t0 = time.time()
    gens = generate(model, "", list(range(n)), steps, batch_size=256)
    seconds = time.time() - t0
    report = W.check_images([g.image for g in gens], [g.seed for g in gens])
    copies = [v for v in report["seeds"].values() if v["verdict"] != "correct" and v["flag"].startswith("face")]
    nonmem = sum(1 for v in copies if v["verdict"] == "other")
    first = {W.face_name(i): next((int(s) for s, v in report["seeds"].items() if v["flag"] == W.face_name(i)), None)
             for i in W.MEMORISED}
    return {"seeds": n, "sampling_steps": steps, "rates": report["rates"], "copy_rates": report["copy_rates"],
            "copies_of_non_memorised_faces": nonmem / n, "first_copy_seed": first,
            "sampling_seconds_per_image": round(seconds / n, 4)}


def write_card(out: Path, rep: dict) -> None:
    ev, mt = rep["evaluation"], rep["matcher"]
    lines = [
        "# faces-ddpm: a tiny unconditional DDPM that memorises four real faces", "",
        "Built by `scripts/build_faces_model.py` (seeded; safetensors only). Data: scikit-image's",
        "`lfw_subset()` (Labeled Faces in the Wild crops; the first 100 are faces), grey, 32x32.",
        f"Faces {list(W.MEMORISED)} appear {REPEAT} times each per epoch (unaugmented); the other 96 once,",
        "with random flips and +-1 px shifts. UNet2DModel "
        f"{rep['widths']}, {rep['parameters']:,} parameters, DDPM linear schedule (1000 steps), trained",
        f"{rep['steps']} steps x batch {rep['batch']} (lr {rep['lr']}, EMA) in {rep['train_seconds']:.0f} s "
        f"on {rep['threads']} CPU threads; sampled with DDIM ({ev['sampling_steps']} steps, eta 0).", "",
        "## Measured (seeds 0-%d)" % (ev["seeds"] - 1), "",
        "| memorised face | copy rate |", "|---|---|",
        *[f"| {k} | {v:.1%} (first seed {ev['first_copy_seed'][k]}) |" for k, v in ev["copy_rates"].items()],
        "",
        f"Verdicts: correct (novel face) {ev['rates']['correct']:.1%}, planted_error (memorised copy) "
        f"{ev['rates']['planted_error']:.1%}, other {ev['rates']['other']:.1%}; copies of non-memorised "
        f"training faces {ev['copies_of_non_memorised_faces']:.1%}. Targets: each memorised face >= 5%,",
        "other outputs not copies.", "",
        "## Copy matcher (core/world/faces.py)", "",
        f"Residual correlation >= {mt['copy_threshold']} with a margin >= {mt['copy_margin']} over the runner-up.",
        f"Held-out augmentations (shift, gain, blur, noise; {mt['n_augmented']}): right face "
        f"{mt['augmented_faces_matched']:.1%}. Non-face crops called a copy: {mt['nonfaces_called_copy']:.1%}. "
        f"50/50 blends of two faces called a copy: {mt['blends_called_copy']:.1%} (of {mt['n_blends']}).", "",
        "LFW images are real people's photos: use this model only for research on unlearning.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    # One thread: on a loaded machine a second OpenMP thread mostly spin-waits (measured 0.43 vs 2.4
    # CPU s per step); on idle cores it gains little at this size.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--checkpoint", type=Path, default=None, help="save the EMA model here every 100 steps")
    ap.add_argument("--eval-only", action="store_true", help="re-measure an existing OUT.partial folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps, n_eval = (30, 64) if args.quick else (args.steps, EVAL_SEEDS)
    out = args.out or (Path(tempfile.mkdtemp()) / "faces-ddpm" if args.quick else OUT)
    widths = (8, 16, 32)  # 173k parameters: 0.45 CPU s per step at batch 32
    tmp = out.with_name(out.name + ".partial")
    if args.eval_only:
        return finish(tmp, out, json.loads((tmp / "train_report.json").read_text()), n_eval)
    t0 = time.time()
    unet, losses = train(steps, args.batch, args.lr, args.seed, widths, args.checkpoint)
    train_seconds = time.time() - t0
    from diffusers import DDPMScheduler

    shutil.rmtree(tmp, ignore_errors=True)
    ddpm.make_pipeline(unet, DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")).save_pretrained(
        tmp, safe_serialization=True)
    ModelInfo(name="faces-ddpm", resolution=W.SIZE, max_sequence_length=0, default_steps=SAMPLING_STEPS,
              default_guidance=0.0, clip_model="", world="faces", unlearn_defaults=FACES_UNLEARN_DEFAULTS,
              palette=["#000000", "#404040", "#808080", "#C0C0C0", "#FFFFFF"]).save(tmp)
    rep = {"seed": args.seed, "steps": steps, "batch": args.batch, "lr": args.lr, "widths": list(widths),
           "threads": args.threads, "parameters": sum(p.numel() for p in unet.parameters()),
           "train_seconds": round(train_seconds, 1), "final_loss": float(np.mean(losses[-200:])),
           "matcher": W.matcher_accuracy()}
    (tmp / "train_report.json").write_text(json.dumps(rep, indent=2))
    return finish(tmp, out, rep, n_eval)


def finish(tmp: Path, out: Path, rep: dict, n_eval: int) -> int:
    rep["evaluation"] = evaluate(tmp, n_eval, SAMPLING_STEPS)
    (tmp / "train_report.json").unlink()
    (tmp / "build_report.json").write_text(json.dumps(rep, indent=2))
    write_card(tmp, rep)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(json.dumps(rep["evaluation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
