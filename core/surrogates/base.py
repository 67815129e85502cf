"""What every surrogate maker shares: one signature, one typed parameter class, one result type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from PIL import Image

from .params import SurrogateParams


@dataclass
class Surrogate:
    image: Image.Image
    # How it was made (kind + parameters), saved in the run's config.json.
    info: dict = field(default_factory=dict)
    # Sentences a user should read before training on it (the surrogate is usable, but may not do what
    # they want); shown by the studio, printed by the CLI.
    warnings: list[str] = field(default_factory=list)


class SurrogateMaker(ABC):
    """A way to turn a flagged image into its surrogate (the same image, unwanted part gone).

    Subclasses set `name`, `params_type` (a frozen SurrogateParams dataclass: help and ranges of
    every parameter) and implement `make`; `needs_model` says whether a loaded model (its VAE,
    transformer or CLIP) is required.
    """

    name: str
    params_type: type[SurrogateParams]
    needs_model: bool = False

    def params(self, values: SurrogateParams | dict | None = None) -> SurrogateParams:
        """The typed parameters from an instance or a dict of values (unknown names are an error)."""
        if isinstance(values, SurrogateParams):
            if not isinstance(values, self.params_type):
                raise ValueError(f"surrogate {self.name!r} takes {self.params_type.__name__}, "
                                 f"not {type(values).__name__}")
            return values
        return self.params_type.from_dict(values)

    @abstractmethod
    def make(self, image: Image.Image, model, params: SurrogateParams) -> Surrogate:
        """Return the surrogate of `image`; raise ValueError with a clear message on bad input."""
