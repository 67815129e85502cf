"""Typed parameters of the surrogate makers: one frozen dataclass per kind (peft's LoraConfig style).

Each field carries its help text and range in `metadata`; `__post_init__` checks types and ranges,
so `NoiseParams(sigma=0)` fails with one sentence naming the field, the value and the fix, and an
unknown name (`sigm=0.5`) is refused instead of silently using the default. The CLI builds its
`surrogate` flags and the GUI its sliders from the same metadata (`param_spec`).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

from ..validation import check_value, param, range_text  # noqa: F401 (param: re-exported for makers)


@dataclass(frozen=True)
class SurrogateParams:
    """Base of every kind's parameters. Subclasses declare fields with `param(...)`."""

    kind = "?"  # set by each subclass (class attribute, not a field)

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f"{self.kind}.{f.name}", getattr(self, f.name), f.metadata)

    @classmethod
    def from_dict(cls, values: dict | None) -> "SurrogateParams":
        """Build from plain values (JSON, CLI flags); unknown names are an error."""
        values = dict(values or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise ValueError(f"surrogate {cls.kind!r} has no parameter {', '.join(map(repr, unknown))}: "
                             f"its parameters are {allowed}")
        return cls(**values)

    def to_info(self) -> dict:
        """JSON-friendly parameters for the run's config.json (images are counted, not stored)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = len([x for x in v if x is not None]) if isinstance(v, tuple) else v
        return out


def param_spec(params_type: type[SurrogateParams], name: str) -> dict:
    """{'default', 'help', 'lo', 'hi', 'lo_open', 'kind', 'optional', 'range'} of one field: what the
    CLI flags and the GUI controls are built from."""
    for f in fields(params_type):
        if f.name == name:
            default = None if f.default is MISSING else f.default
            return {**f.metadata, "default": default, "range": range_text(f.metadata)}
    raise KeyError(f"surrogate {params_type.kind!r} has no parameter {name!r}")
