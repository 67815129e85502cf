"""Noise levels and the timestep-aware forget/remember weight.

High-noise steps shape global structure (forget there), low-noise steps shape detail (remember
there): lambda(s) rises with the noise level s in [0, 1]. Total per step:
    lambda(s_f) * L_f  +  (1 - lambda(s_r)) * L_r
"""

from __future__ import annotations

import torch

from .config import UnlearnConfig


def lambda_weight(sigmas: torch.Tensor, config: UnlearnConfig) -> torch.Tensor:
    """lambda per sample for noise levels `sigmas` (s in [0, 1])."""
    if config.lambda_scheme == "constant":
        return torch.full_like(sigmas, config.lambda_constant)
    return sigmas.clamp(0, 1) ** config.lambda_exponent


def sample_sigmas(n: int, scheduler_sigmas: torch.Tensor, config: UnlearnConfig, generator: torch.Generator) -> torch.Tensor:
    """Draw n training noise levels like diffusers' SD3 scripts: a density over [0, 1) picks an
    index into the scheduler's (already shifted) sigma table."""
    if config.timestep_sampling == "logit_normal":
        u = torch.sigmoid(torch.randn(n, generator=generator) * config.logit_std + config.logit_mean)
    else:
        u = torch.rand(n, generator=generator)
    table = scheduler_sigmas[:-1] if scheduler_sigmas[-1] == 0 else scheduler_sigmas  # drop the final 0
    idx = (u * len(table)).long().clamp(0, len(table) - 1)
    return table[idx].float()
