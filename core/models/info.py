"""What the studio needs to know about a model beyond its diffusers components.

Shipped and tiny models carry it as `unlearn_studio.json` in their diffusers folder; hub models
get the defaults below. Every field has a default, so a plain SD3 folder works too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

INFO_FILE = "unlearn_studio.json"


@dataclass
class ModelInfo:
    name: str = "sd3"
    # Square image size the model was trained for (SD3-medium: 1024).
    resolution: int = 1024
    # Zero T5 tokens appended when T5 is dropped; SD3-medium with T5: 256. Costs attention time.
    max_sequence_length: int = 256
    default_steps: int = 28
    default_guidance: float = 7.0
    # Sub-folder (of the model folder) or hub id of a CLIPModel for CLIP-guided surrogates.
    clip_model: str = "openai/clip-vit-large-patch14"
    # "flags" for the embedded world (enables the flag checker); None for general models.
    world: str | None = None
    # Overrides of UnlearnConfig defaults measured for this model (e.g. learning_rate).
    unlearn_defaults: dict = field(default_factory=dict)
    # Colours offered by the paint canvas (hex), e.g. the world's flag palette.
    palette: list[str] = field(default_factory=list)
    # The forgetting judge's copy thresholds for this model's images, per descriptor kind ("sscd",
    # "clip", "thumbnail"), where one was measured on the model's tuning seeds; the rest keep
    # core.judge.COPY_THRESHOLDS. (Grey faces need a stricter thumbnail threshold than flags.)
    copy_thresholds: dict = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / INFO_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, folder: str | Path, fallback_name: str = "sd3") -> "ModelInfo":
        path = Path(folder) / INFO_FILE
        if not path.exists():
            return cls(name=fallback_name)
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
