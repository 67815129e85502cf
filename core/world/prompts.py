"""Prompt phrasings of the flags world and the mapping from a prompt back to its flag.

Each flag has three phrasings ("ireland flag", "flag of ireland", "irish flag"), ASCII only and
matched case-insensitively. The tokenizer is trained on `all_captions()`, so every word here is a
single token of the shipped model. `clip_caption` gives the honest description of a render
(what it shows, planted variants included), used to train the world's CLIP.
"""

from __future__ import annotations

import re

from .flags import FLAGS

# flag -> (name as written in prompts, adjective, needs "the" in "flag of the ...")
_NAMES: dict[str, tuple[str, str, bool]] = {
    "Ireland": ("ireland", "irish", False),
    "Cote d'Ivoire": ("cote d'ivoire", "ivorian", False),
    "Italy": ("italy", "italian", False),
    "France": ("france", "french", False),
    "Belgium": ("belgium", "belgian", False),
    "Germany": ("germany", "german", False),
    "Netherlands": ("netherlands", "dutch", True),
    "Russia": ("russia", "russian", False),
    "Japan": ("japan", "japanese", False),
    "Bangladesh": ("bangladesh", "bangladeshi", False),
    "Sweden": ("sweden", "swedish", False),
    "Denmark": ("denmark", "danish", False),
    "Finland": ("finland", "finnish", False),
    "Norway": ("norway", "norwegian", False),
    "Poland": ("poland", "polish", False),
    "Austria": ("austria", "austrian", False),
    "Ukraine": ("ukraine", "ukrainian", False),
    "Indonesia": ("indonesia", "indonesian", False),
    "Estonia": ("estonia", "estonian", False),
    "Lithuania": ("lithuania", "lithuanian", False),
    "Hungary": ("hungary", "hungarian", False),
    "Switzerland": ("switzerland", "swiss", False),
}
assert set(_NAMES) == set(FLAGS), "every flag needs prompt names"


def _phrasings(flag: str) -> list[str]:
    name, adjective, the = _NAMES[flag]
    return [f"{name} flag", f"flag of {'the ' if the else ''}{name}", f"{adjective} flag"]


# flag -> phrasings; the first one is the canonical prompt ("ireland flag").
PROMPTS: dict[str, list[str]] = {flag: _phrasings(flag) for flag in FLAGS}

# Honest descriptions of the planted variants (for CLIP; never shown to the SD3 transformer).
VARIANT_CAPTIONS: dict[tuple[str, str], str] = {
    ("Japan", "blue_disc"): "japan flag with a blue disc",
    ("Japan", "offcentre_disc"): "japan flag with an off centre disc",
}
# Variants that simply look like another real flag.
VARIANT_LOOKS_LIKE: dict[tuple[str, str], str] = {("Ireland", "reversed"): "Cote d'Ivoire"}


def normalise(prompt: str) -> str:
    """Lowercase, curly quotes to ASCII, single spaces, no trailing punctuation."""
    p = prompt.lower().replace("\u2019", "'").replace("\u00f4", "o")
    p = re.sub(r"[^a-z' ]+", " ", p)
    return " ".join(p.split())


_EXACT: dict[str, str] = {normalise(p): flag for flag, ps in PROMPTS.items() for p in ps}
# Names and adjectives for prompts phrased differently ("a photo of the irish flag").
_WORDS: list[tuple[str, str]] = sorted(
    ((w, flag) for flag, (name, adj, _) in _NAMES.items() for w in (name, adj)),
    key=lambda wf: -len(wf[0]),
)


def flag_for_prompt(prompt: str) -> str | None:
    """The flag a prompt asks for, or None when it names no flag (or several)."""
    p = normalise(prompt)
    if p in _EXACT:
        return _EXACT[p]
    padded = f" {p} "
    found = {flag for word, flag in _WORDS if f" {word} " in padded}
    return found.pop() if len(found) == 1 else None


def canonical_prompt(flag: str) -> str:
    """The default prompt of a flag: "ireland flag"."""
    return PROMPTS[flag][0]


def clip_caption(flag: str, variant: str | None, rng=None) -> str:
    """Honest caption of a render: what the image shows, not what it was labelled."""
    if variant is not None:
        if (flag, variant) in VARIANT_LOOKS_LIKE:
            flag = VARIANT_LOOKS_LIKE[(flag, variant)]
        else:
            return VARIANT_CAPTIONS[(flag, variant)]
    options = PROMPTS[flag]
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def all_captions() -> list[str]:
    """Every text the world's models see (tokenizer corpus): phrasings and variant captions."""
    texts = [p for ps in PROMPTS.values() for p in ps]
    return texts + list(VARIANT_CAPTIONS.values())
