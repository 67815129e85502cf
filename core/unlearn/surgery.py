"""Gradient surgery between the forget gradient g_f and the remember gradient g_r.

On conflict (<g_f, g_r> < 0) the paper removes from g_f its component along g_r:
    g_f <- g_f - (<g_f, g_r> / ||g_r||^2) g_r,   then steps on g_f + g_r.
"pcgrad" also projects g_r off g_f (PCGrad, Yu et al. 2020), the ablation that hurt quality.
Gradients are lists of tensors (one per LoRA parameter), treated as one flat vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Grads = list[torch.Tensor]
_EPS = 1e-20


def dot(a: Grads, b: Grads) -> torch.Tensor:
    return sum((x.double() * y.double()).sum() for x, y in zip(a, b))


def norm(a: Grads) -> torch.Tensor:
    return dot(a, a).sqrt()


def cosine(a: Grads, b: Grads) -> float:
    denom = norm(a) * norm(b)
    return float(dot(a, b) / denom) if denom > 0 else 0.0


@dataclass
class SurgeryResult:
    g_f: Grads
    g_r: Grads
    cos: float  # cosine(g_f, g_r) before projection
    projected: bool

    def combined(self) -> Grads:
        return [f + r for f, r in zip(self.g_f, self.g_r)]


def project(g_f: Grads, g_r: Grads, mode: str = "forget") -> SurgeryResult:
    """Apply surgery `mode` (off | forget | pcgrad) and report the conflict."""
    inner = dot(g_f, g_r)
    cos = cosine(g_f, g_r)
    if mode == "off" or inner >= 0:
        return SurgeryResult(g_f, g_r, cos, False)
    nr2, nf2 = dot(g_r, g_r), dot(g_f, g_f)
    new_f = [f - (inner / (nr2 + _EPS)).to(f.dtype) * r for f, r in zip(g_f, g_r)]
    if mode == "forget":
        return SurgeryResult(new_f, g_r, cos, True)
    if mode == "pcgrad":
        new_r = [r - (inner / (nf2 + _EPS)).to(r.dtype) * f for f, r in zip(g_f, g_r)]
        return SurgeryResult(new_f, new_r, cos, True)
    raise ValueError(f"surgery mode {mode!r}: choose off, forget or pcgrad")
