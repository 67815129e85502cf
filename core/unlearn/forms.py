"""Parameterisations of the diffusion loss: SD3's rectified flow (velocity) and DDPM's epsilon.

The methods (methods.py) are written once against this small interface, with a sample's noise
level `s` in [0, 1] (the timestep weight lambda(s) and the samplers use it):
  noisy(x0, eps, s)               the forward process
  ordinary_target(x0, eps)        the usual regression target
  surrogate_target(x_t, x_s, s)   the target that explains x_t from the surrogate x_s
  coeffs(s, like)                 (gamma, sigma) with x_t = gamma x0 + sigma eps (SISS needs them)
  predict(net, x_t, s, cond)      the network's output in the same parameterisation
  timestep_table()                the noise levels a training step samples from

DDPM (epsilon form, the paper's DDPM setting): with abar_t the cumulative alpha,
  x_t = sqrt(abar) x_f + sqrt(1 - abar) eps,
  eps_s = (x_t - sqrt(abar) x_s) / sqrt(1 - abar) = eps + sqrt(abar / (1 - abar)) (x_f - x_s),
which is eps exactly when x_s = x_f. Timestep t in 0..T-1 is the noise level s = (t + 1) / T
(the paper's "normalised timestep"), so the same lambda = s**k weights both families.
"""

from __future__ import annotations

import torch

from . import objectives as flow
from .objectives import Conditioning, broadcast


class FlowForm:
    """SD3's rectified flow, x_t = (1 - s) x0 + s eps, velocity target (objectives.py)."""

    name = "flow"

    def __init__(self, sigmas: torch.Tensor | None = None):
        self.sigmas = sigmas

    noisy = staticmethod(flow.noisy)
    ordinary_target = staticmethod(flow.ordinary_target)
    surrogate_target = staticmethod(flow.surrogate_target)

    @staticmethod
    def coeffs(s: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sb = broadcast(s, like)
        return 1 - sb, sb

    @staticmethod
    def predict(net, x_t: torch.Tensor, s: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return flow.velocity(net, x_t, s, cond)

    def timestep_table(self) -> torch.Tensor:
        return self.sigmas


class EpsForm:
    """DDPM's variance-preserving process with an epsilon-predicting UNet2DModel."""

    name = "eps"

    def __init__(self, alphas_cumprod: torch.Tensor):
        self.abar = alphas_cumprod.double()
        self.T = len(self.abar)

    def timesteps(self, s: torch.Tensor) -> torch.Tensor:
        """Noise level s = (t + 1) / T back to the integer timestep t."""
        return (s.double() * self.T).round().long().clamp(1, self.T) - 1

    def coeffs(self, s: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        abar = self.abar[self.timesteps(s.cpu())].to(like.device)
        return broadcast(abar.sqrt(), like), broadcast((1 - abar).sqrt(), like)

    def noisy(self, x0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, sigma = self.coeffs(s, x0)
        return gamma * x0 + sigma * eps

    @staticmethod
    def ordinary_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return eps

    def surrogate_target(self, x_t: torch.Tensor, x_s: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """eps_s = (x_t - sqrt(abar) x_s) / sqrt(1 - abar)."""
        gamma, sigma = self.coeffs(s, x_t)
        return (x_t - gamma * x_s) / sigma

    def predict(self, net, x_t: torch.Tensor, s: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        t = self.timesteps(s.cpu()).to(x_t.device)
        return net(x_t.to(net.dtype), t).sample

    def timestep_table(self) -> torch.Tensor:
        return (torch.arange(self.T, dtype=torch.float64) + 1).float() / self.T

    def min_snr_weight(self, s: torch.Tensor, gamma: float) -> torch.Tensor:
        """min(SNR, gamma) / SNR per sample, SNR = abar / (1 - abar): the epsilon loss times this is the
        x0 loss times min(SNR, gamma) (Min-SNR-gamma weighting)."""
        abar = self.abar[self.timesteps(s.cpu())]
        snr = abar / (1 - abar)
        return (snr.clamp(max=gamma) / snr).float()


def form_for(model) -> "FlowForm | EpsForm":
    """The parameterisation of a LoadedModel's denoiser."""
    if model.unconditional:
        from ..models.ddpm import alphas_cumprod

        return EpsForm(alphas_cumprod(model.pipe))
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowForm(FlowMatchEulerDiscreteScheduler.from_config(model.pipe.scheduler.config).sigmas.float())


def null_conditioning(n: int, device=None) -> Conditioning:
    """The conditioning of an unconditional model: empty tensors that batch like real ones."""
    return Conditioning(torch.zeros(n, 0, 0, device=device), torch.zeros(n, 0, device=device))
