"""One typed, validated request per operation: generate, compare, relapse, and the studio server.

The CLI builds these from its flags, the Studio verbs build them from their arguments, so bad
input fails the same way everywhere, before any work: one sentence naming the field, the value
and the fix (diffusers' `check_inputs`). Surrogates have their own per-kind classes
(core/surrogates), unlearning has UnlearnConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .models.loading import EMBEDDED, LoadOptions
from .validation import check_fields, param

from .limits import GUIDANCE_RANGE, STEPS_RANGE  # noqa: E402  (one set of bounds for every entry point)

MAX_STEPS = STEPS_RANGE[1]
MAX_GUIDANCE = GUIDANCE_RANGE[1]


def _seeds(name: str, seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError(f"{name} is empty: give at least one seed, e.g. 0-7")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"{name} contains {s!r}: seeds are whole numbers >= 0")
    return seeds


def _prompts(name: str, prompts: Sequence[str], unconditional: bool = False) -> tuple[str, ...]:
    """Non-empty prompts; for an unconditional model exactly the one empty prompt (seeds only)."""
    prompts = (prompts,) if isinstance(prompts, str) else tuple(prompts)
    if unconditional:
        if prompts != ("",):
            raise ValueError(f"{name}={list(prompts)!r}: the model is unconditional (no prompt); its outputs "
                             "are named by seed alone, so leave the prompt empty")
        return prompts
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError(f"{name}={list(prompts)!r}: give one or more non-empty prompts")
    return prompts


_STEPS_HELP = "denoising steps (None = the model's default)"
_GUIDANCE_HELP = "guidance scale (None = the model's default)"


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str = param("", "the prompt", kind=str)
    seeds: tuple = field(default=(0,), metadata={"help": "seeds; one image each, bit-identical on CPU"})
    steps: int | None = param(None, _STEPS_HELP, lo=1, hi=MAX_STEPS, kind=int, optional=True)
    guidance: float | None = param(None, _GUIDANCE_HELP, lo=0.0, hi=MAX_GUIDANCE, kind=float, optional=True)
    unconditional: bool = field(default=False, metadata={"help": "the model takes no prompt (prompt must be '')"})

    def __post_init__(self) -> None:
        check_fields(self, "generate")
        _prompts("generate.prompt", [self.prompt], self.unconditional)
        object.__setattr__(self, "seeds", _seeds("generate.seeds", self.seeds))


@dataclass(frozen=True)
class CompareRequest:
    prompts: tuple = field(default=(), metadata={"help": "prompts: the flagged one and others (integrity)"})
    seeds: tuple = field(default=(0,), metadata={"help": "the same seeds before and after"})
    fixes: tuple = field(default=(), metadata={"help": "fix names to switch on (empty = every enabled fix)"})
    steps: int | None = param(None, _STEPS_HELP, lo=1, hi=MAX_STEPS, kind=int, optional=True)
    guidance: float | None = param(None, _GUIDANCE_HELP, lo=0.0, hi=MAX_GUIDANCE, kind=float, optional=True)
    highlight: dict = field(default_factory=dict, metadata={"help": "prompt -> flagged seed, framed in figures"})
    unconditional: bool = field(default=False, metadata={"help": "the model takes no prompt (prompts must be [''])"})

    def __post_init__(self) -> None:
        check_fields(self, "compare")
        object.__setattr__(self, "prompts", _prompts("compare.prompts", self.prompts, self.unconditional))
        object.__setattr__(self, "seeds", _seeds("compare.seeds", self.seeds))
        object.__setattr__(self, "fixes", tuple(self.fixes or ()))
        for p, s in (self.highlight or {}).items():
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"compare.highlight[{p!r}]={s!r}: the flagged seed is a whole number >= 0")


@dataclass(frozen=True)
class RelapseRequest:
    prompt: str = param("", "the fixed prompt", kind=str)
    flagged_seed: int = param(0, "the seed the fix was made for", lo=0, kind=int)
    fixes: tuple = field(default=(), metadata={"help": "fix names to probe"})
    scan_seeds: tuple = field(default=tuple(range(64)), metadata={"help": "seeds scanned for the same error"})
    paraphrases: tuple | None = field(default=None, metadata={"help": "other phrasings (None = the world's)"})
    unconditional: bool = field(default=False, metadata={"help": "the model takes no prompt (prompt must be '')"})

    def __post_init__(self) -> None:
        check_fields(self, "relapse")
        _prompts("relapse.prompt", [self.prompt], self.unconditional)
        object.__setattr__(self, "scan_seeds", _seeds("relapse.scan_seeds", self.scan_seeds))
        object.__setattr__(self, "fixes", tuple(self.fixes or ()))
        if not self.fixes:
            raise ValueError("relapse.fixes is empty: name the fix to probe")
        if self.paraphrases is not None:
            object.__setattr__(self, "paraphrases", tuple(self.paraphrases))


@dataclass(frozen=True)
class StudioOptions:
    """How `unlearn-studio studio` serves the app: typed, checked, and printed at start-up."""

    host: str = param("127.0.0.1", "bind address (loopback only by default)", kind=str)
    port: int = param(7860, "TCP port", lo=1, hi=65535, kind=int)
    data_dir: Path = field(default=Path("studio-data"), metadata={"help": "runs, generations, temp files"})
    share: bool = field(default=False, metadata={"help": "ask Gradio for a public share link"})
    open_browser: bool = field(default=True, metadata={"help": "open a browser tab"})
    model: str = param(EMBEDDED, "'embedded', a diffusers folder, or a hub id", kind=str)
    load: LoadOptions = field(default_factory=LoadOptions, metadata={"help": "device, dtype, offload"})
    allow_hosts: tuple = field(default=(), metadata={"help": "more Host names the studio answers to (LAN names)"})

    def __post_init__(self) -> None:
        check_fields(self, "studio")
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())

    def describe(self) -> dict:
        """What start-up prints as JSON (IOPaint prints its ApiConfig the same way)."""
        load = self.load
        return {"model": self.model, "device": load.device, "dtype": load.dtype, "keep_t5": not load.drop_t5,
                "low_mem": load.cpu_offload, "offline": load.offline, "host": self.host, "port": self.port,
                "share": self.share, "data_dir": str(self.data_dir), "allow_hosts": list(self.allow_hosts)}
