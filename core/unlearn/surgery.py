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


def _flat(a: Grads) -> torch.Tensor:
    return torch.cat([x.reshape(-1) for x in a]).double()


def dot(a: Grads, b: Grads) -> torch.Tensor:
    return torch.dot(_flat(a), _flat(b))


def norm(a: Grads) -> torch.Tensor:
    return _flat(a).norm()


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
    """Apply surgery `mode` (off | forget | pcgrad) and report the conflict.

    Each gradient is flattened once and the three inner products computed once (in float64):
    a loop per LoRA tensor per product cost ~14k small ops per step at SD3-medium's size.
    """
    if mode not in ("off", "forget", "pcgrad"):
        raise ValueError(f"surgery mode {mode!r}: choose off, forget or pcgrad")
    flat_f, flat_r = _flat(g_f), _flat(g_r)
    inner, nf2, nr2 = torch.dot(flat_f, flat_r), torch.dot(flat_f, flat_f), torch.dot(flat_r, flat_r)
    denom = (nf2 * nr2).sqrt()
    cos = float(inner / denom) if denom > 0 else 0.0
    if mode == "off" or inner >= 0:
        return SurgeryResult(g_f, g_r, cos, False)
    new_f = [f - (inner / (nr2 + _EPS)).to(f.dtype) * r for f, r in zip(g_f, g_r)]
    if mode == "pcgrad":
        new_r = [r - (inner / (nf2 + _EPS)).to(r.dtype) * f for f, r in zip(g_f, g_r)]
        return SurgeryResult(new_f, new_r, cos, True)
    return SurgeryResult(new_f, g_r, cos, True)
