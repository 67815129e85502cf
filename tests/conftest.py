"""Shared fixtures: tiny random SD3 models built offline (diffusers-style dummy components)."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["UNLEARN_ENGINE"] = "off"  # a developer's running engine must not answer the tests' commands


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


@pytest.fixture(scope="session")
def ddpm_dir(tmp_path_factory):
    """A random tiny unconditional DDPM saved as a diffusers folder once per session (read-only)."""
    from core.models.ddpm import save_tiny_ddpm

    return save_tiny_ddpm(tmp_path_factory.mktemp("tiny-ddpm") / "model")


def free_port() -> int:
    """A TCP port free on loopback right now (for a test server)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def patient_url_check(seconds: float = 90.0):
    """Gradio's launch() gives the new server one 3 s HEAD request and raises "When localhost is
    not accessible, a shareable link must be created" when the first page render is slower, as it
    is on a loaded CI machine. Tests wait for the server instead."""
    from unittest import mock

    import httpx
    from gradio import networking

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if httpx.head(url, timeout=15, verify=False).status_code < 400:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return False

    with mock.patch.object(networking, "url_ok", url_ok):
        yield


@contextlib.contextmanager
def running_studio(model: str, root):
    """The real studio app on a free loopback port, with its temp dir under `root`:
    yields (studio, demo, url, port, share_url); closes the app and restores GRADIO_TEMP_DIR after."""
    from core.models import load_model
    from core.studio import Studio
    from gui.app import build_app, launch_kwargs

    old_tmp = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(root / "tmp")
    studio = Studio(load_model(model), root / "data")
    demo = build_app(studio)
    port = free_port()
    with patient_url_check():
        _, url, share_url = demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                                        **launch_kwargs(studio))
    try:
        yield studio, demo, url, port, share_url
    finally:
        demo.close()
        if old_tmp is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old_tmp


@pytest.fixture
def one_intra_op_thread():
    """Two ways of running a fix compared at one intra-op thread (an overlapped monitor and parallel passes
    halve them), so float sums add up alike."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
