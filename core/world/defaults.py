"""The studio's unlearning defaults for the flags world, as measured on the shipped model.

On 16 seeds x 22 prompts, fixing "ireland flag" seed 0 with a painted surrogate (bench notes in
README): the paper's remember set (100 generations of the flagged prompt only) let every tried
learning rate (1e-4 .. 1e-3) also erase "cote d'ivoire flag", which *is* the flagged image, and
100 steps at 1e-3 damaged other flags too. Remembering every prompt of the world and stopping once
the checker sees the flagged seed drawn right kept the most: 95.5% of other prompts' verdicts.
"""

from __future__ import annotations

from .prompts import PROMPTS

FLAGS_UNLEARN_DEFAULTS: dict = {
    "learning_rate": 1e-3,
    "stop_when_fixed": True,  # the checker is the forgetting criterion; monitor every 10 steps
    "remember_prompts": [phrasings[0] for phrasings in PROMPTS.values()],
    "remember_set_size": 110,  # 5 generations per prompt of the 22
}
