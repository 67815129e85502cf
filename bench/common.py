"""Shared pieces of the benchmark scripts: arguments, model choice, statistics, memory, reports, plots.

Every script takes --model (default 'embedded'), --device, --quick, --out (default bench/results) and
--threads. When the embedded model (assets/flags-sd3) is missing, the scripts say so and use a
*random-weights architecture stand-in*: `TinySD3Config()` (the embedded model's exact architecture)
with random weights, saved once to a temp folder. Costs per step and per image depend on the
architecture, not on the weights, so timings transfer; anything about image content does not.

Reports are markdown files whose header and tables carry the exact command line that produced them.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results"
STANDIN_LABEL = "random-weights architecture stand-in"


# -- arguments -------------------------------------------------------------------------------------
def scratch_dir(prefix: str) -> str:
    """A fresh temporary folder for a bench's studio (its runs and remember store), removed when the
    bench exits: the results a bench keeps are written to bench/results, never here."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def add_common_args(p: argparse.ArgumentParser, model: bool = True) -> argparse.ArgumentParser:
    if model:
        p.add_argument("--model", default="embedded",
                       help="'embedded' (default; falls back to a random-weights stand-in of the same "
                            "architecture if missing), a diffusers folder, or a hub id")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--quick", action="store_true", help="a short run (about 2 minutes on 2 CPU cores)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .md/.png/.json results")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). On a shared machine 1 is steadier")
    return p


def add_set_option(p: argparse.ArgumentParser, help: str) -> argparse.ArgumentParser:
    """--set FIELD=VALUE (repeatable): an UnlearnConfig field and its JSON value; `config_overrides` reads them."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE", help=help)
    return p


def _json_or_text(text: str):
    """A command-line value: JSON, or else the bare string (bfloat16 means "bfloat16")."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_overrides(items: Sequence[str]) -> dict:
    """{field: value} from --set's FIELD=VALUE strings: each VALUE is JSON, or else a bare string
    (--set remember_precision=bfloat16 means the string)."""
    bad = [o for o in items if "=" not in o]
    if bad:
        raise SystemExit(f"--set {bad[0]!r}: write FIELD=VALUE, e.g. --set steps=40")
    return {k: _json_or_text(v) for k, v in (o.split("=", 1) for o in items)}


def grid_values(text: str) -> list:
    """The values of a --grid FIELD=V1,V2: read as the JSON list [V1,V2] (so a value may itself be a
    list: lora_targets=["to_q"]), or else split at commas, each value JSON or a bare string
    (timestep_sampling=uniform,stratified)."""
    import json

    try:
        return json.loads(f"[{text}]")
    except json.JSONDecodeError:
        return [_json_or_text(v) for v in text.split(",")]


def apply_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, as a user would type it (PYTHONPATH kept when set)."""
    argv = list(sys.argv if argv is None else argv)
    prefix = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    if argv and argv[0].endswith(".py"):
        try:
            argv[0] = str(Path(argv[0]).resolve().relative_to(Path.cwd()))
        except ValueError:
            pass
        return prefix + "python " + shlex.join(argv)
    return prefix + shlex.join(argv)


# -- model choice --------------------------------------------------------------------------------------
@dataclass
class ModelChoice:
    location: str  # what to pass to core.models.load_model
    label: str  # how results name it
    standin: bool  # True: random weights of the embedded architecture
    note: str = ""


def standin_folder(cfg=None, **info) -> Path:
    """A random-weights SD3 of `cfg` (default TinySD3Config(): the embedded architecture), saved once
    per config in the temp dir and reused. Studio info mirrors the embedded model's (20 sampling
    steps, guidance 1, learning rate 1e-3) so flow timings follow the same defaults."""
    import hashlib
    import json

    from core.models.tiny import TinySD3Config, save_tiny_model

    cfg = cfg or TinySD3Config()
    info = {"name": STANDIN_LABEL, "default_steps": 20, "default_guidance": 1.0,
            "unlearn_defaults": {"learning_rate": 1e-3}, **info}
    key = hashlib.sha256(json.dumps([cfg.to_dict(), info], sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"unlearn-bench-standin-{key}"
    if not (folder / "model_index.json").exists():
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
        save_tiny_model(tmp / "m", cfg, **info)
        try:
            os.replace(tmp / "m", folder)
        except OSError:  # another process won the race; use theirs
            pass
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def choose_model(name: str = "embedded", announce: bool = True) -> ModelChoice:
    """Resolve --model; a missing embedded model falls back to the stand-in with a printed note."""
    from core.models.loading import EMBEDDED, ModelNotFoundError, resolve

    if name not in (EMBEDDED, "", None):
        kind, location = resolve(name)
        return ModelChoice(location, name, standin=False)
    from core.models.info import INFO_FILE

    try:
        _, location = resolve(EMBEDDED)
        if not (Path(location) / INFO_FILE).exists():  # saved, but the build has not finished (no studio info)
            raise ModelNotFoundError(f"{location} has no {INFO_FILE} yet (build still running?)")
        return ModelChoice(location, f"embedded ({Path(location).name})", standin=False)
    except ModelNotFoundError as err:
        folder = standin_folder()
        note = (f"NOTE: the embedded model is missing or incomplete ({err}). Using a "
                f"{STANDIN_LABEL}: TinySD3Config() = the embedded model's architecture with random weights "
                f"(saved at {folder}). Per-step and per-image costs transfer; image content does not, "
                "and it has no flag checker.")
        if announce:
            print(note, flush=True)
        return ModelChoice(str(folder), f"{STANDIN_LABEL} (TinySD3Config(), random weights)", standin=True, note=note)


def load(choice: ModelChoice, device: str = "auto", **options):
    from core.models import LoadOptions, load_model

    return load_model(choice.location, LoadOptions(device=device, **options))


# -- statistics and timing -------------------------------------------------------------------------
def stats(values: Iterable[float]) -> dict:
    v = [float(x) for x in values]
    if not v:
        return {"n": 0, "median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"n": len(v), "median": statistics.median(v), "min": min(v), "max": max(v)}


def fmt_range(s: dict, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
    """'median (min-max)'."""
    if not s.get("n"):
        return "-"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'] * scale)}{unit} ({f.format(s['min'] * scale)}–{f.format(s['max'] * scale)})"


def sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


class Clock:
    """Wall-clock stages: `with clock.stage("generate"): ...`; `clock.seconds` keeps the order."""

    def __init__(self, device=None):
        self.device, self.seconds = device, {}

    def stage(self, name: str):
        clock = self

        class _Stage:
            def __enter__(self):
                sync(clock.device) if clock.device is not None else None
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                sync(clock.device) if clock.device is not None else None
                clock.seconds[name] = clock.seconds.get(name, 0.0) + time.perf_counter() - self.t0

        return _Stage()


# -- memory ----------------------------------------------------------------------------------------
def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory of a code region, in MiB.

    cuda: torch.cuda.max_memory_allocated after a reset (exact, allocator-level).
    cpu: the process's peak RSS (VmHWM) after releasing freed heap pages to the OS (malloc_trim)
    and resetting the peak (/proc/self/clear_refs '5'), so earlier work in the same process does not
    leak into the number. `peak` is the absolute peak RSS, `delta` the rise over the RSS at the start.
    Falls back to ru_maxrss (the process lifetime peak) where /proc is not writable.
    """

    def __init__(self, device):
        self.device = device
        self.cuda = str(getattr(device, "type", device)).startswith("cuda")
        self.method = "torch.cuda.max_memory_allocated" if self.cuda else "peak RSS (VmHWM, reset per region)"
        self.peak = self.delta = self.base = float("nan")

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.method = "ru_maxrss (process lifetime peak; /proc/self/clear_refs not writable)"
        rss = _status_kb("VmRSS")
        self.base = rss / 1024 if rss is not None else float("nan")
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            hwm = _status_kb("VmHWM")
            if hwm is None or self.method.startswith("ru_maxrss"):
                import resource

                hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak = hwm / 1024
        self.delta = self.peak - self.base


# -- reports ---------------------------------------------------------------------------------------
def environment(device=None) -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "platform": platform.platform(terse=True)}
    try:
        import diffusers
        import peft

        env.update(diffusers=diffusers.__version__, peft=peft.__version__)
    except ImportError:
        pass
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        env["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return env


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence], command: str | None = None,
                   caption: str | None = None) -> str:
    """A markdown table; with `command`, the line above its header names the command that made it."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    out = []
    if caption or command:
        parts = [caption] if caption else []
        if command:
            parts.append(f"command: `{command}`")
        out.append(" — ".join(parts))
        out.append("")
    out.append("| " + " | ".join(cell(h) for h in headers) + " |")
    out.append("|" + "|".join("---" for _ in headers) + "|")
    out.extend("| " + " | ".join(cell(c) for c in r) + " |" for r in rows)
    return "\n".join(out) + "\n"


def write_report(path: Path, title: str, command: str, blocks: Sequence[str], meta: dict | None = None) -> Path:
    """Title, the exact command, key: value metadata, then the blocks (tables, paragraphs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", f"Produced by: `{command}`", "",
             f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", ""]
    for k, v in (meta or {}).items():
        lines.append(f"- **{k}**: {v}")
    if meta:
        lines.append("")
    text = "\n".join(lines) + "\n" + "\n".join(b.rstrip() + "\n" for b in blocks)
    path.write_text(text)
    return path


def bar_chart(path: Path, labels: Sequence[str], medians: Sequence[float], lows: Sequence[float] | None = None,
              highs: Sequence[float] | None = None, ylabel: str = "", title: str = "", footnote: str = "",
              ref_line: float | None = None, name: str | None = None, second: tuple | None = None) -> Path:
    """Bars of medians with min–max whiskers (matplotlib Agg, no display needed). `second` =
    (name, medians, lows, highs) draws a second series beside the first (e.g. wall and CPU time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.15 * len(labels) + 2), 4.4))
    x = list(range(len(labels)))

    def err(med, lo, hi):
        if lo is None or hi is None:
            return None
        return [[max(m - a, 0) for m, a in zip(med, lo)], [max(b - m, 0) for m, b in zip(med, hi)]]

    width = 0.4 if second else 0.8
    shift = width / 2 if second else 0.0
    ax.bar([i - shift for i in x], medians, width, yerr=err(medians, lows, highs), capsize=3, color="#4C72B0",
           label=name)
    if second:
        n2, m2, lo2, hi2 = second
        ax.bar([i + shift for i in x], m2, width, yerr=err(m2, lo2, hi2), capsize=3, color="#DD8452", label=n2)
    if name or second:
        ax.legend(fontsize=8)
    if ref_line is not None:
        ax.axhline(ref_line, color="#C44E52", linestyle="--", linewidth=1)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if footnote:
        fig.text(0.01, 0.01, footnote, fontsize=6, family="monospace")
    fig.tight_layout(rect=(0, 0.05 if footnote else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
