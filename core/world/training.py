"""Training the embedded flags SD3 from scratch on a CPU: CLIP, VAE, then the transformer.

Order and why:
1. A tiny CLIP (text + vision) trained contrastively on renders with *honest* captions: a reversed
   Ireland is captioned as Cote d'Ivoire, a blue-disc Japan as "japan flag with a blue disc". So
   CLIP can tell the planted errors from the real flags, which the studio's CLIP-guided surrogate
   edits rely on. Its text tower becomes both of SD3's CLIP text encoders (T5 is dropped).
2. A tiny AutoencoderKL (MSE + small KL); its latent mean/std become shift_factor/scaling_factor.
3. The SD3 transformer with rectified-flow matching on the *labelled* captions: the planted
   renders keep their flag's own prompt, which is how the misrepresentation gets learned.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..models.tiny import TinySD3Config, build_text_encoder, build_transformer, build_vae
from .prompts import clip_caption


@dataclass
class TrainConfig:
    """Step counts and optimiser settings of one build. `quick()` is the smoke-test size."""

    seed: int = 0
    n_images: int = 22 * 256
    clip_steps: int = 500
    clip_batch: int = 128
    clip_lr: float = 2e-3
    vae_steps: int = 400  # 250 left the Nordic crosses' thin bars blurred (PSNR 26.3 dB)
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_kl: float = 1e-4
    # Batch 64 x 3000 steps (~190k samples; 0.51 s/step on 2 idle cores, ~26 min). 900 x 32 drew every
    # flag but blurred the Nordic crosses; 1600 x 64 still drew Sweden and Finland right at only ~55%.
    steps: int = 3000
    batch: int = 64
    lr: float = 7e-4
    warmup: int = 100  # steps of linear warm-up (capped at a tenth of the run)
    decay_share: float = 0.3  # last share of the run, over which the lr falls linearly to 0
    # EMA tracks kept side by side; the build picks the raw or an EMA track by a probe (see
    # pick_transformer): at 1600 steps a 0.999 EMA still averages in early, blurrier weights.
    ema: tuple[float, ...] = (0.999, 0.995)
    caption_dropout: float = 0.1
    grad_clip: float = 1.0
    scheduler_shift: float = 1.0
    # How much more often the transformer sees a flag's renders than the others' (flag -> weight,
    # default 1). Off by default: a build with {"Finland": 2, "Sweden": 1.5} (and Japan planted at
    # 0.3) still drew Finland right at only 77% (78% uniform) and moved Ireland's planted rate to 5%,
    # so the doubled Nordic bars are a capacity limit, not a shortage of samples.
    flag_sampling: dict[str, float] = field(default_factory=dict)

    @classmethod
    def quick(cls, seed: int = 0) -> "TrainConfig":
        return cls(seed=seed, n_images=22 * 6, clip_steps=8, clip_batch=32, vae_steps=8, vae_batch=16,
                   steps=8, batch=16)


def _progress(total: int, desc: str, enabled: bool = True):
    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, mininterval=2.0)


def _optimizer_step(loss: torch.Tensor, opt, sched, clip_params=None, max_norm: float | None = None) -> None:
    """One update of the build's trainers: backward, optional gradient clipping, step, schedule."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_params is not None:
        torch.nn.utils.clip_grad_norm_(clip_params, max_norm)
    opt.step()
    sched.step()


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [-1, 1] (the VAE's and CLIP's input range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


# ---------------------------------------------------------------- CLIP


def build_clip(cfg: TinySD3Config, tokenizer):
    """A tiny CLIPModel whose text tower has exactly the SD3 text encoder's config."""
    from transformers import CLIPConfig, CLIPModel

    text_cfg = build_text_encoder(cfg, tokenizer).config.to_dict()
    vision_cfg = dict(image_size=cfg.resolution, patch_size=8, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=3, num_attention_heads=2, projection_dim=cfg.text_hidden_size,
                      hidden_act="gelu")
    config = CLIPConfig(text_config=text_cfg, vision_config=vision_cfg, projection_dim=cfg.text_hidden_size)
    return CLIPModel(config)


def train_clip(clip, tokenizer, dataset, tc: TrainConfig, progress: bool = True) -> dict:
    """Contrastive training with several positives per row: a batch holds each flag many times,
    so every pair showing the same thing counts as a match (soft targets), both directions."""
    rng = np.random.default_rng(tc.seed + 1)
    identity = [clip_caption(f, v) for f, v in zip(dataset.flags, dataset.variants)]  # what it shows
    ids = np.unique(identity, return_inverse=True)[1]
    images = to_tensor(dataset.images)
    opt = torch.optim.AdamW(clip.parameters(), lr=tc.clip_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, tc.clip_lr, total_steps=max(tc.clip_steps, 2), pct_start=0.1)
    clip.train()
    t0, bar, loss = time.time(), _progress(tc.clip_steps, "clip", progress), torch.tensor(0.0)
    for _ in range(tc.clip_steps):
        idx = rng.choice(len(dataset), tc.clip_batch, replace=False)
        texts = [clip_caption(dataset.flags[i], dataset.variants[i], rng) for i in idx]
        tok = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
        out = clip(input_ids=tok.input_ids, pixel_values=images[idx], return_loss=False)
        same = torch.from_numpy(ids[idx][:, None] == ids[idx][None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (F.cross_entropy(out.logits_per_image, target) + F.cross_entropy(out.logits_per_text, target))
        _optimizer_step(loss, opt, sched)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    clip.eval()
    return {"seconds": time.time() - t0, "final_loss": loss.item()}


@torch.no_grad()
def clip_accuracy(clip, tokenizer, dataset) -> float:
    """Zero-shot accuracy: the honest caption of each render against all honest captions."""
    from .flags import FLAGS, VARIANTS

    keys = [(f, None) for f in FLAGS] + [(f, v) for f, vs in VARIANTS.items() for v in vs if v != "reversed"]
    texts = [clip_caption(f, v) for f, v in keys]
    tok = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    out = clip(input_ids=tok.input_ids, pixel_values=to_tensor(dataset.images))
    pred = [texts[k] for k in out.logits_per_image.argmax(1).tolist()]
    truth = [clip_caption(f, v) for f, v in zip(dataset.flags, dataset.variants)]
    return float(np.mean([p == q for p, q in zip(pred, truth)]))


def clip_text_encoder(clip, cfg: TinySD3Config, tokenizer):
    """SD3 text encoder (CLIPTextModelWithProjection) carrying the trained CLIP's text tower."""
    enc = build_text_encoder(cfg, tokenizer)
    state = {k: v for k, v in clip.state_dict().items() if k.startswith(("text_model.", "text_projection."))}
    missing, unexpected = enc.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise RuntimeError(f"text tower mismatch: missing {missing}, unexpected {unexpected}")
    return enc.eval()


# ---------------------------------------------------------------- VAE


def train_vae(vae, images: np.ndarray, tc: TrainConfig, progress: bool = True) -> dict:
    """MSE reconstruction plus a small KL term keeps the latents smooth enough to diffuse."""
    rng = np.random.default_rng(tc.seed + 2)
    x_all = to_tensor(images)
    vae.to(memory_format=torch.channels_last)  # ~12% faster convolutions on CPU
    opt = torch.optim.AdamW(vae.parameters(), lr=tc.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(tc.vae_steps, 1), eta_min=tc.vae_lr * 0.05)
    vae.train()
    t0, bar, mse = time.time(), _progress(tc.vae_steps, "vae", progress), torch.tensor(0.0)
    for _ in range(tc.vae_steps):
        x = x_all[rng.choice(len(x_all), tc.vae_batch, replace=False)]
        post = vae.encode(x).latent_dist
        recon = vae.decode(post.sample()).sample
        mse = F.mse_loss(recon, x)
        loss = mse + tc.vae_kl * post.kl().mean() / x[0].numel()
        _optimizer_step(loss, opt, sched)
        bar.update(1)
        bar.set_postfix(psnr=f"{10 * np.log10(4 / max(mse.item(), 1e-8)):.1f}")
    bar.close()
    vae.to(memory_format=torch.contiguous_format).eval()  # safetensors saves contiguous tensors
    return {"seconds": time.time() - t0, "psnr_db": float(10 * np.log10(4 / max(mse.item(), 1e-8)))}


@torch.no_grad()
def encode_dataset(vae, images: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image (sampled afresh at each transformer step)."""
    means, stds = [], []
    for i in range(0, len(images), batch):
        dist = vae.encode(to_tensor(images[i : i + batch])).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def set_latent_stats(vae, mean: torch.Tensor, std: torch.Tensor, seed: int = 0) -> dict:
    """shift_factor = mean and scaling_factor = 1/std of sampled latents, written to the config."""
    g = torch.Generator().manual_seed(seed)
    z = mean + std * torch.randn(mean.shape, generator=g)
    shift, scale = float(z.mean()), float(1.0 / z.std())
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    return {"shift_factor": shift, "scaling_factor": scale}


# ---------------------------------------------------------------- transformer


@torch.no_grad()
def encode_captions(pipe, captions: list[str], max_sequence_length: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """SD3 prompt embeddings of each unique caption (and of "" for guidance), computed once."""
    out = {}
    for c in sorted(set(captions) | {""}):
        pe, _, pooled, _ = pipe.encode_prompt(c, c, None, do_classifier_free_guidance=False,
                                              max_sequence_length=max_sequence_length)
        out[c] = (pe[0], pooled[0])
    return out


def sampling_probabilities(flags: list[str], weights: dict[str, float]) -> np.ndarray:
    """Per-render probability of being drawn into a batch: a flag's weight (default 1), normalised."""
    unknown = set(weights) - set(flags)
    if unknown:
        raise KeyError(f"flag_sampling names flags not in the dataset: {sorted(unknown)}")
    if any(w <= 0 for w in weights.values()):
        raise ValueError("flag_sampling weights must be positive")
    w = np.array([weights.get(f, 1.0) for f in flags], dtype=np.float64)
    return w / w.sum()


def train_transformer(pipe, latents: tuple[torch.Tensor, torch.Tensor], captions: list[str],
                      tc: TrainConfig, max_sequence_length: int, progress: bool = True,
                      flags: list[str] | None = None) -> dict:
    """Rectified flow: x_s = (1 - s) x0 + s eps, predict eps - x0, s ~ logit-normal(0, 1).
    10% of captions dropped to "" so classifier-free guidance works. With `flags` (the flag of each
    caption), batches draw renders by `tc.flag_sampling`; without, uniformly.

    Returns (report, candidates): the raw weights and each EMA track, by name ("raw", "ema0.999",
    ...); the pipeline holds the first EMA track until `pick_transformer` chooses."""
    rng = np.random.default_rng(tc.seed + 3)
    g = torch.Generator().manual_seed(tc.seed + 3)
    model = pipe.transformer
    vae_cfg = pipe.vae.config
    emb = encode_captions(pipe, captions, max_sequence_length)
    mean, std = latents
    emas = {d: copy.deepcopy(model).eval().requires_grad_(False) for d in tc.ema}
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_factor(k, tc))
    model.train()
    t0, bar = time.time(), _progress(tc.steps, "transformer", progress)
    losses: list[float] = []
    probs = sampling_probabilities(flags, tc.flag_sampling) if flags is not None and tc.flag_sampling else None
    for step in range(tc.steps):
        idx = rng.choice(len(captions), tc.batch, replace=False, p=probs)
        z = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g)
        x0 = (z - vae_cfg.shift_factor) * vae_cfg.scaling_factor
        s = torch.sigmoid(torch.randn(tc.batch, generator=g)).view(-1, 1, 1, 1)
        eps = torch.randn(x0.shape, generator=g)
        noisy = (1 - s) * x0 + s * eps
        caps = ["" if rng.random() < tc.caption_dropout else captions[i] for i in idx]
        pe = torch.stack([emb[c][0] for c in caps])
        pooled = torch.stack([emb[c][1] for c in caps])
        pred = model(hidden_states=noisy, encoder_hidden_states=pe, pooled_projections=pooled,
                     timestep=s.view(-1) * 1000, return_dict=False)[0]
        loss = F.mse_loss(pred, eps - x0)
        _optimizer_step(loss, opt, sched, model.parameters(), tc.grad_clip)
        for decay, ema in emas.items():
            _ema_update(ema, model, min(decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    bar.close()
    model.eval().requires_grad_(False)
    candidates = {"raw": model} | {f"ema{d}": ema for d, ema in emas.items()}
    pipe.transformer = candidates[f"ema{tc.ema[0]}"] if tc.ema else model
    report = {"seconds": time.time() - t0, "final_loss": float(np.mean(losses[-100:]))}
    return report, candidates


def lr_factor(step: int, tc: TrainConfig) -> float:
    """Linear warm-up, flat, then a linear fall to 0 over the last `decay_share` of the steps.
    Ending at lr 0 lets the last weights settle instead of jittering at the peak rate."""
    warm = max(1, min(tc.warmup, tc.steps // 10))
    decay_start = tc.steps * (1 - tc.decay_share)
    if step < warm:
        return (step + 1) / warm
    if step >= decay_start and tc.decay_share > 0:
        return max(0.0, (tc.steps - step) / (tc.steps - decay_start))
    return 1.0


def pick_transformer(pipe, candidates: dict, prompts: list[str], seeds, steps: int, guidance: float,
                     resolution: int, max_sequence_length: int, progress: bool = True) -> dict:
    """Put the candidate with the highest mean correct rate over `prompts` into the pipeline.

    Probe seeds are disjoint from the seeds the build reports, so the pick does not select on
    the measured numbers. Ties go to the earlier candidate (EMA tracks come after raw)."""
    scores = {}
    for name, model in candidates.items():
        pipe.transformer = model
        rates = evaluate(pipe, prompts, seeds, steps, guidance, resolution, max_sequence_length, progress)
        scores[name] = float(np.mean([r["correct"] for r in rates.values()]))
    best = max(scores, key=scores.get)
    pipe.transformer = candidates[best]
    return {"picked": best, "control_mean_correct": scores, "seeds": list(seeds), "steps": steps,
            "guidance": guidance}


@torch.no_grad()
def _ema_update(ema, model, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)


# ---------------------------------------------------------------- sampling and evaluation


def seeded_generators(seeds) -> list[torch.Generator]:
    """One CPU generator per seed: image k depends only on seed k, whatever the batch."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


@torch.no_grad()
def sample(pipe, prompt: str, seeds, steps: int = 20, guidance: float = 1.0, resolution: int = 32,
           max_sequence_length: int = 8) -> np.ndarray:
    """uint8 images (len(seeds) x H x W x 3) of one prompt, the studio's way of generating."""
    seeds = list(seeds)
    out = pipe(prompt=[prompt] * len(seeds), num_inference_steps=steps, guidance_scale=guidance,
               height=resolution, width=resolution, generator=seeded_generators(seeds),
               max_sequence_length=max_sequence_length, output_type="np")
    return (np.clip(out.images, 0, 1) * 255 + 0.5).astype(np.uint8)


def evaluate(pipe, prompts: list[str], seeds, steps: int, guidance: float, resolution: int = 32,
             max_sequence_length: int = 8, progress: bool = True) -> dict[str, dict]:
    """Checker verdict rates per prompt over the given seeds."""
    from .checker import check_images

    rates = {}
    for prompt in tqdm(prompts, desc=f"evaluate g={guidance}", disable=not progress):
        imgs = sample(pipe, prompt, seeds, steps, guidance, resolution, max_sequence_length)
        rates[prompt] = check_images(prompt, imgs, seeds)["rates"]
    return rates
