"""Field metadata and checks shared by every typed request and parameter class.

`param(default, help, lo=, hi=, kind=)` declares a dataclass field with its help text, range and
type; `check_value` raises one ValueError naming the field, the value and the fix. The CLI and the
GUI read the same metadata (help, range, default) to build flags and controls.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any


def param(default: Any, help: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
          kind: type | None = None, optional: bool = False):
    """A parameter field: default, help, inclusive range [lo, hi] ((lo, hi] with lo_open), the
    Python type it must have (`kind`), and whether None is allowed ("the model's default")."""
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open, "kind": kind, "optional": optional}
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def range_text(meta: dict) -> str:
    """'(0, 1]', '[1, 1000]', '>= 0' ... for help and error messages; '' when unbounded."""
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f"{'(' if meta.get('lo_open') else '['}{_num(lo)}, {_num(hi)}]"
    if lo is not None:
        return f"{'>' if meta.get('lo_open') else '>='} {_num(lo)}"
    return f"<= {_num(hi)}" if hi is not None else ""


def _num(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def check_value(name: str, value: Any, meta: dict) -> None:
    kind = meta.get("kind")
    if value is None:
        if meta.get("optional"):
            return
        raise ValueError(f"{name}=None: give a value" + (f" in {range_text(meta)}" if range_text(meta) else ""))
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name}={value!r}: must be a whole number" + _in(meta))
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{name}={value!r}: must be a number" + _in(meta))
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{name}={value!r}: must be text")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
        raise ValueError(f"{name}={value!r}: out of range; choose a value in {range_text(meta)}")
    if hi is not None and value > hi:
        raise ValueError(f"{name}={value!r}: out of range; choose a value in {range_text(meta)}")


def _in(meta: dict) -> str:
    r = range_text(meta)
    return f" in {r}" if r else ""


def check_fields(obj: Any, prefix: str) -> None:
    """check_value for every field of a dataclass instance that declares metadata."""
    for f in fields(obj):
        if "kind" in f.metadata:
            check_value(f"{prefix}.{f.name}", getattr(obj, f.name), f.metadata)
