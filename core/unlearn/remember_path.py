"""Points on the sampler's own path from the remember seeds (UnlearnConfig.remember_path_share).

A seed's picture is decided step by step, at the points x_t the sampler passes from the seed's
noise. The usual remember loss noises each remember output afresh, which covers the output's
neighbourhood but not those points; anchoring the model's prediction at them holds the map from
seeds to pictures, which decides how many seeds end on each picture the model repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..generate import initial_noise
from ..models import ddpm
from ..models.loading import LoadedModel

# A hub DDPM samples with many steps at 256 px: keep at most this many points per seed (evenly
# spaced over the steps), so the points stay a few hundred MB at most.
MAX_POINTS_PER_SEED = 10


@dataclass
class RememberPath:
    x_t: torch.Tensor  # (M, C, h, w) the points the sampler passed
    s: torch.Tensor  # (M,) their noise levels, s = (t + 1) / T
    rows: torch.Tensor  # (M,) long: the remember row (seed) each point belongs to


def check_path_support(model: LoadedModel, share: float) -> None:
    """A clear error before any work when remember_path_share cannot apply to this model."""
    if share and not model.unconditional:
        raise ValueError(f"UnlearnConfig.remember_path_share={share!r}: the sampler's path is recorded for "
                         "unconditional (DDPM) models only; set it to 0 for this model")


@torch.no_grad()
def sampler_paths(model: LoadedModel, seeds: list[int], steps: int, chunk: int = 64) -> RememberPath:
    """The points DDIM passes from each seed's noise (row i = seeds[i]), drawn with the model as it
    is now: call it where the remember set was drawn (earlier_fixes.drawing_from)."""
    check_path_support(model, 1.0)
    T = model.pipe.scheduler.config.num_train_timesteps
    xs, ss, rows = [], [], []
    for start in range(0, len(seeds), chunk):
        part = seeds[start:start + chunk]
        path: list[tuple[int, torch.Tensor]] = []
        ddpm.sample(model.pipe, torch.cat([initial_noise(model, s) for s in part]), steps, path=path)
        keep = torch.linspace(0, len(path) - 1, min(len(path), MAX_POINTS_PER_SEED)).round().long().unique()
        for k in keep.tolist():
            t, x = path[k]
            xs.append(x)
            ss.append(torch.full((len(part),), (t + 1) / T))
            rows.append(torch.arange(start, start + len(part)))
    return RememberPath(torch.cat(xs), torch.cat(ss).float(), torch.cat(rows))
