"""Bounds on every number and list a person or a client can send, checked before any work.

The CLI and the studio both call these, so a seed range, a guidance or a step count is refused
with the same one-sentence message (field, value, fix) wherever it comes from, and before a seed
list is built or a tensor allocated.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

# torch's CPU generator seeds its Mersenne Twister with the low 32 bits of the seed (measured:
# seed 2**32 + 5 draws the same noise as seed 5), so larger seeds are not new outputs but aliases.
SEED_MAX = 2**32 - 1
MAX_SEEDS_CLI = 10_000  # one CLI call (check/compare/relapse scans); the studio allows fewer
MAX_SEED_SPEC_CHARS = 10_000  # a seed list longer than this is not typed by a person
STEPS_RANGE = (1, 1000)
MAX_PROMPTS = 100  # prompts in one comparison
MAX_PROMPT_CHARS = 2000  # the text encoders read 77..256 tokens; longer text is only cost
SAMPLING_PRECISIONS = ("model", "bfloat16")  # the model's own dtype | bf16 autocast over a float32 model
GUIDANCE_RANGE = (0.0, 100.0)  # SD3 is used at 1..10; far beyond 100 the output is pure noise


class InputLimitError(ValueError):
    """A number or list outside what the engine accepts; the message names field, value and fix."""


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_number(value, field: str, lo: float, hi: float, *, integer: bool = False,
                 lo_open: bool = False) -> float | int:
    """`value` as a finite number within [lo, hi] ((lo, hi] with lo_open), else InputLimitError."""
    lo_text = f"above {lo}" if lo_open else f"from {lo}"
    want = f"a whole number {lo_text} to {hi}" if integer else f"a number {lo_text} to {hi}"
    if isinstance(value, bool) or value is None:
        raise InputLimitError(f"{field}={_show(value)} is not a number: give {want}")
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in ("i", "u")):
        number = int(value)  # exact, however large: no float rounding of huge seeds
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise InputLimitError(f"{field}={_show(value)} is not a number: give {want}") from None
        if not math.isfinite(number):
            raise InputLimitError(f"{field}={_show(value)} is not finite: give {want}")
        if integer:
            if not number.is_integer():
                raise InputLimitError(f"{field}={_show(value)} is not a whole number: give {want}")
            number = int(number)
    if number < lo or number > hi or (lo_open and number == lo):
        raise InputLimitError(f"{field}={_show(value)} is out of range: give {want}")
    return number if integer else float(number)


def check_seed(value, field: str = "seed") -> int:
    """A seed the generator draws distinct noise for: a whole number in 0..SEED_MAX."""
    return check_number(value, field, 0, SEED_MAX, integer=True)


def check_steps(value, field: str = "steps") -> int:
    return check_number(value, field, *STEPS_RANGE, integer=True)


def check_guidance(value, field: str = "guidance") -> float:
    return check_number(value, field, *GUIDANCE_RANGE)


def _seed_text(text: str, field: str) -> int:
    text = text.strip()
    if len(text) > 20:  # out of range anyway; int() of 5000 digits would trip Python's digit limit
        raise InputLimitError(f"{field}={_show(text)} is out of range: give a whole number from 0 to {SEED_MAX}")
    return check_seed(int(text), field)


def _seed_ranges(spec: str, field: str) -> Iterator[tuple[int, int]]:
    """(lo, hi) per comma-separated part, each bound checked; nothing is expanded here."""
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo_text, sep, hi_text = part.partition("-")
        if not sep:
            hi_text = lo_text
        if not (lo_text.strip().isdigit() and hi_text.strip().isdigit()):
            raise InputLimitError(f"{field}={_show(part)} is not a seed or a range: write e.g. 0-7 or 0,3,5 "
                                  "(whole numbers >= 0)")
        lo, hi = (_seed_text(t, field) for t in (lo_text, hi_text))
        if hi < lo:
            raise InputLimitError(f"{field}={_show(part)}: the range runs backwards; write it as {hi}-{lo}")
        yield lo, hi


def parse_seeds(spec: str | Iterable[int], max_count: int = MAX_SEEDS_CLI, field: str = "seeds") -> list[int]:
    """'0-7,12,20-22' -> [0..7, 12, 20, 21, 22], at most `max_count` seeds, each in 0..SEED_MAX.

    The count is summed from the ranges' bounds before any list is built, so '0-100000000' is
    refused in microseconds instead of allocating gigabytes first.
    """
    if not isinstance(spec, str):
        seeds = []
        for s in spec:
            seeds.append(check_seed(s, field))
            if len(seeds) > max_count:
                raise InputLimitError(f"{field}: more than {max_count} seeds; ask for at most {max_count} at once")
        if not seeds:
            raise InputLimitError(f"{field}: the seed list is empty; give at least one seed")
        return seeds
    if len(spec) > MAX_SEED_SPEC_CHARS:
        raise InputLimitError(f"{field}: the seed list is {len(spec)} characters long; write ranges like 0-63 "
                              f"(at most {MAX_SEED_SPEC_CHARS} characters)")
    ranges = list(_seed_ranges(spec, field))
    if not ranges:
        raise InputLimitError(f"{field}={_show(spec)} holds no seeds: write e.g. 0-7 or 0,3,5")
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > max_count:
        raise InputLimitError(f"{field}={_show(spec)} asks for {count} seeds; ask for at most {max_count} at once")
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


def seeds_from_start(start, count, max_count: int, field: str = "count") -> list[int]:
    """`count` consecutive seeds from `start`, both checked before the list is built."""
    count = check_number(count, field, 1, max_count, integer=True)
    start = check_seed(start, "start seed")
    if start + count - 1 > SEED_MAX:
        raise InputLimitError(f"start seed {start} + count {count} runs past the largest seed {SEED_MAX}: "
                              "start lower")
    return list(range(start, start + count))


def check_prompt(prompt, field: str = "prompt") -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputLimitError(f"the {field} is empty: type what to draw")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputLimitError(f"the {field} is {len(prompt)} characters long; shorten it to at most "
                              f"{MAX_PROMPT_CHARS}")
    return prompt


def check_prompts(prompts: Iterable[str], max_count: int = MAX_PROMPTS) -> list[str]:
    out = []
    for p in prompts:
        out.append(check_prompt(p))
        if len(out) > max_count:
            raise InputLimitError(f"more than {max_count} prompts in one call; compare at most {max_count}")
    if not out:
        raise InputLimitError("no prompt given: give at least one")
    return out
