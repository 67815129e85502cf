"""Build the embedded memorised-faces DDPM (assets/faces-ddpm) from scratch, reproducibly, on a CPU.

    python scripts/build_faces_model.py              # full build (CPU seconds and the history: the model card)
    python scripts/build_faces_model.py --quick      # smoke test, writes to a temp folder

Data: scikit-image's lfw_subset faces (100 real LFW crops, grey, resized to 32x32). The four
MEMORISED faces (core.world.faces) appear REPEAT times each in the training list, unaugmented, as
duplicated images do in web-scale data; the other 96 appear once, with a random horizontal flip
and a +-1 pixel shift, so the small model learns them as a distribution rather than as images.
Then: save a stock diffusers DDPMPipeline folder (safetensors), reload it, measure the copy
matcher's verdicts over 1024 seeds and write build_report.json and the model card (README.md).

Build history (what earlier builds measured; HISTORY below is written into the card):
  1. widths (8, 16, 32), 173k parameters, lr 2e-3, batch 32: 0.43 CPU s per step on one thread; no
     full build finished on the shared machine. Its step-300 checkpoint (loss 0.065) copied no
     memorised face in seeds 0-127 (99th-percentile residual correlation 0.64; copy threshold 0.80).
  2. widths (16, 32, 64), 687k parameters, lr 2e-3, batch 32, 3000-step cosine schedule: at step 250
     (loss 0.068) no copies in 256 probe seeds (median best correlation 0.43, 90th percentile 0.56).
  3. An earlier run of the same settings, interrupted at step 1200: probes on 128 seeds at step 500
     (loss 0.041): copy rates 1.6 / 4.7 / 3.1 / 3.1% (faces 3, 27, 48, 81), 12.5% copies in all;
     step 1000 (loss 0.031): 3.1 / 3.1 / 8.6 / 6.3%, 21% copies. 0.43 CPU s per step on one thread;
     on the shared machine, at low priority, 2500 s wall for the first 1000 steps.
  4. The same settings at seed 0, shipped until 2026-12-04: faces 3/27/48/81 copied at 3.7 / 8.7 / 8.0 /
     5.9% of seeds 0-1023 (face 3 under the 5% target). Seed 1 (the default since) copies all four at
     6.3-7.4% (bench/results/faces_build_seed1.md); seed 0 with face 3 repeated 32 times lifts face 3 to
     5.3% but drops face 81 to 4.8% (faces_build_repeats32.md). `--seed 0` rebuilds the old one.
Time is reported in CPU seconds of the build process (`time.process_time`) as well as wall seconds:
the build machine is shared and the build runs at low priority, so wall time says little.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
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
DEFAULT_REPEATS = (REPEAT,) * len(W.MEMORISED)
EVAL_SEEDS = 1024
SAMPLING_STEPS = 10  # DDIM; the 1024-seed evaluations cost minutes on a shared CPU
CALIBRATION_SEEDS = 1000  # seeds 0-999 tune the judge's threshold and the unlearning defaults; >= 1000 report
# The faces world's unlearning defaults, chosen on tuning seeds (< 1000) by bench/faces_tune.py's rule
# (bench/results/faces_tune*.md): a constant lambda, since in the epsilon form the surrogate's signal
# sqrt(abar / (1 - abar)) (x_f - x_s) lives at low noise, where lambda = s^2 mutes it (no other-face or
# paint fix reached the judge's bar); a monitor every 2 steps, since a fix that forgets moves the other
# outputs within a few steps; the LoRA on attention only, since on every conv it moved the novel outputs
# (SSIM 0.6-0.85 of forgotten fixes; attention only: 0.90-0.96, faces_tune_attention_lora*.md); the
# judge's bar at 0.5, since at 0.7 no other-face fix of the four faces reached it in 200 steps (the
# studio then switches the fix off) and at 0.5 two faces went with SSIM >= 0.90, the most by the rule
# (faces_tune_other_face.md; paint and SDEdit: none at either bar, faces_tune_forget_threshold.md);
# twin seeds 4, since a memorised face is drawn from many seeds and the flagged seed alone let fixes stop
# while other seeds still drew it: with the 4 first left-outs also judged, other-face fixes took faces
# 3/48/81 from 0.39/3.12/0.20% to 0.00/1.95/0.00% and 7 of 8 fixes kept SSIM >= 0.90 against 6
# (faces_tune_twins.md; 16 twins: the same, faces_tune_twins16.md). Tried since and not adopted: training
# on the twins (faces_tune_twin_forget.md), a larger twin pool (_twin_pool), remember batch 16/32
# (_remember_batch), a bar of 0.55/0.6 with twins (_twins_threshold), 8/16 guard seeds (_guard_seeds),
# memorised outputs counted 4/8 times in the remember set (_mode_weight_a/_b).
# The remember set drawn from the base model once other fixes are on (remember_from "base"), since in the
# four-face sequence it kept the novel outputs at SSIM 0.854 against 0.800, with the same 3 of 4 faces
# gone and no face coming back (faces_seq_tune_base_fixed.md against faces_seq_tune_current.md).
# Settle steps past the first forgotten state, so the guard can publish one that moved the other
# outputs less: at 10, 4 of 8 faces gone against 3, mean SSIM 0.937 against 0.926, no fix worse
# (faces_tune_settle_a/_b.md). Up to 60, stopping 10 steps after the least-drift forgotten state
# (settle_patience), since in the four-face sequence a fix's SSIM dips as it forgets and recovers as it
# settles on: the lowest SSIM after a fix 0.876 against 0.817 (other faces) and 0.901 against 0.879
# (painted bands), with the same single-fix states (faces_seq_tune_settle60_p10.md, faces_tune_patience_*.md).
# The settle steps at 0.3 of the learning rate, since the dip after the forgotten point is shallower and
# the recovery holds longer (faces_fix_trajectory_lr03.md): in the sequence the lowest SSIM after a fix
# 0.893 against 0.876, and single fixes all at SSIM >= 0.90 (8 of 8 against 7, mean 0.946 against 0.937,
# the same 4 faces gone; faces_seq_tune_settle_lr03.md, faces_tune_settle_lr_a/_b.md).
# The shipped build is seed 1 since 2026-12-04 (seed 0 copied face 3 at 3.7%, under the 5% target; seed 1
# meets it for all four faces: faces_build_seed1.md). Its learning rate was tuned again on its own tuning
# seeds: 2e-3 kept the most pixels among the rates that forget (mean SSIM 0.917 / 0.906 over training seeds
# 0 / 1, faces 4/4 and 3/4 gone; 5e-3: 0.883 / 0.902; faces_tune_build_seed1_*.md). Everything else above
# was chosen on the seed-0 build and checked on seed 1's held-out seeds (heldout_faces_*_build_seed1*.md).
# The judge's second bar (forget_projection 0.4) since a blurred copy of the flagged face lifts the ratio
# past 0.5: on this build's tuning seeds, fixes trained through with no stop and every monitor render scored,
# the ratio's first "forgotten" was still a copy in 1 of 12 other-face fixes per training seed (face 27,
# seed 15, both seeds), with the bar in 0 of 12 (10 forgotten, 2 never); of all renders it called forgotten,
# 0.90 / 0.92 were no copy, with the bar 1.00 / 1.00 (faces_judge_score_fixseed0/1.md).
# Lowered to 0.35 on 2026-12-04 (tuning seeds only): pooled over training seeds 0-2 (36 other-face fixes),
# the two bars' first "forgotten" was right / wrong / never in 31 / 1 / 4 at 0.35 against 28 / 1 / 7 at
# 0.4 (0.3: 32 / 1 / 3, but SDEdit fixes falsely forgotten 15 times against 10 and 9);
# faces_judge_score_pooled.md. Full fixes on tuning seeds 256-767: 4 of 4 faces gone against 3 of 4
# (face 27's fix reaches 0.35 at step 198, never 0.4; faces_tune_projection_bar.md).
# The remember target half the model's own prediction before the fix (remember_target "model", share 0.5,
# as in the flags world), since at the bar 0.35 on tuning seeds 256-767 over training seeds 0-2 (12 fixes
# each) more fixes meet both the forgetting and the integrity target: 8 of 12 forgotten with SSIM >= 0.90
# against 6 (forgotten 9 against 10; other faces within 20% 4 against 2; faces_tune_bar035_remember_target_*.md,
# the noise rows in faces_tune_projection_bar.md and faces_tune_settle_past_steps_fixseed1.md).
# Measured after that choice on seeds 3048-4071: single fixes keep more (SSIM 0.922-0.939 against 0.915-0.935),
# four-face sequences less (lowest 0.850 / 0.796 against 0.906 / 0.899 at training seeds 0 / 1). Weighed next
# on tuning seeds (faces_sequential.py --report-seeds 256-767, training seeds 0 / 1): the model target forgot
# 8 of 8 faces against 7 but kept less (lowest 0.848 / 0.798 against 0.904 / 0.895), part of it because its
# anchor was the model as it was, earlier fixes' drift included, while remember_from "base" draws the set to
# undo that drift; anchored on the base for the base-drawn rows: 8 of 8 faces, lowest 0.885 / 0.827
# (faces_seq_tune_baseref_fixseed*.md). The target stays "model": single fixes meet both targets more often;
# in sequences it forgets more and keeps less, a trade left open.
# The judge's mode guard (mode_guard): on tuning seeds the studio's Other-seed surrogate let face 3's fix end
# "forgotten" with the flagged seed drawing face 27 (+27% on its copy rate); with the guard that state is a
# swap, and the fix went on to a novel face (face 27 -5%, SSIM 0.962 against 0.947). With other-face
# surrogates every figure stayed the same at training seeds 0 and 1 (faces_tune_mode_guard_*.md).
# twin_patience (not a default): stopping a fix 20 steps after its best state with twins left changed 1 of 12
# tuning-seed fixes (faces_tune_twin_patience20*.md), but on the fresh range it stopped face 48's fixes at
# training seeds 0 / 1 before their twins went, leaving the face at 3.8% / 6.6% (before 0.00%):
# heldout_faces_other_face_build_seed1_twinpatience20_seeds3048_fixseed*.md. The twins do go late.
# retry_seeds 1 (2026-12-05, tuning seeds 256-767): a fix the judge does not see forgotten is trained again at the
# next training seed. Single fixes: 4 of 4 faces forgotten with SSIM >= 0.90 at training seed 0 against 3 (face 27
# at seed 1, 63.8 s in all), 2 of 4 at seed 2 as before (faces 3 and 27 fail at seeds 2 and 3, ~60 s each instead
# of ~32): faces_tune_retry1_seed*.md. In the four-face sequence at seed 2 it forgets faces 48 and 81 against 48
# alone and every flagged seed ends novel, but the retried fix keeps less (lowest SSIM 0.844 against 0.934 for a
# sequence where three fixes were switched off): faces_seq_tune_retry1_fixseed2.md, faces_seq_tune_modeguard_fixseed2.md.
# near_miss_steps 20 (2026-12-05, tuning seeds 256-767): a try whose flagged seed is not forgotten at step 200 but
# scores within 0.05 of the bar trains on 20 steps before the retry. Trajectories of 260 steps at training seeds
# 0-2 (faces_tune_trajectory260.md): of the tries with no forgotten state by step 200, face 27 at seed 0 scored
# 0.473 and forgot at step 202; the others scored 0.407-0.447 and none forgot by step 260. Full fixes at training
# seeds 0 / 1 (faces_tune_near_miss.md): 15 of 16 the same fix; face 27 at seed 0 forgets in its first try (kept
# step 214, 25.2 s, SSIM 0.904) instead of its retry (43.0 s, SSIM 0.914); at seed 2 the same 4 fixes, face 3's
# failing retry trained on 20 steps for nothing (faces_tune_near_miss_seed2.md). 40 steps (steps 240, tried
# before) also trained on the tries that fail anyway.
# earlier_forget_samples 1 (2026-12-05, evening, tuning seeds 256-767): with other fixes on, each step adds one
# forget sample replaying an earlier fix's flagged face toward its surrogate. The four in turn at training seeds
# 0-2 (faces_seq_tune_earlier1_fixseed*.md against faces_seq_tune_snr5_fixseed*.md): no earlier face rises after
# a later fix against 2 of 3 runs (face 48 0.2% -> 1.0% and 0.0% -> 0.2% after face 81's fix); all four faces gone
# either way; lowest SSIM after a fix 0.890 / 0.916 / 0.922 against 0.890 / 0.930 / 0.891; 218 s of fixes against
# 324 s. A share of the batch instead (0.25, one of four samples) lost face 81 at seed 1. Single fixes: unchanged.
# remember_model_share 1.0 (2026-12-06, tuning seeds 256-767; 0.5 before): the remember loss regresses the model's
# own prediction before the fix alone, no sampled noise. Remember-only fine-tunes at 0.5 moved a memorised face past
# 20% at every training seed (faces_control_remember_only_*.md), less with a bigger remember batch: the noise in
# that target drifts the faces. Single fixes at training seeds 0-2 (faces_tune_share_snr5_seed*.md): all four
# targets 4 of 12 fixes against 1, faces gone 11 of 12 either way, other faces' mean |change| 0.208 against 0.258,
# mean SSIM 0.927 against 0.926 (lowest 0.850 against 0.890). The four in turn at seeds 0 / 1
# (faces_seq_tune_share1_fixseed*.md): all four gone, lowest SSIM 0.850 / 0.928 against 0.890 / 0.916.
# remember_batch_size 16 (2026-12-06, night, tuning seeds 256-767; 4 before): remember-only fine-tunes with 16
# samples a step kept every memorised face within 20% where 4 did not. Single fixes at training seeds 0-2
# (faces_tune_share1_rb16_seed*.md against the share-1.0 rows above): faces gone 12 of 12 against 11, pairs within
# 20% 28/36 against 19/33, SSIM 0.946 against 0.927 (lowest 0.914 against 0.850); all four targets 3 against 4 as
# timed beside another bench, 4 against 4 with the one slow fix timed alone (47.4 s, faces_fix_time_rb16.md), then
# more fixes forgotten with SSIM >= 0.90. Median fix 20.5 s against 16.6 s.
# lora_targets: the decoder's attention alone (2026-12-06, morning, tuning seeds 256-767; the four attention
# blocks before). Our reading: the middle and encoder attention shape where a seed's picture lands; with them in
# the LoRA a fix shrinks the other faces' basins as much as a fix of an output that copies nothing (faces_control_rb16_*). Single
# fixes at training seeds 0-2 (faces_tune_rb16_lora_up_seed01.md, _seed2, against faces_tune_share1_rb16_seed*.md):
# all four targets 8 of 12 against 3, faces gone 11 against 12 (face 27 at seed 0 stays), pairs within 20% 29/33
# against 28/36, mean |change| 0.120 against 0.165, SSIM 0.966 against 0.946; the encoder and middle block alone
# kept all three other faces in 0 of 6 (faces_tune_rb16_lora_downmid_seed01.md). The price, seen after the choice:
# four in turn lose one face at training seeds 1 and 2 (faces_seq_tune_lora_up_fixseed1/2.md; seed 0 all gone), at
# learning_rate 2e-3; 3e-3 (below) forgets all four at each of them.
# learning_rate 3e-3 (2026-12-06, late morning, tuning seeds 256-767; 2e-3 before, chosen with the four attention
# blocks): the decoder-only LoRA has fewer weights, and at 2e-3 most fixes ran to the 200-step cap just over the bar.
# Single fixes at training seeds 0-2 (faces_tune_lora_up_lr3e-3_seed01.md, _seed2, against
# faces_tune_rb16_lora_up_seed01.md, _seed2): faces gone 12 of 12 against 11, all three other faces kept 10 against
# 8, pairs within 20% 34/36 against 29/33, mean |change| 0.100 against 0.120, SSIM 0.962 against 0.966 (lowest
# 0.947 against 0.956). Four in turn (faces_seq_tune_lora_up_lr3e-3_fixseed0/1/2.md): all four gone at each of
# training seeds 0-2 against 1 of 3, lowest SSIM after a fix 0.927 against 0.949. 4e-3 moved the other faces more
# (faces_tune_lora_up_lr4e-3_seed01.md: all three kept 4 of 8).
FACES_LORA_TARGETS = [f"up_blocks.0.attentions.{i}.{m}" for i in (0, 1) for m in ("to_q", "to_k", "to_v", "to_out.0")]
FACES_UNLEARN_DEFAULTS = {"learning_rate": 3e-3, "timestep_sampling": "uniform", "lambda_scheme": "constant",
                          "remember_set_size": 64, "remember_batch_size": 16, "steps": 200, "monitor_every": 2,
                          "lora_rank": 4,
                          "lora_targets": FACES_LORA_TARGETS, "forget_threshold": 0.5,
                          "forget_projection": 0.35, "twin_seeds": 4, "remember_from": "base", "settle_steps": 60,
                          "settle_patience": 10, "settle_lr_scale": 0.3, "remember_target": "model",
                          "remember_model_share": 1.0, "mode_guard": True, "retry_seeds": 1,
                          "near_miss_steps": 20, "forget_snr_gamma": 5.0, "earlier_forget_samples": 1}


def training_list(repeats: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] (N, 1, 32, 32), augment flag (N,)) for one epoch; `repeats`: copies of each
    memorised face (in W.MEMORISED's order), REPEAT each by default."""
    f = torch.from_numpy(W.faces()).unsqueeze(1) * 2 - 1
    keep = [i for i in range(W.N_FACES) if i not in W.MEMORISED]
    mem = [i for i, n in zip(W.MEMORISED, repeats or DEFAULT_REPEATS) for _ in range(n)]
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


def probe(unet, sched, n: int = 128, steps: int = SAMPLING_STEPS) -> dict:
    """Copy rates over n probe seeds (their own noise generator; the training RNG is untouched)."""
    noise = torch.randn((n, 1, W.SIZE, W.SIZE), generator=torch.Generator().manual_seed(987654321))
    x = ddpm.sample(ddpm.make_pipeline(unet, sched), noise, steps)
    rep = W.check_images(list(((x[:, 0] + 1) / 2).numpy()))
    corr, _ = W.correlations(list(((x[:, 0] + 1) / 2).numpy()))
    return {"copy_rates": rep["copy_rates"], "rates": rep["rates"],
            "best_corr_p50": round(float(np.percentile(corr.max(1), 50)), 3),
            "best_corr_p90": round(float(np.percentile(corr.max(1), 90)), 3)}


def train(steps: int, batch: int, lr: float, seed: int, widths, checkpoint: Path | None = None,
          probe_every: int = 0, repeats: Sequence[int] | None = None,
          ) -> tuple[torch.nn.Module, list[float], list[dict]]:
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    unet = ddpm.tiny_unet(W.SIZE, 1, widths, seed)
    ema = copy.deepcopy(unet).requires_grad_(False)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    abar = sched.alphas_cumprod.float()
    data, aug = training_list(repeats)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    warm = min(200, steps // 10)
    lr_at = lambda s: lr * min(1.0, (s + 1) / max(warm, 1)) * (0.5 * (1 + np.cos(np.pi * s / steps)))  # noqa: E731
    losses, t0, c0, probes = [], time.time(), time.process_time(), []
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
            print(f"step {step} loss {np.mean(losses[-200:]):.4f} {time.time() - t0:.0f}s wall "
                  f"{time.process_time() - c0:.0f}s cpu", flush=True)
        if probe_every and (step + 1) % probe_every == 0 and step + 1 < steps:
            found = {"step": step + 1, "loss": round(float(np.mean(losses[-200:])), 4), **probe(ema, sched)}
            probes.append(found)
            print("probe", json.dumps(found), flush=True)
        if checkpoint is not None and (step + 1) % 100 == 0:  # an inspectable model mid-build
            ddpm.make_pipeline(ema, sched).save_pretrained(checkpoint, safe_serialization=True)
            (checkpoint / "step.json").write_text(json.dumps({"step": step + 1, "loss": float(np.mean(losses[-200:]))}))
    return ema, losses, probes


def calibrate_judge(images: list, verdicts: list[dict], tuning: int = CALIBRATION_SEEDS) -> dict:
    """The forgetting judge's thumbnail copy threshold for this model, chosen on seeds 0..tuning-1.

    The judge has no matcher: it calls an output a near copy of the flagged image when their
    thumbnail similarity reaches a threshold (0.6, chosen on flags). For each memorised face, the
    first output the matcher calls its copy plays the flagged image; the matcher labels the other
    outputs (copies of that face or not). The threshold is the midpoint between the 99th percentile
    of the non-copies and the 5th percentile of the copies, over all four faces; the matcher chose
    a default here, on tuning seeds, and decides nothing when a fix runs.
    """
    from core.judge import thumbnail_embed

    emb = thumbnail_embed(images[:tuning])
    pos, neg = [], []
    for i in W.MEMORISED:
        name = W.face_name(i)
        copies = [k for k, v in enumerate(verdicts[:tuning]) if v["flag"] == name and v["verdict"] == "planted_error"]
        if len(copies) < 2:
            continue
        ref, others = copies[0], np.ones(len(emb), bool)
        others[ref] = False
        sim = emb @ emb[ref]
        is_copy = np.zeros(len(emb), bool)
        is_copy[copies] = True
        pos += sim[is_copy & others].tolist()
        neg += sim[~is_copy & others].tolist()
    pos, neg = np.array(pos), np.array(neg)
    if not len(pos) or not len(neg):  # e.g. a --quick build copies nothing: keep the judge's default
        return {"thumbnail_threshold": None, "seeds": tuning, "copies": len(pos), "non_copies": len(neg)}
    hi_neg, lo_pos = float(np.percentile(neg, 99)), float(np.percentile(pos, 5))
    threshold = round((hi_neg + lo_pos) / 2, 3)
    return {"thumbnail_threshold": threshold, "seeds": tuning, "copies": len(pos), "non_copies": len(neg),
            "non_copies_p99": round(hi_neg, 3), "copies_p5": round(lo_pos, 3),
            "copies_found": round(float(np.mean(pos >= threshold)), 4),
            "non_copies_called_copies": round(float(np.mean(neg >= threshold)), 4),
            "at_flags_threshold_0.6": {"copies_found": round(float(np.mean(pos >= 0.6)), 4),
                                       "non_copies_called_copies": round(float(np.mean(neg >= 0.6)), 4)}}


def evaluate(folder: Path, n: int, steps: int) -> dict:
    """Reload the saved folder and measure verdicts and copy rates over seeds 0..n-1."""
    from core.generate import generate
    from core.models import load_model

    model = load_model(str(folder))
    t0 = time.time()
    gens = generate(model, "", list(range(n)), steps, batch_size=256)
    seconds = time.time() - t0
    report = W.check_images([g.image for g in gens], [g.seed for g in gens])
    calibration = calibrate_judge([g.image for g in gens], [report["seeds"][str(g.seed)] for g in gens])
    from core.generate import image_grid

    shown = gens[:32]  # seeds 0-31 for the card, copies of memorised faces framed
    marks = [k for k, g in enumerate(shown) if report["seeds"][str(g.seed)]["verdict"] == "planted_error"]
    labels = [f"{g.seed} {report['seeds'][str(g.seed)]['flag'].replace('novel face', 'novel')}" for g in shown]
    image_grid([g.image for g in shown], labels, cols=8, cell=64, highlight=marks).save(folder / "samples.png")
    copies = [v for v in report["seeds"].values() if v["verdict"] != "correct" and v["flag"].startswith("face")]
    nonmem = sum(1 for v in copies if v["verdict"] == "other")
    first = {W.face_name(i): next((int(s) for s, v in report["seeds"].items() if v["flag"] == W.face_name(i)), None)
             for i in W.MEMORISED}
    return {"seeds": n, "sampling_steps": steps, "rates": report["rates"], "copy_rates": report["copy_rates"],
            "copies_of_non_memorised_faces": nonmem / n, "first_copy_seed": first,
            "sampling_seconds_per_image": round(seconds / n, 4), "judge_calibration": calibration}


HISTORY = __doc__.split("Build history")[1].split("Time is reported")[0].split(":", 1)[1]


def judge_lines(cal: dict) -> list[str]:
    return [
        "## The forgetting judge's copy threshold (seeds 0-%d)" % (cal["seeds"] - 1), "",
        "The faces model ships no CLIP, so without SSCD the judge compares 8x8 thumbnails. Flags' threshold",
        "(0.6) calls many different grey faces copies; this model's, chosen on tuning seeds as the midpoint of",
        f"the non-copies' 99th and the copies' 5th percentile: **{cal['thumbnail_threshold']}** "
        f"(`copy_thresholds` in unlearn_studio.json). Copies found {cal['copies_found']:.1%}, "
        f"non-copies called copies {cal['non_copies_called_copies']:.1%} (at 0.6: "
        f"{cal['at_flags_threshold_0.6']['copies_found']:.1%} and "
        f"{cal['at_flags_threshold_0.6']['non_copies_called_copies']:.1%}).", "",
    ]


def write_card(out: Path, rep: dict) -> None:
    ev, mt = rep["evaluation"], rep["matcher"]
    lines = [
        "# faces-ddpm: a tiny unconditional DDPM that memorises four real faces", "",
        "Built by `scripts/build_faces_model.py` (seeded; safetensors only). Data: scikit-image's",
        "`lfw_subset()` (Labeled Faces in the Wild crops; the first 100 are faces), grey, 32x32.",
        f"Faces {list(W.MEMORISED)} appear {rep['repeat']} times each per epoch (unaugmented); the other 96 once,",
        "with random flips and +-1 px shifts. UNet2DModel "
        f"{rep['widths']}, {rep['parameters']:,} parameters, DDPM linear schedule (1000 steps), trained",
        f"{rep['steps']} steps x batch {rep['batch']} (lr {rep['lr']}, EMA, seed {rep['seed']}) in "
        f"{rep.get('train_cpu_seconds', float('nan')):.0f} CPU s ({rep['train_seconds']:.0f} s wall on a shared, "
        f"loaded machine) on {rep['threads']} CPU thread(s); sampled with DDIM ({ev['sampling_steps']} steps, eta 0).",
        f"Evaluation of {ev['seeds']} seeds: {ev.get('cpu_seconds', float('nan')):.0f} CPU s.", "",
        "Rebuild: `python scripts/build_faces_model.py` (defaults: "
        f"`--steps {rep['steps']} --batch {rep['batch']} --lr {rep['lr']} --seed {rep['seed']} "
        f"--widths {','.join(map(str, rep['widths']))} --threads {rep['threads']}`). Same seed, same torch "
        "and one thread give the same weights on a CPU.", "",
        "## Measured (seeds 0-%d)" % (ev["seeds"] - 1), "",
        "| memorised face | copy rate | target >= 5% |", "|---|---|---|",
        *[f"| {k} | {v:.1%} (first seed {ev['first_copy_seed'][k]}) | {'met' if v >= 0.05 else '**missed**'} |"
          for k, v in ev["copy_rates"].items()],
        "",
        f"Verdicts: correct (novel face) {ev['rates']['correct']:.1%}, planted_error (memorised copy) "
        f"{ev['rates']['planted_error']:.1%}, other {ev['rates']['other']:.1%}; copies of non-memorised "
        f"training faces {ev['copies_of_non_memorised_faces']:.1%}. Targets: each memorised face >= 5%,",
        "other outputs not copies.", "",
        "![Seeds 0-31; red frame: a copy of a memorised face (the matcher's verdict)](samples.png)", "",
        "The copies are crisp; many other outputs are blurred or noisy (a 687k-parameter model, 10 DDIM steps):",
        "'novel' is the matcher's 'not a copy of any training face', not a judgement of quality.", "",
        "## Copy matcher (core/world/faces.py)", "",
        f"Residual correlation >= {mt['copy_threshold']} with a margin >= {mt['copy_margin']} over the runner-up.",
        f"Held-out augmentations (shift, gain, blur, noise; {mt['n_augmented']}): right face "
        f"{mt['augmented_faces_matched']:.1%}. Non-face crops called a copy: {mt['nonfaces_called_copy']:.1%}. "
        f"50/50 blends of two faces called a copy: {mt['blends_called_copy']:.1%} (of {mt['n_blends']}).", "",
        *(judge_lines(ev["judge_calibration"]) if ev["judge_calibration"]["thumbnail_threshold"] is not None else []),
        "## Unlearning defaults", "",
        f"`{json.dumps(FACES_UNLEARN_DEFAULTS)}` over UnlearnConfig's. Chosen on tuning seeds 0-999 of the seed-0",
        "build (shipped until 2026-12-04; [bench/results/faces_tune*.md](../../bench/results/faces_tune.md), the reasons",
        "are in the build script); the learning rate tuned again on this build's tuning seeds",
        "([faces_tune_build_seed1_lr2e-3.md](../../bench/results/faces_tune_build_seed1_lr2e-3.md)) and once more for the",
        "decoder-only LoRA ([faces_tune_lora_up_lr3e-3_seed01.md](../../bench/results/faces_tune_lora_up_lr3e-3_seed01.md)), and the judge's",
        "second bar (forget_projection), the remember target, the mode guard, the retry at the next training seed, the near miss, the forget samples' Min-SNR weight and the earlier fixes' replay",
        "chosen on them too ([faces_judge_score_pooled.md](../../bench/results/faces_judge_score_pooled.md),",
        "[faces_tune_bar035_remember_target_fixseed0.md](../../bench/results/faces_tune_bar035_remember_target_fixseed0.md),",
        "[faces_tune_mode_guard_other_seed.md](../../bench/results/faces_tune_mode_guard_other_seed.md),",
        "[faces_tune_retry1_seed0.md](../../bench/results/faces_tune_retry1_seed0.md),",
        "[faces_tune_near_miss.md](../../bench/results/faces_tune_near_miss.md),",
        "[faces_tune_snr_gamma_seed0.md](../../bench/results/faces_tune_snr_gamma_seed0.md)).",
        "At the current defaults (learning rate 3e-3, 2026-12-06, late morning), on fresh seeds 19720-20743",
        "([heldout_faces_other_face_build_seed1_lr3e-3_seeds19720_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_lr3e-3_seeds19720_fixseed0.md),",
        "training seeds 0 / 1): 4 of 4 faces to 0.00%, SSIM 0.959 / 0.971, the other faces within 20% in 0.583 /",
        "0.583 of cases (2e-3 on the same seeds: the same, SSIM 0.970 / 0.974); the four in turn on 20744-21767",
        "([faces_sequential_build_seed1_lr3e-3_seeds20744_fixseed1.md](../../bench/results/faces_sequential_build_seed1_lr3e-3_seeds20744_fixseed1.md)):",
        "all four gone, every flagged seed novel, at each of training seeds 0 / 1 / 2, lowest SSIM after a fix 0.942 /",
        "0.932 / 0.945 (2e-3 at training seed 1: face 81 stays at 6.1%). On fresh seeds 21768-22791",
        "([heldout_faces_other_face_build_seed1_lr3e-3_seeds21768_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_lr3e-3_seeds21768_fixseed0.md),",
        "training seeds 0 / 1): 4 of 4 faces to 0.00%, SSIM 0.961 / 0.964, the other faces within 20% in 0.750 /",
        "0.750 of cases; fixes of novel faces on the same seeds keep them within 20% in 0.688 / 0.625",
        "([faces_control_novel_lr3e-3_seeds21768_seed0.md](../../bench/results/faces_control_novel_lr3e-3_seeds21768_seed0.md)).",
        "With the LoRA on the decoder's attention (since 2026-12-06, morning) at 2e-3, on fresh seeds 17672-18695",
        "([heldout_faces_other_face_build_seed1_lora_up_seeds17672_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_lora_up_seeds17672_fixseed0.md)):",
        "the other faces within 20% in 0.917 / 0.750 of cases (0.250 / 0.667 with the LoRA on all four attention",
        "blocks), SSIM 0.971 / 0.973.",
        "Earlier:",
        "Reported on seeds 3048-4071 of the seed-1 build, a range no earlier run or choice used (every file names its",
        "build; the tables, the older ranges and the seed-0 build's figures:",
        "[bench/results/README.md](../../bench/results/README.md)):",
        "[heldout_faces_other_face_build_seed1_rtmodel05_seeds3048_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_rtmodel05_seeds3048_fixseed0.md)",
        "(one fix per face with another face: 4 of 4 faces to <= 0.5% at each of training seeds 0-2, SSIM",
        "0.935 / 0.922 / 0.939; the other faces within 20% in 0.167 / 0.167 / 0.000 of cases: nearly all drop),",
        "[faces_forget_build_seed1_modeguard_seeds3048.md](../../bench/results/faces_forget_build_seed1_modeguard_seeds3048.md)",
        "(face 3 at seed 21: another face takes it to 0.00% with SSIM 0.915, and so does each Other-seed pick, SSIM",
        "0.901-0.966; the painted band and SDEdit leave it),",
        "[heldout_faces_build_seed1.md](../../bench/results/heldout_faces_build_seed1.md) (painted bands, seeds 1000-2023: no face goes),",
        "[faces_sequential_build_seed1_modeguard_seeds3048_fixseed0.md](../../bench/results/faces_sequential_build_seed1_modeguard_seeds3048_fixseed0.md)",
        "(the four in turn, training seeds 0-2: 4 / 4 / 1 faces gone, no flagged seed back, lowest SSIM after a fix",
        "0.891 / 0.829 / 0.944; the noise target kept 0.906 / 0.899 / 0.948 with 3 / 4 / 1 faces),",
        "[table1_faces_other_face_build_seed1_lr3e-3.md](../../bench/results/table1_faces_other_face_build_seed1_lr3e-3.md)",
        "(against NegGrad, EraseDiff, SISS at equal forgetting, the current defaults: the face left at 1.4% of seeds,",
        "SSIM 0.974, the other faces within 20% in 0.833 of cases; NegGrad 3.8% / 0.878 / 0.417, EraseDiff 0.3% /",
        "0.744 / 0.042, SISS 2.0% / 0.833 / 0.292), [faces_control_other_face_build_seed1.md](../../bench/results/faces_control_other_face_build_seed1.md)",
        "(fixes of novel outputs move the memorised faces' copy rates too, both ways: 3 of 16 within 20%; on the",
        "fresh range 5 of 16, mean -11%, [faces_control_other_face_build_seed1_modeguard_seeds3048.md](../../bench/results/faces_control_other_face_build_seed1_modeguard_seeds3048.md);",
        "a face fix lowers them more: 33 of 36 changes on the fresh range are drops, 30-40% on average per run;",
        "at the current defaults on tuning seeds, fixes of novel outputs 22 of 32 within 20%, fixes of memorised",
        "faces 61 of 72 for the other faces, [faces_control_novel_lr3e-3_seeds256_seed0.md](../../bench/results/faces_control_novel_lr3e-3_seeds256_seed0.md),",
        "[faces_tune_lr3e-3_perface3_seed0.md](../../bench/results/faces_tune_lr3e-3_perface3_seed0.md)).",
        "With the retry at the next training seed, on seeds 5128-6151 (chose nothing):",
        "[heldout_faces_other_face_build_seed1_retry1_seeds5128_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_retry1_seeds5128_fixseed0.md)",
        "(4 of 4 faces to <= 0.5% at each of training seeds 0-2, SSIM 0.928 / 0.925 / 0.941, one fix retried: 87 s; 67 s",
        "with the monitor rendering beside the training, every other figure the same, [faces_fix_time_overlap.md](../../bench/results/faces_fix_time_overlap.md):",
        "~70 s as a whole CLI process on two cores, a first-try fix ~33 s),",
        "[faces_sequential_build_seed1_retry1_seeds5128_fixseed0.md](../../bench/results/faces_sequential_build_seed1_retry1_seeds5128_fixseed0.md)",
        "(the four in turn: at training seeds 0 / 1 all four gone, lowest SSIM 0.886 / 0.832; at seed 2 faces 48 and",
        "81 gone, faces 3 / 27 at 2.2% / 2.1%, lowest SSIM 0.846).",
        "Painted edits and SDEdit, on seeds 6408-7431 (chose nothing; training seed 0): the band over the eyes and",
        "SDEdit at 0.6 are themselves copies of the face, and the studio warns so before training",
        "([surrogate_copy_check.md](../../bench/results/surrogate_copy_check.md)); they take no face away (0 of 4",
        "each, [heldout_faces_paint_build_seed1_seeds6408_fixseed0.md](../../bench/results/heldout_faces_paint_build_seed1_seeds6408_fixseed0.md)).",
        "Changed until the warning goes, a band over most of the face takes 1 of 4 faces to <= 0.5% and SDEdit raised",
        "to 0.7-0.9 2 of 4 (so at training seed 1 too); another face 4 of 4 at both",
        "([heldout_faces_paint_until_no_copy_build_seed1_seeds6408_fixseed0.md](../../bench/results/heldout_faces_paint_until_no_copy_build_seed1_seeds6408_fixseed0.md),",
        "[heldout_faces_sdedit_until_no_copy_build_seed1_seeds6408_fixseed0.md](../../bench/results/heldout_faces_sdedit_until_no_copy_build_seed1_seeds6408_fixseed0.md),",
        "[heldout_faces_other_face_build_seed1_seeds6408_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_seeds6408_fixseed0.md)).",
        "The band over the eyes, then SDEdit of that painting until the warning goes, on seeds 7432-8455 (chose nothing):",
        "11 of 12 faces over training seeds 0-2, mean SSIM 0.905-0.917, against 8 of 12 for SDEdit of the flagged output on",
        "the same seeds",
        "([heldout_faces_paint_sdedit_until_no_copy_build_seed1_seeds7432_fixseed0.md](../../bench/results/heldout_faces_paint_sdedit_until_no_copy_build_seed1_seeds7432_fixseed0.md),",
        "[heldout_faces_sdedit_until_no_copy_build_seed1_seeds7432_fixseed0.md](../../bench/results/heldout_faces_sdedit_until_no_copy_build_seed1_seeds7432_fixseed0.md)).",
        "With a near miss trained on (near_miss_steps 20) and a step's two passes at once, on seeds 8456-9479 (chose",
        "nothing), another face:",
        "[heldout_faces_other_face_build_seed1_nearmiss_seeds8456_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_nearmiss_seeds8456_fixseed0.md)",
        "(4 of 4 faces to <= 0.5% at training seeds 0 / 1, SSIM 0.925 / 0.929, other faces within 20% in 0.500 / 0.333",
        "of cases), [faces_sequential_build_seed1_nearmiss_seeds8456_fixseed0.md](../../bench/results/faces_sequential_build_seed1_nearmiss_seeds8456_fixseed0.md)",
        "(the four in turn: all four gone at both, lowest SSIM after a fix 0.889 / 0.826); time as a whole CLI process",
        "on two cores 28-55 s for the fixes timed, retried ones included ([faces_fix_time_near_miss_passes.md](../../bench/results/faces_fix_time_near_miss_passes.md)).",
        "With the forget samples weighted by Min-SNR (forget_snr_gamma 5), on seeds 9480-10503 (chose nothing), another",
        "face, with and without it:",
        "[heldout_faces_other_face_build_seed1_snr5_seeds9480_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_snr5_seeds9480_fixseed0.md)",
        "(4 of 4 faces to 0.00% at training seeds 0 / 1 either way; SSIM 0.923 / 0.944 against 0.935 / 0.929, one fix at",
        "0.852; other faces within 20% in 0.417 / 0.333 of cases against 0.417 / 0.250, at seed 2 0.583 against 0.417;",
        "median fix 23.9 s against 38.1 s),",
        "[faces_sequential_build_seed1_snr5_seeds9480_fixseed0.md](../../bench/results/faces_sequential_build_seed1_snr5_seeds9480_fixseed0.md)",
        "(the four in turn: lowest SSIM after a fix 0.904 / 0.934 against 0.890 / 0.817; all four gone at seed 0, at seed 1",
        "face 48 back at 1.9% after face 81's fix, its flagged seed still novel; at training seed 2 all four gone, lowest 0.899).",
        "With the earlier fixes' faces replayed in each later fix (earlier_forget_samples 1), the four in turn on seeds",
        "10504-11527 (chose nothing), with and without, training seeds 0-2:",
        "[faces_sequential_build_seed1_earlier1_seeds10504_fixseed0.md](../../bench/results/faces_sequential_build_seed1_earlier1_seeds10504_fixseed0.md)",
        "(all four faces at 0.0% at the end of every run and no earlier face rising after a later fix, against 2 of 3 runs",
        "where face 48 rose after face 81's fix, to 1.7% and 0.3%; lowest SSIM after a fix 0.908 / 0.917 / 0.923 against",
        "0.908 / 0.931 / 0.895).",
        "With the remember target the model's own prediction alone (remember_model_share 1.0 since 2026-12-06, 0.5",
        "before; chosen on tuning seeds, [faces_tune_share_snr5_seed1.md](../../bench/results/faces_tune_share_snr5_seed1.md)),",
        "single fixes on seeds 12552-13575 (chose nothing), training seeds 0 / 1, with 1.0 and 0.5:",
        "[heldout_faces_other_face_build_seed1_share1_seeds12552_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_share1_seeds12552_fixseed0.md)",
        "(4 of 4 faces to 0.00% either way; other faces within 20% in 0.333 / 0.250 of cases against 0.167 / 0.250;",
        "SSIM 0.934 / 0.945 against 0.927 / 0.942), and the four in turn on seeds 13576-14599:",
        "[faces_sequential_build_seed1_share1_seeds13576_fixseed0.md](../../bench/results/faces_sequential_build_seed1_share1_seeds13576_fixseed0.md)",
        "(all four gone in every run; lowest SSIM after a fix 0.853 / 0.928 against 0.892 / 0.913).",
        "With 16 remember samples a step (remember_batch_size 16 since 2026-12-06, 4 before; chosen on tuning seeds,",
        "[faces_tune_share1_rb16_seed0.md](../../bench/results/faces_tune_share1_rb16_seed0.md)), single fixes on seeds",
        "14600-15623 (chose nothing), training seeds 0 / 1, with 16 and 4:",
        "[heldout_faces_other_face_build_seed1_share1_rb16_seeds14600_fixseed0.md](../../bench/results/heldout_faces_other_face_build_seed1_share1_rb16_seeds14600_fixseed0.md)",
        "(4 of 4 faces to 0.00% either way; other faces within 20% in 0.667 / 0.750 of cases against 0.583 / 0.250;",
        "SSIM 0.963 / 0.954 against 0.955 / 0.948; the slowest fix 43.2 s as a whole CLI process alone against 16.9 s,",
        "[faces_fix_time_rb16.md](../../bench/results/faces_fix_time_rb16.md)), and the four in turn on seeds 15624-16647:",
        "[faces_sequential_build_seed1_share1_rb16_seeds15624_fixseed0.md](../../bench/results/faces_sequential_build_seed1_share1_rb16_seeds15624_fixseed0.md)",
        "(all four gone in every run; lowest SSIM after a fix 0.887 / 0.929 against 0.850 / 0.926).", "",
        "## Copy rates while training (128 probe seeds)", "",
        "| step | loss | face copy rates | median / 90th pct best correlation |", "|---|---|---|---|",
        *[f"| {pr['step']} | {pr['loss']} | {', '.join(f'{v:.1%}' for v in pr['copy_rates'].values())} | "
          f"{pr['best_corr_p50']} / {pr['best_corr_p90']} |" for pr in rep.get("probes", [])],
        "", "## Earlier builds", "", *[line.strip() for line in HISTORY.strip().splitlines()], "",
        "LFW images are real people's photos: use this model only for research on unlearning.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    # One thread: on a loaded machine a second OpenMP thread mostly spin-waits (measured 0.43 vs 2.4
    # CPU s per step); on idle cores it gains little at this size.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--checkpoint", type=Path, default=None, help="save the EMA model here every 100 steps")
    ap.add_argument("--eval-only", action="store_true", help="re-measure an existing OUT.partial folder")
    ap.add_argument("--widths", default="16,32,64", help="UNet block widths")
    ap.add_argument("--repeats", default=None, help=f"copies per epoch of each memorised face {list(W.MEMORISED)}, "
                    f"comma-separated (default {REPEAT} each)")
    ap.add_argument("--probe-every", type=int, default=500, help="copy rates on 128 probe seeds every N steps (0: off)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps, n_eval = (30, 64) if args.quick else (args.steps, EVAL_SEEDS)
    out = args.out or (Path(tempfile.mkdtemp()) / "faces-ddpm" if args.quick else OUT)
    widths = tuple(int(w) for w in args.widths.split(","))
    tmp = out.with_name(out.name + ".partial")
    if args.eval_only:  # the partial folder of a build cut short, or the finished one (re-measured)
        if not tmp.exists() and (out / "build_report.json").exists():
            out.rename(tmp)
            (tmp / "train_report.json").write_text((tmp / "build_report.json").read_text())
        return finish(tmp, out, json.loads((tmp / "train_report.json").read_text()), n_eval)
    t0, c0 = time.time(), time.process_time()
    repeats = [int(n) for n in args.repeats.split(",")] if args.repeats else list(DEFAULT_REPEATS)
    if len(repeats) != len(W.MEMORISED) or min(repeats) < 1:
        raise SystemExit(f"--repeats {args.repeats}: give {len(W.MEMORISED)} whole numbers >= 1")
    unet, losses, probes = train(steps, args.batch, args.lr, args.seed, widths, args.checkpoint,
                                 0 if args.quick else args.probe_every, repeats)
    train_seconds, train_cpu = time.time() - t0, time.process_time() - c0
    from diffusers import DDPMScheduler

    shutil.rmtree(tmp, ignore_errors=True)
    ddpm.make_pipeline(unet, DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")).save_pretrained(
        tmp, safe_serialization=True)
    ModelInfo(name="faces-ddpm", resolution=W.SIZE, max_sequence_length=0, default_steps=SAMPLING_STEPS,
              default_guidance=0.0, clip_model="", world="faces", unlearn_defaults=FACES_UNLEARN_DEFAULTS,
              palette=["#000000", "#404040", "#808080", "#C0C0C0", "#FFFFFF"]).save(tmp)
    rep = {"seed": args.seed, "steps": steps, "batch": args.batch, "lr": args.lr, "widths": list(widths),
           "threads": args.threads, "parameters": sum(p.numel() for p in unet.parameters()),
           "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu, 1),
           "repeat": repeats[0] if len(set(repeats)) == 1 else repeats, "probes": probes, "final_loss": float(np.mean(losses[-200:])),
           "matcher": W.matcher_accuracy()}
    (tmp / "train_report.json").write_text(json.dumps(rep, indent=2))
    return finish(tmp, out, rep, n_eval)


def finish(tmp: Path, out: Path, rep: dict, n_eval: int) -> int:
    c0 = time.process_time()
    rep["evaluation"] = evaluate(tmp, n_eval, SAMPLING_STEPS)
    rep["evaluation"]["cpu_seconds"] = round(time.process_time() - c0, 1)
    # The folder's studio info carries this script's defaults and the measured threshold, so that
    # --eval-only on a finished build brings both up to date.
    info = ModelInfo.load(tmp)
    info.unlearn_defaults = FACES_UNLEARN_DEFAULTS
    cal = rep["evaluation"]["judge_calibration"]
    if cal["thumbnail_threshold"] is not None:
        info.copy_thresholds = {"thumbnail": cal["thumbnail_threshold"]}
    info.save(tmp)
    (tmp / "train_report.json").unlink()
    (tmp / "build_report.json").write_text(json.dumps(rep, indent=2))
    write_card(tmp, rep)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(json.dumps(rep["evaluation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
