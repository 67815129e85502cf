"""Run folders: one per fix, written atomically so a failed run leaves nothing half-made.

A run is built in `<root>/.partial-<id>/` and renamed to `<root>/<id>/` only when complete, so
a crash, a cancel, a NaN or a full disk never leaves a fix the studio would pick up, and never
touches earlier runs. Files inside are written temp-then-replace as well.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LOSS_LOG_FILE = "loss_log.csv"
LORA_FILE = "pytorch_lora_weights.safetensors"
LABEL_FILE = "label.json"  # the person's name and note for a fix; optional
LOSS_LOG_COLUMNS = ["step", "L_f", "L_r", "lambda", "cos_fr", "projected", "grad_norm", "seconds"]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
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


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def atomic_save_image(img: Image.Image, path: str | Path) -> Path:
    """PNG (lossless) written atomically."""
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


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
    """Sortable and unique even for two runs started in the same second."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


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

    def clean_partials(self, older_than_s: float = 0.0) -> list[Path]:
        """Remove leftovers of runs that died mid-way (crash, kill): they were never valid."""
        removed = []
        for p in self.root.glob(".partial-*"):
            if time.time() - p.stat().st_mtime >= older_than_s:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed

    def begin(self, run_id: str | None = None) -> "PartialRun":
        run_id = run_id or new_run_id()
        if (self.root / run_id).exists():
            raise FileExistsError(f"run {run_id} already exists")
        path = self.root / f".partial-{run_id}"
        path.mkdir(parents=True)
        return PartialRun(self, run_id, path)

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


class PartialRun:
    """A run being written; `commit()` publishes it, `abort()` (or an exception) discards it."""

    def __init__(self, store: RunStore, run_id: str, path: Path):
        self.store, self.run_id, self.path = store, run_id, path

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.path / name, obj)

    def save_image(self, name: str, img: Image.Image) -> Path:
        return atomic_save_image(img, self.path / name)

    def loss_log(self) -> LossLog:
        return LossLog(self.path / LOSS_LOG_FILE)

    def commit(self) -> RunInfo:
        if not (self.path / CONFIG_FILE).exists():
            raise RuntimeError("a run needs its config.json before it is committed")
        final = self.store.root / self.run_id
        os.replace(self.path, final)
        return self.store.get(self.run_id)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "PartialRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.path.exists():
            self.abort()


def run_files(run: RunInfo) -> Iterable[Path]:
    return sorted(p for p in run.path.iterdir() if p.is_file())
