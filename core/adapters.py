"""Fixes as LoRA adapters on the SD3 transformer (or a DDPM's UNet): create, stack, toggle, remove, save, load.

Each fix is one named peft LoRA adapter (through diffusers' adapter API on the transformer), so
fixes stack like peft adapters and the base weights are never written. Saved fixes are the
diffusers LoRA format: `pytorch_lora_weights.safetensors` that a stock
`StableDiffusion3Pipeline.load_lora_weights` reads.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .models.loading import LoadedModel

# The attention projections diffusers' SD3 LoRA script trains by default.
SD3_LORA_TARGETS = (
    "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",
    "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out",
)
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class AdapterError(RuntimeError):
    """A fix could not be created, loaded or saved; the message says why."""


@dataclass
class Fix:
    name: str
    enabled: bool = True
    weight: float = 1.0
    path: Path | None = None  # where it was saved/loaded from, if anywhere


class FixManager:
    """The set of fixes on one loaded model, and which of them are active."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.fixes: dict[str, Fix] = {}
        self._off = 0  # depth of `disabled()` blocks: while above 0, the base model draws

    @property
    def active(self) -> list[Fix]:
        """The fixes whose weights act now: the enabled ones, none inside `disabled()`."""
        return [] if self._off else [f for f in self.fixes.values() if f.enabled]

    @property
    def transformer(self):
        """The network the fixes live on (SD3's transformer, or a DDPM's UNet). Benches hand in light
        stand-ins for a LoadedModel that only carry `pipe.transformer`."""
        net = getattr(self.model, "denoiser", None)
        return self.model.pipe.transformer if net is None else net

    @property
    def unconditional(self) -> bool:
        return bool(getattr(self.model, "unconditional", False))

    # -- lifecycle -----------------------------------------------------------------------------
    def create(self, name: str, rank: int = 8, alpha: float | None = None,
               targets: tuple[str, ...] | None = None) -> list[torch.nn.Parameter]:
        """Add a fresh LoRA (zero effect at start) on top of the enabled fixes; return its params."""
        from peft import LoraConfig

        from .models.ddpm import UNET_LORA_TARGETS

        if targets:  # the family defaults below are peft's to match: some modules lack some of them
            self.check_targets(targets)
        targets = targets or (UNET_LORA_TARGETS if self.unconditional else SD3_LORA_TARGETS)
        self._check_name(name)
        config = LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                            target_modules=list(targets), lora_dropout=0.0)
        self.transformer.add_adapter(config, adapter_name=name)
        self.fixes[name] = Fix(name)
        self.apply()
        params = self.trainable_parameters(name)
        # On a bf16/fp16 base, keep the trained LoRA weights in fp32 (as diffusers' training scripts
        # do): AdamW steps at lr 1e-4 would otherwise mostly round away.
        for p in params:
            p.data = p.data.float()
        return params

    def check_targets(self, targets) -> None:
        """Every target names a module (a suffix such as to_q, or a whole path), as peft matches them;
        said before any adapter is added, so a typo leaves the model as it was."""
        from peft import LoraConfig
        from peft.tuners.tuners_utils import check_target_module_exists

        names = [n for n, _ in self.transformer.named_modules() if n]
        configs = {t: LoraConfig(target_modules=[t]) for t in targets}  # peft's own matching rule
        missing = [t for t, c in configs.items() if not any(check_target_module_exists(c, n) for n in names)]
        if missing:
            attention = [n for n in names if n.endswith(".to_q")][:4]
            raise ValueError(f"UnlearnConfig.lora_targets: {', '.join(map(repr, missing))} names no module of this "
                             f"model: give module names such as to_q, to_out.0, or whole paths such as "
                             f"{', '.join(attention) or 'the ones named by named_modules()'}")

    def trainable_parameters(self, name: str) -> list[torch.nn.Parameter]:
        """Make exactly this fix's LoRA weights trainable (others and the base stay frozen)."""
        params = []
        for pname, p in self.transformer.named_parameters():
            mine = f".{name}." in pname and "lora_" in pname
            p.requires_grad_(mine)
            if mine:
                params.append(p)
        if not params:
            raise AdapterError(f"fix {name!r} has no LoRA parameters; check the target modules")
        return params

    def freeze(self) -> None:
        for p in self.transformer.parameters():
            p.requires_grad_(False)

    def remove(self, name: str) -> None:
        self._require(name)
        self.transformer.delete_adapters(name)
        del self.fixes[name]
        self.apply()

    def set_enabled(self, name: str, enabled: bool, weight: float | None = None) -> None:
        self._require(name).enabled = enabled
        if weight is not None:
            self.fixes[name].weight = float(weight)
        self.apply()

    def apply(self) -> None:
        """Activate exactly the enabled fixes (with their weights); none -> the base model (so also
        inside `disabled()`)."""
        active = self.active
        if not active:
            if self.fixes:
                self.transformer.disable_adapters()
            return
        self.transformer.enable_adapters()
        self.transformer.set_adapters([f.name for f in active], weights=[f.weight for f in active])

    @contextlib.contextmanager
    def disabled(self):
        """Temporarily the base model: `with fixes.disabled(): generate(...)`. The enabled flags stay as
        they are; `active` (and so the generation store's key) is empty until the block ends."""
        if not self.fixes:
            yield
            return
        self._off += 1
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self._off -= 1
            self.apply()

    @contextlib.contextmanager
    def muted(self, *names: str):
        """Inside the block these fixes add nothing (their LoRA scale is 0) and the other fixes act as
        before: with one name, the model as it was before that fix, a training step's frozen reference.
        Nothing is re-activated, so the enabled flags, the weights and the store's key stay as they are."""
        from peft.tuners.lora import LoraLayer

        for name in names:
            self._require(name)
        saved = [(m, name, m.scaling[name]) for m in self.transformer.modules() if isinstance(m, LoraLayer)
                 for name in names if name in m.scaling]
        try:
            for m, name, _ in saved:
                m.scaling[name] = 0.0
            yield
        finally:
            for m, name, scale in saved:
                m.scaling[name] = scale

    @contextlib.contextmanager
    def only(self, names: list[str]):
        """Temporarily exactly these fixes (e.g. to compare one run against the base)."""
        saved = {n: f.enabled for n, f in self.fixes.items()}
        try:
            for n, f in self.fixes.items():
                f.enabled = n in names
            self.apply()
            yield
        finally:
            for n, on in saved.items():
                if n in self.fixes:
                    self.fixes[n].enabled = on
            self.apply()

    # -- files ---------------------------------------------------------------------------------
    def save(self, name: str, folder: str | Path) -> Path:
        """Write the fix as a diffusers LoRA file (+ its LoRA config as safetensors metadata)."""
        from diffusers import StableDiffusion3Pipeline
        from peft.utils import get_peft_model_state_dict

        self._require(name)
        state = get_peft_model_state_dict(self.transformer, adapter_name=name)
        bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
        if bad:
            raise AdapterError(f"fix {name!r} has non-finite weights ({bad[0]}...); not saved")
        cfg = self.transformer.peft_config[name].to_dict()
        cfg = {k: (sorted(v) if isinstance(v, set) else v) for k, v in cfg.items()}
        if self.unconditional:
            return self._save_unet(name, Path(folder), state, cfg)
        StableDiffusion3Pipeline.save_lora_weights(
            folder, transformer_lora_layers=state, weight_name=LORA_WEIGHT_NAME,
            transformer_lora_adapter_metadata=cfg,
        )
        path = Path(folder) / LORA_WEIGHT_NAME
        self.fixes[name].path = path
        return path

    def load(self, path: str | Path, name: str, enabled: bool = True) -> Fix:
        """Load a saved fix (a .safetensors file or a folder holding one) under `name`."""
        path = Path(path)
        file = path / LORA_WEIGHT_NAME if path.is_dir() else path
        self._check_name(name)
        if file.suffix != ".safetensors":
            raise AdapterError(f"{file.name}: only .safetensors fixes are loaded (pickle files can run code)")
        if not file.is_file():
            raise AdapterError(f"no LoRA file at {file}")
        _validate_lora_file(file)
        try:
            if self.unconditional:
                self._load_unet(file, name)
            else:
                self.model.pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=name)
        except Exception as err:  # diffusers raises several types for mismatched keys/shapes
            with contextlib.suppress(Exception):
                self.transformer.delete_adapters(name)
            self.apply()
            raise AdapterError(f"{file}: not a LoRA for this model ({err})") from err
        self.fixes[name] = Fix(name, enabled=enabled, path=file)
        self.apply()
        return self.fixes[name]

    # A DDPMPipeline has no LoRA loader: its fixes are a plain safetensors file of the UNet's peft
    # state ("unet." + peft keys) with the LoRA config as JSON metadata.
    def _save_unet(self, name: str, folder: Path, state: dict, cfg: dict) -> Path:
        import json

        from safetensors.torch import save_file

        path = folder / LORA_WEIGHT_NAME
        tensors = {f"unet.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
        save_file(tensors, str(path), metadata={"lora_config": json.dumps(cfg), "format": "pt"})
        self.fixes[name].path = path
        return path

    def _load_unet(self, file: Path, name: str) -> None:
        import json

        from peft import LoraConfig
        from peft.utils import set_peft_model_state_dict
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(file), framework="pt") as f:
            cfg = json.loads((f.metadata() or {}).get("lora_config", "null") or "null")
        if not cfg:
            raise AdapterError(f"{file.name}: no LoRA config in its metadata (not a DDPM fix from this studio)")
        known = set(LoraConfig.__dataclass_fields__)
        self.transformer.add_adapter(LoraConfig(**{k: v for k, v in cfg.items() if k in known}), adapter_name=name)
        state = {k.removeprefix("unet."): v for k, v in load_file(str(file)).items()}
        result = set_peft_model_state_dict(self.transformer, state, adapter_name=name)
        if getattr(result, "unexpected_keys", None):
            raise AdapterError(f"{file.name}: keys that do not fit this UNet ({result.unexpected_keys[0]}...)")

    # -- helpers -------------------------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not valid_fix_name(name):
            raise AdapterError(f"fix name {name!r}: {FIX_NAME_RULE}")
        if name in self.fixes:
            raise AdapterError(f"a fix named {name!r} is already loaded")

    def _require(self, name: str) -> Fix:
        if name not in self.fixes:
            raise AdapterError(f"no fix named {name!r}; loaded: {', '.join(self.fixes) or 'none'}")
        return self.fixes[name]


FIX_NAME_RULE = "use letters, digits, '-' and '_' (max 80)"


def valid_fix_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def strip_adapters(model: LoadedModel) -> None:
    """Delete every adapter on the model's denoiser and freeze it: the base model again, as loaded
    (the CLI engine hands one model to command after command)."""
    net = FixManager(model).transformer
    names = list(getattr(net, "peft_config", None) or {})
    if names:
        with warnings.catch_warnings():  # peft warns that the active adapter goes: that is the point
            warnings.simplefilter("ignore", UserWarning)
            net.delete_adapters(names)
    for p in net.parameters():
        p.requires_grad_(False)


def _validate_lora_file(file: Path) -> None:
    """Refuse corrupt or poisoned files before they reach the model."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            keys = list(f.keys())
            if not keys or not all("lora" in k for k in keys):
                raise AdapterError(f"{file.name}: holds no LoRA weights")
            for k in keys:
                t = f.get_tensor(k)
                if not torch.isfinite(t).all():
                    raise AdapterError(f"{file.name}: tensor {k} has NaN/inf values")
    except SafetensorError as err:
        raise AdapterError(f"{file.name}: corrupt safetensors file ({err})") from err
    except (OSError, ValueError) as err:
        raise AdapterError(f"{file.name}: unreadable ({err})") from err
