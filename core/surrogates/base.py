"""What every surrogate maker shares: one signature, one result type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from PIL import Image


@dataclass
class Surrogate:
    image: Image.Image
    # How it was made (kind + parameters), saved in the run's config.json.
    info: dict = field(default_factory=dict)


class SurrogateMaker(ABC):
    """A way to turn a flagged image into its surrogate (the same image, unwanted part gone).

    Subclasses set `name` and implement `make`; `needs_model` says whether a loaded model
    (its VAE, transformer or CLIP) is required.
    """

    name: str
    needs_model: bool = False

    @abstractmethod
    def make(self, image: Image.Image, model=None, **params) -> Surrogate:
        """Return the surrogate of `image`; raise ValueError with a clear message on bad params."""
