"""Unlearning: config, objectives, lambda weighting, gradient surgery, methods, training loop."""

from .config import UnlearnConfig
from .methods import METHODS
from .trainer import CancelToken, CancelledError, DivergedError, StepReport

__all__ = ["UnlearnConfig", "METHODS", "CancelToken", "CancelledError", "DivergedError", "StepReport"]
