"""The studio's unlearning defaults for the flags world, as measured on the shipped model.

On 16 seeds x 22 prompts, fixing "ireland flag" seed 0 with a painted surrogate: running all 100
steps erased "cote d'ivoire flag" (which *is* the flagged image): with the paper's remember set
(the flagged prompt only) at lr 1e-4, 3e-4 and 1e-3, and with every prompt remembered at 1e-4
and 2e-4. Stopping once the checker sees the seed drawn right (10 steps at 1e-3), with every
prompt remembered, kept the most: 95.5% of the other prompts' verdicts. README has the numbers.
"""

from __future__ import annotations

from .prompts import PROMPTS

FLAGS_UNLEARN_DEFAULTS: dict = {
    "learning_rate": 1e-3,
    "stop_when_fixed": True,  # the checker is the forgetting criterion; monitor every 10 steps
    "remember_prompts": [phrasings[0] for phrasings in PROMPTS.values()],
    "remember_set_size": 5 * len(PROMPTS),  # 5 generations per prompt
}
