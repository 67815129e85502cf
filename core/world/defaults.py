"""The studio's unlearning defaults for the flags world, as measured on the shipped model.

On 16 seeds x 22 prompts, fixing "ireland flag" seed 0 with a painted surrogate: running all 100
steps erased "cote d'ivoire flag" (which *is* the flagged image): with the paper's remember set
(the flagged prompt only) at lr 1e-4, 3e-4 and 1e-3, and with every prompt remembered at 1e-4
and 2e-4. Stopping once the checker sees the seed drawn right (10 steps at 1e-3), with every
prompt remembered, kept the most: 95.5% of the other prompts' verdicts. README has the numbers.

On the 3000-step build (64 seeds x 22 prompts, bench/results/world_rates*.md), that even split let
the Ireland fix erase "cote d'ivoire flag" (0% of its verdicts kept: a reversed Ireland *is* its
flag). Remembering the look-alike prompt hardest (lookalike_share 0.4, the studio finds it with the
checker) and the flagged prompt next (40% of the rest) kept it at 100% and the other prompts at
96.4%; look-alike weighting with an even split of the rest left the flagged seed unfixed.

Since then the forgetting judge (core/judge.py), not the checker, finds the look-alike prompts and
decides when a fix is done; the checker only evaluates (bench/results/heldout.md).
"""

from __future__ import annotations

from .prompts import PROMPTS

FLAGS_UNLEARN_DEFAULTS: dict = {
    "learning_rate": 1e-3,
    "stop_when_fixed": True,  # the forgetting judge decides (core/judge.py); monitor every 10 steps
    "remember_prompts": [phrasings[0] for phrasings in PROMPTS.values()],
    "remember_set_size": 5 * len(PROMPTS),  # 110 in all
    # Of those: 40% for the prompts whose flag the flagged image shows (UnlearnConfig.lookalike_share),
    # then 40% of the rest for the flagged prompt (its correct outputs anchor the fix), the rest split.
    "flagged_prompt_share": 0.4,
    # remember_sampling_steps stays the model's 20: 8 steps kept integrity within 1 point on tuning
    # seeds 0-15 but cost 3 points of same-prompt right seeds on the held-out bench (seeds >= 1000),
    # against issue 17's "unchanged within 1 point" (bench/results/remember_steps.md).
    # Drawn under bf16 autocast instead: half the time (10.3 s against 20.5 s for the 110 images), and
    # on the held-out bench the same right seeds kept (0.973), other prompts 0.944 against 0.945, SSIM
    # 0.880 against 0.881 (bench/results/remember_precision.md, heldout_judge_rembf16.md).
    "remember_precision": "bfloat16",
    # The remember loss regresses half the model's own prediction before the fix and half the noise
    # (UnlearnConfig.remember_target, remember_model_share). Chosen on tuning seeds from 200: right seeds
    # kept 0.977 against 0.985 (within 1 point), other prompts 0.973 against 0.969, SSIM 0.909 against
    # 0.889; all of the model's own prediction kept SSIM 0.926 but right seeds only 0.957. Held-out
    # (seeds >= 1000): right kept 0.997 / 0.980 against 0.973 / 0.878, others 0.954 against 0.943, SSIM
    # 0.905 against 0.880 (bench/results/heldout_judge_rtmodel05.md, heldout_judge_base_rerun.md).
    "remember_target": "model",
    "remember_model_share": 0.5,
}
