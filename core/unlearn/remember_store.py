"""Remember-set generations on disk, reused across fixes, retries and restarts.

A remember set is ~100 generations of the model as it is now; building it is most of a small fix's
time, and the same generations serve every fix made on the same model state. One entry per
generation, in `<runs root>/.remember/` (a dot folder, so RunStore never takes it for a run):

    <root>/ab/ab12...ef.safetensors   tensor "latent" (1, C, h, w) float32 + metadata

The key is everything the latent depends on: the base weights' fingerprint, the enabled fixes
(each by the sha256 of its LoRA weights and its weight; the name is only a label, so the same fix
loaded under another name still matches), the prompt, the seed, the sampling steps and guidance,
the resolution, the max sequence length, the dtype and the device type. The metadata repeats the
key and the latent's sha256: an entry that fails to open, names another key, has another shape,
holds non-finite values or another hash is deleted and rebuilt, never trusted.

Entries are written temp-then-`os.replace`, so a crash never leaves half a file under a real name.
The store is bounded by `max_bytes`; past it the least recently used entries (file mtime, touched
on every hit) go first. A caller's keep verdict (e.g. "not showing the flagged error") may be
stored with an entry under the keep rule's key; a rule without a key is never stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

STORE_DIR = ".remember"
DEFAULT_MAX_MB = 1024  # SD3-medium's latents are ~1 MB each: ~1000 generations; the embedded model's 4 KB


@dataclass(frozen=True)
class GenKey:
    """What one generation depends on; `digest` names its file."""

    state: str  # ModelState.digest: base weights, enabled fixes, resolution, dtype, device
    prompt: str
    seed: int
    steps: int
    guidance: float
    precision: str = "model"  # generate.sampling_precision: "bfloat16" draws differ slightly

    def text(self) -> str:
        d = asdict(self)
        if d["precision"] == "model":  # the key of every entry stored before precision existed
            del d["precision"]
        return json.dumps(d, sort_keys=True)

    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()[:40]


@dataclass(frozen=True)
class ModelState:
    """The model as the remember set sees it: base + enabled fixes + how it runs."""

    base: str
    fixes: tuple[tuple[str, float], ...]  # (sha256 of the fix's LoRA weights, weight), sorted
    resolution: int
    max_sequence_length: int
    dtype: str
    device: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


def model_state(model, fixes) -> ModelState:
    """`model` a LoadedModel, `fixes` its FixManager (or None for the bare base model): the fixes
    acting now (none inside `fixes.disabled()`)."""
    enabled = fixes.active if fixes is not None else []
    t = model.denoiser
    return ModelState(model.fingerprint(), tuple(sorted((fix_weights_hash(t, f.name), float(f.weight)) for f in enabled)),
                      model.info.resolution, model.info.max_sequence_length, str(t.dtype).replace("torch.", ""),
                      model.device.type)


def fix_weights_hash(transformer, name: str) -> str:
    """sha256 of one fix's LoRA tensors (names without the fix's own name, so a renamed copy matches)."""
    h = hashlib.sha256()
    marker = f".{name}."
    for pname, p in sorted(transformer.named_parameters(), key=lambda kv: kv[0]):
        if marker in pname and "lora_" in pname:
            h.update(pname.replace(marker, ".").encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


@dataclass
class StoreStats:
    hits: int = 0
    misses: int = 0
    written: int = 0
    corrupt: int = 0  # entries found damaged and deleted (then rebuilt by the caller)
    evicted: int = 0


@dataclass
class Entry:
    latent: torch.Tensor  # (1, C, h, w) float32 on CPU
    verdicts: dict[str, bool] = field(default_factory=dict)  # keep-rule key -> kept?


class RememberStore:
    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_MB << 20):
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes}: the remember store's size bound must be >= 0 (0 = keep nothing)")
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.stats = StoreStats()

    @classmethod
    def beside(cls, runs_root: str | Path, max_mb: float = DEFAULT_MAX_MB) -> "RememberStore":
        """The store of a run folder root: `<runs root>/.remember/`."""
        return cls(Path(runs_root) / STORE_DIR, int(max_mb * (1 << 20)))

    def path(self, key: GenKey) -> Path:
        d = key.digest()
        return self.root / d[:2] / f"{d}.safetensors"

    def has(self, key: GenKey) -> bool:
        """An entry exists (not read, so not checked: `get` still rejects a damaged one)."""
        return self.max_bytes != 0 and self.path(key).exists()

    def get(self, key: GenKey, shape: tuple[int, ...]) -> Entry | None:
        """The stored entry, or None (missing, or damaged: then deleted so it is rebuilt)."""
        from safetensors import safe_open

        path = self.path(key)
        if self.max_bytes == 0 or not path.exists():  # a 0-byte store is switched off (evict empties it)
            self.stats.misses += 1
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                latent = f.get_tensor("latent")
            ok = (meta.get("key") == key.text() and tuple(latent.shape) == tuple(shape)
                  and latent.dtype == torch.float32 and bool(torch.isfinite(latent).all())
                  and meta.get("sha256") == _tensor_hash(latent))
            verdicts = json.loads(meta.get("verdicts", "{}"))
        except Exception:  # noqa: BLE001 - any unreadable file is damaged, whatever the parser says
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
            self.stats.corrupt += 1
            self.stats.misses += 1
            return None
        try:
            os.utime(path)  # least recently used goes first
        except OSError:
            pass
        self.stats.hits += 1
        return Entry(latent, {str(k): bool(v) for k, v in verdicts.items()})

    def put(self, key: GenKey, latent: torch.Tensor, verdicts: dict[str, bool] | None = None) -> None:
        """Write one entry atomically (temp file in the same folder, then os.replace)."""
        from safetensors.torch import save_file

        if self.max_bytes == 0:
            return
        latent = latent.detach().to("cpu", torch.float32).contiguous()
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"key": key.text(), "sha256": _tensor_hash(latent), "verdicts": json.dumps(verdicts or {}),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({"latent": latent}, tmp, metadata=meta)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stats.written += 1

    def entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, bytes, path) of every entry; leftover temp files count as entries to evict."""
        out = []
        if not self.root.exists():
            return out
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for p in sub.iterdir():
                try:
                    st = p.stat()
                except OSError:
                    continue
                out.append((st.st_mtime, st.st_size, p))
        return out

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self) -> int:
        """Delete the least recently used entries until the store fits `max_bytes`; returns how many."""
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, p in entries:
            if total <= self.max_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size
            removed += 1
        self.stats.evicted += removed
        return removed


def _tensor_hash(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:32]
