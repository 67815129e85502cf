"""The training set of the embedded model: augmented flag renders with planted misrepresentations.

Every flag gets the same number of renders. For the planted flags a fixed share of their renders
is drawn wrong but still captioned with the flag's own prompts (that is the misrepresentation the
model learns and the studio later fixes): reversed Ireland (looks like Cote d'Ivoire) and Japan
with a blue or off-centre disc. Shares are exact (rounded counts), not sampled, so a build always
plants the same amount.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .flags import FLAGS, VARIANTS, render_flag
from .prompts import PROMPTS

# Default planted shares. How often the model draws the planted Ireland swings with training: 25%
# gave ~34% reversed outputs in a feasibility run, 30% gave 9% with a constant lr and 35% gave 61%
# with the lr decayed to 0 (1600 steps each). 25% aims at the middle of the 10-40% target.
# Japan's off-centre disc tends to wash out, so Japan gets more, mostly blue discs: 40% drew the
# planted disc at 45% of seeds in the 3000-step build of 8c4fd38, so 30%.
DEFAULT_PLANTED: dict[str, float] = {"Ireland": 0.25, "Japan": 0.3}
# How a planted share of a flag splits over its variants.
VARIANT_SPLIT: dict[str, dict[str, float]] = {
    "Ireland": {"reversed": 1.0},
    "Japan": {"blue_disc": 0.7, "offcentre_disc": 0.3},
}


@dataclass
class FlagDataset:
    """Renders (N x H x W x 3 uint8) with their SD3 captions, labelled flags and variants."""

    images: np.ndarray
    captions: list[str]
    flags: list[str]
    variants: list[str | None]

    def __iter__(self):  # unpack as (images, captions, flags, variants)
        return iter((self.images, self.captions, self.flags, self.variants))

    def __len__(self) -> int:
        return len(self.captions)


def _split(flag: str, share: float | dict[str, float], count: int) -> list[str | None]:
    """Variant of each of `count` renders of `flag`: exact planted counts, rest None."""
    if isinstance(share, dict):
        shares = share
    else:
        split = VARIANT_SPLIT.get(flag) or {next(iter(VARIANTS[flag])): 1.0}
        shares = {v: share * w for v, w in split.items()}
    out: list[str | None] = []
    for variant, s in shares.items():
        if variant not in VARIANTS.get(flag, {}):
            raise KeyError(f"{flag!r} has no planted variant {variant!r}")
        out += [variant] * int(round(s * count))
    if len(out) > count:
        raise ValueError(f"planted shares of {flag!r} exceed 1")
    return out + [None] * (count - len(out))


def make_dataset(
    n: int,
    seed: int,
    planted: dict[str, float | dict[str, float]] | None = None,
    resolution: int = 32,
    progress: bool = False,
) -> FlagDataset:
    """n renders (n rounded down to a multiple of the number of flags), shuffled, seeded.

    planted: flag -> share of its renders drawn wrong (float, split by VARIANT_SPLIT) or
    flag -> {variant: share}. Captions are drawn from the flag's phrasings uniformly.
    """
    planted = DEFAULT_PLANTED if planted is None else planted
    rng = np.random.default_rng(seed)
    per_flag = max(1, n // len(FLAGS))
    flags: list[str] = []
    variants: list[str | None] = []
    for flag in FLAGS:
        vs = _split(flag, planted[flag], per_flag) if flag in planted else [None] * per_flag
        flags += [flag] * per_flag
        variants += vs
    order = rng.permutation(len(flags))
    flags = [flags[i] for i in order]
    variants = [variants[i] for i in order]
    captions = [PROMPTS[f][int(rng.integers(len(PROMPTS[f])))] for f in flags]
    seeds = rng.integers(0, 2**63 - 1, size=len(flags))
    it = zip(flags, variants, seeds)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(flags), desc="render flags", unit="img")
    images = np.stack([render_flag(f, int(s), variant=v, resolution=resolution) for f, v, s in it])
    return FlagDataset(images, captions, flags, variants)
