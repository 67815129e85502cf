"""Run folders: one per fix, written atomically so a failed run leaves nothing half-made.

A run is built in `<root>/.partial-<id>/` and renamed to `<root>/<id>/` only when complete, so
a crash, a cancel, a NaN or a full disk never leaves a fix the studio would pick up, and never
touches earlier runs. Files inside are written temp-then-replace as well.

A run in progress belongs to its process: the builder holds an exclusive lock on
`<root>/.lock-<id>` (flock, dropped by the OS when the process dies), and a store opened by
another process or the studio removes a `.partial-*` folder only when its lock can be taken (the
owner is gone) or, with no lock file at all, when the folder is older than STALE_PARTIAL_S.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: locks are then never takeable, only age cleans
    fcntl = None

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOSS_LOG_FILE = "loss_log.csv"
LORA_FILE = "pytorch_lora_weights.safetensors"
STALE_PARTIAL_S = 24 * 3600  # a partial with no lock file (older versions) counts as dead after this
LABEL_FILE = "label.json"  # the person's name and note for a fix; optional
LOSS_LOG_COLUMNS = ["step", "L_f", "L_r", "lambda", "cos_fr", "projected", "grad_norm", "seconds"]


def atomic_write_bytes(path: str | Path, data: bytes, make_parents: bool = True) -> Path:
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any, make_parents: bool = True) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode(), make_parents)


def atomic_save_image(img: Image.Image, path: str | Path, make_parents: bool = True) -> Path:
    """PNG (lossless) written atomically."""
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue(), make_parents)


def _json_default(obj: Any):
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def environment_versions() -> dict[str, str]:
    """Library versions a result depends on (peers' users lose results to diffusers drift)."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for pkg in ("torch", "diffusers", "peft", "transformers", "unlearn-studio"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def new_run_id(prefix: str = "fix") -> str:
    """Sortable, with 48 random bits (two ids in the same second collide about once in 10**14
    pairs); RunStore.begin also claims each id atomically and draws a new one on a clash."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"


class IncompleteRunError(RuntimeError):
    """A run lacks a file it must have: it is not published (complete or absent)."""


class OwnerLock:
    """An exclusive flock on a run's lock file, held by the process building the run.

    The OS drops it when that process dies (kill -9 included), so a lock another process can
    take means the owner is gone; no pid is trusted, so pid reuse cannot keep or free a run."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def take(cls, path: Path) -> "OwnerLock | None":
        """The lock, or None while another open file (any process) holds it."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:  # pragma: no cover
            os.close(fd)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node(), "since": time.time()}).encode())
        return cls(path, fd)

    def release(self) -> None:
        if self.fd >= 0:
            self.path.unlink(missing_ok=True)  # unlink first: the file is never left unlocked
            os.close(self.fd)
            self.fd = -1


class LossLog:
    """CSV of per-step losses, appended as the run goes (inside the partial folder)."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(LOSS_LOG_COLUMNS)

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c)) for c in LOSS_LOG_COLUMNS])


def _fmt(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def read_loss_log(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(f)]


def recorded_model(path: str | Path) -> dict:
    """The "model" record of a fix (what --model was, its base fingerprint, ...) from its run folder, its LoRA
    file, or a config.json given itself; {} when there is no config.json."""
    p = Path(path)
    cfg = p if p.suffix == ".json" else (p.parent if p.is_file() else p) / CONFIG_FILE
    return json.loads(cfg.read_text()).get("model", {}) if cfg.is_file() else {}


@dataclass
class RunInfo:
    run_id: str
    path: Path
    config: dict

    @property
    def lora_path(self) -> Path:
        return self.path / LORA_FILE

    def metrics(self) -> dict:
        p = self.path / METRICS_FILE
        return json.loads(p.read_text()) if p.exists() else {}

    def label(self) -> dict:
        """{"name", "note"} the person gave the fix (label.json); the run id names it otherwise."""
        p = self.path / LABEL_FILE
        try:
            found = json.loads(p.read_text()) if p.exists() else {}
        except json.JSONDecodeError:
            found = {}
        return {"name": str(found.get("name") or self.run_id), "note": str(found.get("note") or "")}


class RunStore:
    """The folder of finished runs (fixes)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_partials()

    def clean_partials(self, older_than_s: float = STALE_PARTIAL_S) -> list[Path]:
        """Remove leftovers of runs whose builder died (crash, kill); a run another live process
        is still building is left alone. A partial without a lock file is removed once older
        than `older_than_s`."""
        removed = []
        for p in self.root.glob(".partial-*"):
            if not p.is_dir():
                continue
            lock_path = self._lock_path(p.name[len(".partial-"):])
            if lock_path.exists():
                lock = OwnerLock.take(lock_path)
                if lock is None:
                    continue  # its owner is alive
                try:
                    shutil.rmtree(p, ignore_errors=True)
                finally:
                    lock.release()
            elif time.time() - p.stat().st_mtime >= older_than_s:
                shutil.rmtree(p, ignore_errors=True)
            else:
                continue
            removed.append(p)
        for lock_path in self.root.glob(".lock-*"):  # locks of owners that died between steps
            if not (self.root / f".partial-{lock_path.name[len('.lock-'):]}").exists():
                lock = OwnerLock.take(lock_path)
                if lock is not None:
                    lock.release()
        return removed

    def _lock_path(self, run_id: str) -> Path:
        return self.root / f".lock-{run_id}"

    def begin(self, run_id: str | None = None) -> "PartialRun":
        """Claim a run id (its lock, then its partial folder) and return the run to build.

        A given `run_id` that exists or is being built raises FileExistsError; a generated one
        that clashes is replaced by a fresh one."""
        for _ in range(8):
            rid = run_id or new_run_id()
            lock = None if (self.root / rid).exists() else OwnerLock.take(self._lock_path(rid))
            if lock is not None:
                path = self.root / f".partial-{rid}"
                if path.exists():  # a dead owner's leftover under the same id: ours now
                    shutil.rmtree(path)
                path.mkdir()
                return PartialRun(self, rid, path, lock)
            if run_id:
                raise FileExistsError(f"run {run_id} already exists or is being built; choose another name")
        raise FileExistsError(f"could not claim a fresh run id in {self.root}")

    def list(self) -> list[RunInfo]:
        runs = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_FILE).exists():
                try:
                    runs.append(RunInfo(p.name, p, json.loads((p / CONFIG_FILE).read_text())))
                except json.JSONDecodeError:
                    continue  # a foreign or damaged folder is not a run
        return runs

    def get(self, run_id: str) -> RunInfo:
        if "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise ValueError(f"invalid run id {run_id!r}")
        p = self.root / run_id
        if not (p / CONFIG_FILE).exists():
            raise FileNotFoundError(f"no run {run_id!r} in {self.root}")
        return RunInfo(run_id, p, json.loads((p / CONFIG_FILE).read_text()))

    def remove(self, run_id: str) -> None:
        shutil.rmtree(self.get(run_id).path)

    def set_label(self, run_id: str, name: str, note: str = "") -> dict:
        """Name a fix and note why it exists; the run id stays its key (file names, fix state)."""
        name, note = (name or "").strip(), (note or "").strip()
        if len(name) > 80 or "\n" in name:
            raise ValueError(f"fix name {name[:40]!r}...: give one line of at most 80 characters")
        if len(note) > 2000:
            raise ValueError(f"fix note: {len(note)} characters; keep it under 2000")
        run = self.get(run_id)
        atomic_write_json(run.path / LABEL_FILE, {"name": name or run_id, "note": note})
        return run.label()


@dataclass
class PartialRun:
    """A run being written; `commit()` publishes it, `abort()` (or an exception) discards it."""

    store: RunStore
    run_id: str
    path: Path
    lock: OwnerLock | None = None
    written: set[str] = field(default_factory=set)  # every file the run must contain

    # Files go only into the existing partial folder: if it vanished, the run fails instead of
    # re-creating a folder that would then be published without its earlier files.
    def write_json(self, name: str, obj: Any) -> Path:
        self.written.add(name)
        return atomic_write_json(self.path / name, obj, make_parents=False)

    def save_image(self, name: str, img: Image.Image) -> Path:
        self.written.add(name)
        return atomic_save_image(img, self.path / name, make_parents=False)

    def loss_log(self) -> LossLog:
        self.written.add(LOSS_LOG_FILE)
        return LossLog(self.path / LOSS_LOG_FILE)

    def commit(self, required: Iterable[str] = ()) -> RunInfo:
        """Publish the run if every file written through it, config.json and `required` (files
        written by others, e.g. the LoRA file) is present and not empty; else IncompleteRunError."""
        names = sorted({CONFIG_FILE, *self.written, *required})
        missing = [n for n in names if not (self.path / n).is_file() or (self.path / n).stat().st_size == 0]
        if missing:
            raise IncompleteRunError(f"run {self.run_id} is incomplete ({', '.join(missing)} missing or empty), "
                                     "so it was not saved; run it again")
        final = self.store.root / self.run_id
        if final.exists():
            raise FileExistsError(f"run {self.run_id} already exists; nothing was overwritten")
        os.rename(self.path, final)
        self._release()
        return self.store.get(self.run_id)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> "PartialRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.path.exists():
            self.abort()


def run_files(run: RunInfo) -> Iterable[Path]:
    return sorted(p for p in run.path.iterdir() if p.is_file())
