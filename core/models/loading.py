"""Naming and loading models: the embedded default, a local diffusers folder, or a hub id.

One function, `load_model`, turns a name into a ready pipeline plus what the studio must know
about it (ModelInfo, a fingerprint of the base weights). Hub ids are read from the local
Hugging Face cache only when offline, so a missing model fails fast with instructions instead of
a long download attempt.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .ddpm import DDPM_FAMILIES, PAPER_DDPM_DEFAULTS, load_ddpm, prepare_unet
from .info import INFO_FILE, ModelInfo

EMBEDDED = "embedded"
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
EMBEDDED_DIR = ASSETS_DIR / "flags-sd3"
FACES = "faces"
FACES_DIR = ASSETS_DIR / "faces-ddpm"
# The shipped worlds by short name (--model NAME), in the order the studio's picker lists them.
SHIPPED_NAMES = (EMBEDDED, FACES)


def shipped_location(name: str) -> tuple[Path, str, str]:
    """(folder, the script that rebuilds it, its cost) of a shipped world (read at call time)."""
    return {EMBEDDED: (EMBEDDED_DIR, "scripts/build_embedded_model.py", "about 30 minutes on 2 cores"),
            FACES: (FACES_DIR, "scripts/build_faces_model.py", "about 20 minutes on one CPU thread")}[name]
# The real models this tool is built for; both need a download on the user's machine.
KNOWN_HUB_MODELS = {
    "sd3-medium": "stabilityai/stable-diffusion-3-medium-diffusers",
    "ddpm-celebahq": "google/ddpm-celebahq-256",
}


class ModelNotFoundError(RuntimeError):
    """The named model is not on this machine; the message says how to get it."""


class UnsupportedModelError(RuntimeError):
    """The model exists but is not a pipeline family the engine can unlearn."""


@dataclass
class LoadOptions:
    """How to place a model. Defaults suit a CPU; a 24 GB card wants dtype=bf16, drop_t5."""

    device: str = "auto"  # "auto" -> cuda if available, else cpu
    dtype: str = "auto"  # "auto" -> bf16 on cuda, fp32 on cpu; or fp32 | fp16 | bf16
    drop_t5: bool = True  # SD3 without T5 (4.7B params): the docs' "Dropping the T5 Text Encoder"
    cpu_offload: bool = False  # diffusers' model CPU offload: low VRAM, slower
    gradient_checkpointing: bool = False  # less activation memory while unlearning
    offline: bool = False  # never touch the network (also via HF_HUB_OFFLINE=1)

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} but no CUDA GPU is visible; use --device cpu")
        return dev

    def resolved_dtype(self) -> torch.dtype:
        table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        if self.dtype == "auto":
            return torch.bfloat16 if self.resolved_device().type == "cuda" else torch.float32
        if self.dtype not in table:
            raise ValueError(f"dtype={self.dtype!r}: choose one of auto, {', '.join(table)}")
        return table[self.dtype]


@dataclass
class LoadedModel:
    pipe: object  # StableDiffusion3Pipeline, or DDPMPipeline for an unconditional model
    info: ModelInfo
    source: str  # what the user named
    location: str  # the folder or hub id it came from
    options: LoadOptions = field(default_factory=LoadOptions)
    _fingerprint: str | None = None
    # The transformer's weight folder on disk, when known: the fingerprint is read from there.
    weights_dir: str | None = None

    @property
    def unconditional(self) -> bool:
        """True for prompt-free models (a DDPM's UNet): an output is named by its seed alone."""
        return getattr(self.pipe, "transformer", None) is None and getattr(self.pipe, "unet", None) is not None

    @property
    def denoiser(self) -> torch.nn.Module:
        """The network fixes are trained on: SD3's transformer or a DDPM's UNet."""
        return self.pipe.unet if self.unconditional else self.pipe.transformer

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    def fingerprint(self) -> str:
        """sha256 of the base denoiser weights, computed once (runs record it).

        Independent of the load dtype: for a model loaded from a folder or the hub cache it hashes
        the weights as stored on disk, so a bf16 load on a GPU matches the fp32 load on a CPU that
        made a fix. For a pipeline built in memory (no files) it hashes the loaded weights, which
        does depend on their dtype."""
        if self._fingerprint is None:
            stored = stored_fingerprint(self.weights_dir) if self.weights_dir else None
            self._fingerprint = stored or base_fingerprint(self.denoiser)
        return self._fingerprint


def _hash_tensors(items) -> str:
    """sha256 over (name, fp32 bytes) in name order: fp32 holds fp16/bf16 values exactly."""
    h = hashlib.sha256()
    for name, tensor in items:
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def base_fingerprint(transformer: torch.nn.Module) -> str:
    """Hash of the transformer's own (non-LoRA) weights as loaded, so a run can tell which base it
    fixed. Equals `stored_fingerprint` of its folder when loaded in the stored dtype."""
    return _hash_tensors(sorted(base_state_dict(transformer).items()))


def stored_fingerprint(folder: str | Path) -> str | None:
    """The same hash over the weight files diffusers loads from `folder` (one safetensors file or
    the shards its index names), read one tensor at a time; None when there are no such files."""
    from safetensors import safe_open

    folder = Path(folder)
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.exists():
        import json

        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "diffusion_pytorch_model.safetensors").exists():
        files = ["diffusion_pytorch_model.safetensors"]
    else:
        return None
    handles = [safe_open(str(folder / f), framework="pt") for f in files]
    where = sorted((k, h) for h in handles for k in h.keys())
    return _hash_tensors((k, h.get_tensor(k)) for k, h in where)


def base_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's own weights under their original names, whatever adapters wrap them."""
    return {k.replace(".base_layer", ""): v for k, v in module.state_dict().items() if "lora_" not in k}


def resolve(name: str) -> tuple[str, str]:
    """Return (kind, location) for a model name: kind is 'folder' or 'hub'."""
    if name in ("", None):
        name = EMBEDDED
    if name in SHIPPED_NAMES:
        folder, script, cost = shipped_location(name)
        # Both files: the builds write unlearn_studio.json last, so a half-written folder is refused.
        if not ((folder / "model_index.json").exists() and (folder / INFO_FILE).exists()):
            what = "the embedded model" if name == EMBEDDED else f"the {name} model"
            raise ModelNotFoundError(f"{what} is missing at {folder}; rebuild it with `python {script}` ({cost})")
        return "folder", str(folder)
    name = KNOWN_HUB_MODELS.get(name, name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model_index.json").exists():
            raise ModelNotFoundError(f"{path} is not a diffusers folder (no model_index.json)")
        return "folder", str(path.resolve())  # absolute: runs record it, and are repeated from other folders
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return "hub", name
    raise ModelNotFoundError(f"no model folder at {name!r}, and it is not a hub id like 'owner/name'")


def _dtype_kwarg(dtype) -> dict:
    """Newer diffusers renamed from_pretrained's `torch_dtype` to `dtype` and warn on the old name."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (present since the rename)
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def load_model(name: str = EMBEDDED, options: LoadOptions | None = None) -> LoadedModel:
    """Load an SD3 pipeline (or an unconditional DDPM) by name with the given placement options."""
    from diffusers import DiffusionPipeline, StableDiffusion3Pipeline
    from diffusers.utils import logging as dlogging

    dlogging.disable_progress_bar()
    options = options or LoadOptions()
    kind, location = resolve(name)
    offline = options.offline or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    device, dtype = options.resolved_device(), options.resolved_dtype()
    kwargs = dict(_dtype_kwarg(dtype), use_safetensors=True)
    if options.drop_t5:
        kwargs.update(text_encoder_3=None, tokenizer_3=None)
    if kind == "hub":
        kwargs["local_files_only"] = offline
    try:
        config = DiffusionPipeline.load_config(location, local_files_only=offline if kind == "hub" else True)
        family = config.get("_class_name", "")
        if family in DDPM_FAMILIES:
            return _load_ddpm(name, kind, location, offline, device, dtype, options)
        if family != "StableDiffusion3Pipeline":
            raise UnsupportedModelError(
                f"{name} is a {family or 'unknown'} model; the unlearning engine supports SD3 "
                "(StableDiffusion3Pipeline) and unconditional DDPM (DDPMPipeline, DDIMPipeline) models."
            )
        pipe = StableDiffusion3Pipeline.from_pretrained(location, **kwargs)
    except (OSError, EnvironmentError) as err:
        if kind == "hub":
            raise ModelNotFoundError(
                f"{location} is not in the local Hugging Face cache ({_hf_cache()}). On a machine "
                f"with network run `huggingface-cli download {location}` (SD3 needs its licence "
                "accepted on the hub first), or pass a local diffusers folder with --model."
            ) from err
        raise ModelNotFoundError(f"could not load {location}: {err}") from err
    info = ModelInfo.load(location, fallback_name=Path(location).name) if kind == "folder" else ModelInfo(name=location)
    if options.drop_t5 and not (kind == "folder" and (Path(location) / INFO_FILE).exists()):
        # Without T5 the appended zero tokens carry nothing; fewer cost less attention.
        info.max_sequence_length = min(info.max_sequence_length, 77)
    pipe.set_progress_bar_config(disable=True)
    _place(pipe, device, options)
    return LoadedModel(pipe=pipe, info=info, source=name, location=location, options=options,
                       weights_dir=_weights_dir(kind, location, offline))


def _load_ddpm(name: str, kind: str, location: str, offline: bool, device, dtype,
               options: LoadOptions) -> LoadedModel:
    """An unconditional DDPM. A folder with unlearn_studio.json (the faces world) brings its own
    info; any other DDPM gets the paper's DDPM settings as its unlearning defaults."""
    try:
        pipe = load_ddpm(location, offline, kind == "hub", _dtype_kwarg(dtype))
    except (OSError, EnvironmentError) as err:
        if kind == "hub":
            raise ModelNotFoundError(
                f"{location} is not in the local Hugging Face cache ({_hf_cache()}). On a machine with "
                f"network run `huggingface-cli download {location}`, or pass a local diffusers folder with --model."
            ) from err
        raise ModelNotFoundError(f"could not load {location}: {err}") from err
    prepare_unet(pipe.unet)  # fixes are LoRA adapters, as on SD3; a cheap dtype
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    pipe.unet.requires_grad_(False)
    if options.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    if kind == "folder" and (Path(location) / INFO_FILE).exists():
        info = ModelInfo.load(location)
    else:
        size = pipe.unet.config.sample_size
        info = ModelInfo(name=Path(location).name if kind == "folder" else location,
                         resolution=size if isinstance(size, int) else size[0], max_sequence_length=0,
                         default_steps=50, default_guidance=0.0, clip_model="",
                         unlearn_defaults=dict(PAPER_DDPM_DEFAULTS))
    return LoadedModel(pipe=pipe, info=info, source=name, location=location, options=options,
                       weights_dir=_weights_dir(kind, location, offline, "unet"))


def _weights_dir(kind: str, location: str, offline: bool, sub: str = "transformer") -> str | None:
    """The denoiser's folder the weights came from (hub: the local cache snapshot), or None."""
    if kind == "folder":
        return str(Path(location) / sub)
    try:
        from huggingface_hub import snapshot_download

        return str(Path(snapshot_download(location, local_files_only=True, allow_patterns=[f"{sub}/*"])) / sub)
    except Exception:  # noqa: BLE001 - no snapshot path: fall back to hashing the loaded weights
        return None


def wrap_pipeline(pipe, info: ModelInfo | None = None, source: str = "in-memory") -> LoadedModel:
    """A LoadedModel around a pipeline built in memory (tests, scripts)."""
    pipe.set_progress_bar_config(disable=True)
    return LoadedModel(pipe=pipe, info=info or ModelInfo(name=source), source=source, location=source)


def _place(pipe, device: torch.device, options: LoadOptions) -> None:
    if options.cpu_offload and device.type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if options.gradient_checkpointing:
        pipe.transformer.enable_gradient_checkpointing()
    for module in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2, pipe.transformer):
        if module is not None:
            module.requires_grad_(False)


def _hf_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return HF_HUB_CACHE
    except Exception:  # pragma: no cover - very old hub versions
        return "~/.cache/huggingface/hub"
