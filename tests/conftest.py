"""Shared fixtures: tiny random SD3 models built offline (diffusers-style dummy components)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow (real-size models)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random tiny SD3 saved as a diffusers folder once per session (read-only for tests)."""
    from core.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sd3") / "model")


@pytest.fixture
def tiny_model(tiny_model_dir):
    """A freshly loaded tiny model: tests may add and remove adapters freely."""
    from core.models import load_model

    return load_model(str(tiny_model_dir))
