"""`unlearn-studio engine`: keep torch, diffusers and the models loaded; run CLI commands sent by
`core.engine.client` one at a time, each exactly as a one-shot command would.

- The socket is a Unix socket in a folder only its user can open (0700): no port, no other user.
- A command runs in the client's working folder; its stdout and stderr go to the client.
- Each command gets a fresh Studio (fresh in-memory caches; the on-disk remember store beside its
  runs is the one a one-shot command would use), so "cold store" means the same here.
- After each command the model is put back to its base state: every adapter a command loaded or
  trained is deleted, and a checksum of the base weights must match the one taken at load, or the
  model is dropped and loaded again at the next command.
- A client that disconnects (Ctrl+C) stops its command at its next Python step; the engine goes on.
- It exits after `idle_minutes` without a command, on Ctrl+C, or when its socket file is removed.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..models.loading import EMBEDDED, LoadOptions
from .protocol import LOCAL_COMMANDS, code_fingerprint, receive, result_env, send

MAX_SOCKET_PATH = 100  # AF_UNIX paths are cut at 104-108 bytes depending on the OS
IDLE_MINUTES_RANGE = (0.1, 7 * 24 * 60)


@dataclass(frozen=True)
class EngineOptions:
    socket: Path = field(metadata={"help": "the Unix socket to listen on; clients look in the same place"})
    model: str = field(default=EMBEDDED, metadata={"help": "the model loaded at start (another loads when a "
                                                           "command asks for it, in its place)"})
    load: LoadOptions = field(default_factory=LoadOptions, metadata={"help": "device, dtype and memory options"})
    idle_minutes: float = field(default=30.0, metadata={"help": "exit after this long without a command"})

    def __post_init__(self):
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ValueError(f"--socket {self.socket}: {len(str(self.socket))} characters, the system allows "
                             f"{MAX_SOCKET_PATH}; choose a shorter path (and give clients the same one in "
                             "UNLEARN_ENGINE)")
        lo, hi = IDLE_MINUTES_RANGE
        if not lo <= self.idle_minutes <= hi:
            raise ValueError(f"--idle-minutes {self.idle_minutes}: choose {lo} to {hi:.0f}")


class WarmModels:
    """The loaded models, by name and load options (the last `keep` used), each back at its base
    weights between commands."""

    def __init__(self, keep: int = 1, log=None):
        self.keep = keep
        self.log = log or (lambda message: None)
        self._models: dict[tuple, tuple[object, float]] = {}  # key -> (LoadedModel, base checksum)

    def get(self, name: str, options: LoadOptions):
        from ..models.loading import load_model

        key = _model_key(name, options)
        if key in self._models:
            self._models[key] = self._models.pop(key)  # most recently used last
            return self._models[key][0]
        while len(self._models) >= self.keep:
            self._models.pop(next(iter(self._models)))
        model = load_model(name, options)
        self._models[key] = (model, _base_checksum(model))
        return model

    def reset(self) -> None:
        """Delete every adapter and check the base weights; a model that is not its base is dropped."""
        from ..adapters import strip_adapters

        for key, (model, checksum) in list(self._models.items()):
            try:
                strip_adapters(model)
                same = _base_checksum(model) == checksum
            except Exception as err:  # noqa: BLE001 - any doubt: load it again
                same, why = False, str(err)
            else:
                why = "its base weights changed"
            if not same:
                self.log(f"model {key[0]!r} dropped after a command ({why}); it loads again when next used")
                del self._models[key]
        import torch

        if torch.cuda.is_available():  # what a command's activations held goes back to other programs
            torch.cuda.empty_cache()


def _model_key(name: str, options: LoadOptions) -> tuple:
    """A folder is known by its full path (clients in other folders may say "./model") and by its
    files' newest change (a folder rebuilt in place is another model); LoadOptions is unhashable."""
    path = Path(name)
    if not path.exists():
        return (name, repr(options))
    newest = max((f.stat().st_mtime_ns for f in path.rglob("*") if f.is_file()), default=0)
    return (str(path.resolve()), newest, repr(options))


def _base_checksum(model) -> float:
    """Sum of |w| over the base weights (no LoRA), in float64: cheap even for SD3-medium, and any
    in-place change of a base weight (a merged fix, a stray optimiser step) moves it."""
    import torch

    with torch.no_grad():
        return float(sum(p.detach().abs().sum(dtype=torch.float64).item()
                         for n, p in model.denoiser.named_parameters() if "lora_" not in n))


class _ToClient(io.TextIOBase):
    """sys.stdout / sys.stderr of a command: each write becomes one frame to the client. A client
    that has gone takes no more frames (the command is being stopped)."""

    def __init__(self, conn, key: str, lock: threading.Lock):
        self.conn, self.key, self.gone = conn, key, False
        self.lock = lock  # stdout and stderr share one connection; a library thread may write too

    @property
    def encoding(self):
        return "utf-8"

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text and not self.gone:
            try:
                with self.lock:
                    send(self.conn, {self.key: text})
            except OSError:
                self.gone = True
        return len(text)


class ClientGone(KeyboardInterrupt):
    """Raised in the command when its client disconnects: the CLI stops as on Ctrl+C (its clean-up
    runs, nothing half-written is kept)."""


class _HangupWatch:
    """Watches the client's side of the connection while a command runs in the main thread (torch
    runs its work there: a second thread would start a second OpenMP pool, and the two pools' idle
    spinning made a fix 1.8x slower on 2 cores). On hang-up it raises ClientGone in the main thread
    at its next Python instruction (a running torch call finishes first)."""

    def __init__(self, sock: socket.socket):
        self.sock, self.main = sock, threading.main_thread().ident
        self.lock = threading.Lock()
        self.running, self.hung_up = True, False
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        with contextlib.suppress(OSError):
            while self.sock.recv(4096):
                pass
        with self.lock:
            if self.running:
                self.hung_up = True
                _set_async_exc(self.main, ClientGone)

    def stop(self) -> None:
        """The command has ended: no stop request from now on, and none left pending."""
        with self.lock:
            if self.running:
                self.running = False
                _set_async_exc(self.main, None)


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


def serve(options: EngineOptions, log=None) -> int:
    """Listen until idle, Ctrl+C, or the socket file goes. Returns the exit status."""
    from .. import cli

    if not hasattr(socket, "AF_UNIX"):
        raise RuntimeError("the engine listens on a Unix socket, which this system lacks; every command runs "
                           "in its own process here")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the engine runs commands in the main thread (torch's thread pool lives there); "
                           "start it as its own process: unlearn-studio engine")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    listener = _listen(options.socket)
    signal.signal(signal.SIGTERM, _stop_on_term)  # `kill` stops it as Ctrl+C does: the socket file goes too
    models = WarmModels(log=log)
    try:
        started = time.perf_counter()
        models.get(options.model, options.load)
        log(f"engine ready at {options.socket} (model {options.model!r} loaded in "
            f"{time.perf_counter() - started:.1f} s); commands of `unlearn-studio` and `python -m core.cli` "
            f"run here; exits after {options.idle_minutes:g} idle minutes or on Ctrl+C")
        listener.settimeout(min(60.0, options.idle_minutes * 60))  # also how often the socket file is checked
        last = time.monotonic()
        code = code_fingerprint()
        while time.monotonic() - last < options.idle_minutes * 60:
            if not options.socket.exists():
                log(f"engine: {options.socket} was removed; stopping")
                return 0
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    _serve_one(conn, code, models, cli, log)
                except OSError as err:  # a client that vanished mid-reply costs it its answer, not the engine
                    log(f"engine: a client left before its answer ({err})")
            last = time.monotonic()
        log(f"engine: idle for {options.idle_minutes:g} minutes; stopping")
        return 0
    except KeyboardInterrupt:
        log("engine: stopped")
        return 0
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            options.socket.unlink()


def _stop_on_term(signum, frame):
    raise KeyboardInterrupt


def _listen(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # left by an engine that was killed
        else:
            probe.close()
            raise RuntimeError(f"an engine already answers at {path}; use it, or stop it first (Ctrl+C in "
                               "its terminal)")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is created 0600: only this user may connect
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(8)
    return listener


def _serve_one(conn: socket.socket, code: str, models: WarmModels, cli, log) -> None:
    stream = conn.makefile("rwb")
    try:
        _answer(conn, stream, code, models, cli, log)
    finally:
        with contextlib.suppress(OSError):  # flushing to a client that has gone
            stream.close()


def _answer(conn: socket.socket, stream, code: str, models: WarmModels, cli, log) -> None:
    try:
        request = receive(stream)
    except (OSError, ValueError):
        return
    why = _refusal(request, code)
    if why:
        with contextlib.suppress(OSError):
            send(stream, {"refused": why})
        return
    send(stream, {"started": True})
    argv, started = request["argv"], time.perf_counter()
    lock = threading.Lock()
    out, err = _ToClient(stream, "out", lock), _ToClient(stream, "err", lock)
    ctrl_c = []
    watch = _HangupWatch(conn)
    try:
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _working_dir(request["cwd"]), \
                    _note_ctrl_c(ctrl_c), cli.warm_models(models):
                status = cli.main(argv)
        finally:
            watch.stop()
    except SystemExit as done:  # argparse's --help and usage errors end the command, not the engine
        status = done.code if isinstance(done.code, int) else int(done.code is not None)
    except ClientGone:  # arrived after the command's own Ctrl+C handler: it has stopped all the same
        watch.stop()
        status = 130
    finally:
        models.reset()
    if watch.hung_up:
        log(f"engine: {argv[0]} stopped: the client left")
    else:
        with contextlib.suppress(OSError):
            send(stream, {"exit": status})
        log(f"engine: {argv[0]} -> exit {status} in {time.perf_counter() - started:.1f} s")
    if ctrl_c:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _note_ctrl_c(noted: list):
    """Ctrl+C in the engine's terminal stops the command (as in a one-shot process) and is noted, so
    the engine stops after it; a client's hang-up stops only the command."""
    def handler(signum, frame):
        noted.append(signum)
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _refusal(request, code: str) -> str | None:
    if not isinstance(request, dict) or not isinstance(request.get("argv"), list) or not request["argv"] \
            or not all(isinstance(a, str) for a in request["argv"]) or not isinstance(request.get("cwd"), str):
        return "the engine got a request it cannot read (a client of another version?)"
    if request["argv"][0] in LOCAL_COMMANDS:
        return f"`{request['argv'][0]}` does not run in the engine"
    if request.get("code") != code:
        return ("the engine runs other code than this command (it was started before an edit or an upgrade); "
                "restart it")
    mine, theirs = result_env(), request.get("env") or {}
    names = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    if names:
        return f"the engine was started with other settings of {', '.join(names)}; restart it in this environment"
    if not Path(request["cwd"]).is_dir():
        return f"the working folder {request['cwd']} does not exist"
    return None


@contextlib.contextmanager
def _working_dir(path: str):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
