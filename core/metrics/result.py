"""The one result type every metric returns, and JSON-safety for it.

Why a single type: the CLI, the GUI and the benchmarks all show metrics side by side, and a
metric whose weights are missing must still show up (as "unavailable, because ...") instead of
silently disappearing or, worse, being computed on random weights. So availability and the
reason travel with the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MetricResult:
    """One metric over a set of images.

    value: the aggregate (usually the mean over per_item); None when unavailable.
    available: False when the metric could not be computed here (missing weights or package).
    reason: why it is unavailable and how to fix it; None when available.
    per_item: one value per image pair (same order as the input), when the metric has them.
    details: metric-specific extras (window size used, threshold, counts, backbone...).
    """

    name: str
    value: float | None = None
    available: bool = True
    reason: str | None = None
    per_item: list[float] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.available and self.value is None:
            raise ValueError(f"MetricResult '{self.name}': available=True needs a value")
        if not self.available and not self.reason:
            raise ValueError(f"MetricResult '{self.name}': unavailable results must give a reason")

    @classmethod
    def unavailable(cls, name: str, reason: str, **details: Any) -> "MetricResult":
        return cls(name=name, value=None, available=False, reason=reason, details=dict(details))

    def to_dict(self) -> dict[str, Any]:
        """A dict that `json.dumps(..., allow_nan=False)` accepts (see `json_safe`)."""
        return json_safe(
            {
                "name": self.name,
                "value": self.value,
                "available": self.available,
                "reason": self.reason,
                "per_item": self.per_item,
                "details": self.details,
            }
        )


def json_safe(obj: Any) -> Any:
    """Recursively turn `obj` into strict-JSON values.

    Non-finite floats become the strings "inf", "-inf" and "nan" (strict JSON has no such
    numbers, and Python's json module would otherwise write the invalid tokens `Infinity`/`NaN`).
    PSNR of identical images is the usual source of "inf". numpy scalars/arrays become Python
    numbers/lists, tuples become lists, dict keys become strings. `from_json_value` reverses the
    float mapping for readers.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy array / scalar
        return json_safe(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    raise TypeError(f"json_safe: cannot convert {type(obj).__name__} to JSON")


def from_json_value(value: Any) -> Any:
    """Inverse of `json_safe` for one number: "inf"/"-inf"/"nan" back to floats."""
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value
