"""What the engine's client and server agree on. Standard library only: the client imports this
before torch, and only if no engine answers does the command pay for torch.

One command per connection, newline-delimited JSON:
    client -> server  {"argv": [...], "cwd": "...", "code": "<fingerprint>", "env": {...}}
    server -> client  {"refused": "why"}, or {"started": true}, {"out": "text"} | {"err": "text"} ..., {"exit": 0}
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ENV_SOCKET = "UNLEARN_ENGINE"  # a socket path, or "off": every command runs in its own process
OFF = ("off", "0", "no", "false")
# Commands a client never hands over: `engine` starts one, `studio` serves a long-lived app itself.
LOCAL_COMMANDS = ("engine", "studio")
_CORE = Path(__file__).resolve().parents[1]


def socket_path() -> Path | None:
    """Where clients look for the engine; None when $UNLEARN_ENGINE says off."""
    return None if os.environ.get(ENV_SOCKET, "").strip().lower() in OFF else default_socket_path()


def default_socket_path() -> Path:
    """$UNLEARN_ENGINE when it names a path, else a socket in the user's cache folder."""
    given = os.environ.get(ENV_SOCKET, "").strip()
    if given and given.lower() not in OFF:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unlearn-studio" / "engine.sock"


def code_fingerprint() -> str:
    """Names, sizes and modification times of core's sources: an engine started before an edit or an
    upgrade runs other code than its client, and must refuse rather than answer with it."""
    h = hashlib.sha256()
    for path in sorted(_CORE.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(_CORE)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def result_env(environ=None) -> dict[str, str]:
    """The environment variables that change what a command computes or where it reads weights from.
    A client whose values differ from the engine's is refused (and runs the command itself): the
    engine's caches were made under its own."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items()
            if (k.startswith(("UNLEARN_", "HF_")) and k not in _NOT_RESULT_ENV) or k in _RESULT_ENV}


_RESULT_ENV = ("TORCH_HOME", "XDG_CACHE_HOME", "CUDA_VISIBLE_DEVICES")
_NOT_RESULT_ENV = (ENV_SOCKET, "UNLEARN_DEBUG", "UNLEARN_VENV", "HF_HUB_DISABLE_TELEMETRY")


def send(sock_file, message: dict) -> None:
    sock_file.write((json.dumps(message) + "\n").encode())
    sock_file.flush()


def receive(sock_file) -> dict | None:
    """The next message, or None when the other side closed the connection."""
    line = sock_file.readline()
    return json.loads(line) if line else None
