"""Named settings of a fix, shown as separate row sets by the benches (bench/table1.py, ablations.py).

- `paper`: the setting "Unlearning the Unpromptable" reports for SD3 + LoRA: a remember set of
  100 generations of the flagged prompt only, kept as generated (no filter, no look-alike shares),
  a fixed number of steps (100; no early stop, no guard) and the remember loss weighted 1 - lambda,
  regressing the sampled noise.
- `studio`: the studio's defaults for the model as they are (for the flags world
  core/world/defaults.py: every prompt remembered, look-alike and flagged-prompt shares; the
  forgetting judge filters the remember set, finds look-alikes and stops the fix).

A preset only sets the fields named here; learning rate, method and seed stay the caller's.
"""

from __future__ import annotations

from .config import UnlearnConfig

PRESETS = ("paper", "studio")

PAPER_OVERRIDES: dict = {
    "remember_prompts": [],
    "remember_set_size": 100,
    "flagged_prompt_share": None,
    "lookalike_prompts": [],
    "lookalike_share": 0.0,
    "remember_filter": False,
    "stop_when_fixed": False,
    "keep_best": False,
    "remember_floor": 0.0,
    "remember_target": "noise",
    "steps": 100,
}


def apply_preset(name: str, config: UnlearnConfig) -> UnlearnConfig:
    """`config` with preset `name` applied; `studio` returns it unchanged (it is the defaults)."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r}: choose one of {', '.join(PRESETS)}")
    if name == "studio":
        return config
    # Not with_overrides: it skips None values, and the paper's flagged_prompt_share is None.
    return UnlearnConfig.from_dict({**config.to_dict(), **PAPER_OVERRIDES})


def parse_presets(text: str) -> list[str]:
    """A comma list from a command line, e.g. "paper,studio"; unknown names are refused."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in PRESETS]
    if bad or not names:
        raise ValueError(f"--preset {text!r}: use a comma list of {', '.join(PRESETS)}")
    return names
