"""Models: naming and loading pipelines, building tiny ones, per-model studio info."""

from .info import ModelInfo
from .loading import (
    EMBEDDED,
    KNOWN_HUB_MODELS,
    LoadedModel,
    LoadOptions,
    ModelNotFoundError,
    UnsupportedModelError,
    load_model,
    wrap_pipeline,
)

__all__ = [
    "EMBEDDED", "KNOWN_HUB_MODELS", "LoadedModel", "LoadOptions", "ModelInfo",
    "ModelNotFoundError", "UnsupportedModelError", "load_model", "wrap_pipeline",
]
