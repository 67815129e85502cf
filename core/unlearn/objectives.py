"""Flow-matching targets and per-sample losses in SD3's latent space.

Rectified flow: x_t = (1 - s) x0 + s eps, the model predicts the velocity v = eps - x0.
The paper's forget target asks, for the noised *flagged* latent x_f, for the velocity that
would explain x_t from the *surrogate* x_s:
    eps_s = (x_t - (1 - s) x_s) / s,   v_s = eps_s - x_s = (x_t - x_s) / s,
which is the ordinary target eps - x_f when x_s = x_f.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def broadcast(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) noise levels -> (B, 1, 1, 1) to scale latents."""
    return s.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def noisy(x0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    sb = broadcast(s, x0)
    return (1 - sb) * x0 + sb * eps


def ordinary_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    return eps - x0


def surrogate_target(x_t: torch.Tensor, x_s: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """v_s = (x_t - x_s) / s (the paper's forget target, rectified-flow form)."""
    return (x_t - x_s) / broadcast(s, x_t)


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred.float() - target.float()) ** 2).flatten(1).mean(1)


@dataclass
class Conditioning:
    """Prompt embeddings as SD3's transformer takes them, for a batch."""

    prompt_embeds: torch.Tensor  # (B, T, joint_attention_dim)
    pooled: torch.Tensor  # (B, pooled_projection_dim)

    def take(self, idx: torch.Tensor) -> "Conditioning":
        return Conditioning(self.prompt_embeds[idx], self.pooled[idx])

    def repeat(self, n: int) -> "Conditioning":
        return Conditioning(self.prompt_embeds.expand(n, -1, -1), self.pooled.expand(n, -1))

    @staticmethod
    def cat(parts: list["Conditioning"]) -> "Conditioning":
        return Conditioning(torch.cat([p.prompt_embeds for p in parts]), torch.cat([p.pooled for p in parts]))


def velocity(transformer, x_t: torch.Tensor, s: torch.Tensor, cond: Conditioning) -> torch.Tensor:
    """The transformer's velocity prediction; SD3 takes timesteps as s * 1000."""
    # Its first weights' dtype (the patch embedding's, which layerwise casting leaves alone): diffusers'
    # `dtype` property walks every submodule, 1.2 ms a call on the tiny flags transformer with a fix on,
    # more on SD3-medium, and a training step asks two or three times.
    dtype = next(transformer.parameters()).dtype
    return transformer(
        hidden_states=x_t.to(dtype),
        timestep=(s * 1000).to(x_t.device, dtype),
        encoder_hidden_states=cond.prompt_embeds.to(dtype),
        pooled_projections=cond.pooled.to(dtype),
        return_dict=False,
    )[0]
