"""The one config of an unlearning run. Saved in every run's config.json; a run is re-made from it.

Defaults follow "Unlearning the Unpromptable" (Lee et al., 2026) where the paper states them
(SD3 + LoRA, 100 steps, batch 8, remember set of 100 generations of the same prompt, gradient
surgery on the forget gradient only). Where it does not, the default says where it comes from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

METHODS = ("surrogate", "neggrad", "erasediff", "siss")
SURGERY_MODES = ("off", "forget", "pcgrad")
LAMBDA_SCHEMES = ("timestep", "constant")
TIMESTEP_SAMPLING = ("logit_normal", "uniform")


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class UnlearnConfig:
    method: str = _f("surrogate", "surrogate (the paper's method) | neggrad | erasediff | siss")
    steps: int = _f(100, "optimiser steps (paper: 100 for SD3 LoRA)")
    learning_rate: float = _f(1e-4, "AdamW learning rate (diffusers' SD3 LoRA default; the embedded model uses 1e-3)")
    lora_rank: int = _f(8, "LoRA rank of the fix")
    lora_alpha: float | None = _f(None, "LoRA alpha; None = rank (scale 1), so the saved file needs no extra metadata")
    forget_batch_size: int = _f(4, "noised copies of the flagged image per step (paper: batch 8 = 4 forget + 4 remember)")
    remember_batch_size: int = _f(4, "remember-set samples per step")
    remember_set_size: int = _f(100, "generations of the prompt kept as the remember set (paper: 100)")
    remember_seed_start: int = _f(100_000, "remember seeds start here, far from the seeds people browse")
    remember_prompts: list[str] = _f([], "extra prompts whose generations join the remember set")
    flagged_prompt_share: float | None = _f(
        None, "share of the remember set taken from the flagged prompt when there are extra prompts; "
        "None = an even split over all remember prompts")
    lookalike_prompts: list[str] = _f(
        [], "remember prompts whose own correct outputs look like the flagged image (the studio fills "
        "this from the flags world's checker); a fix drags them along first, so they are remembered most")
    lookalike_share: float = _f(
        0.4, "share of the remember set given to lookalike_prompts (no effect while that list is empty). "
        "Not in the paper: on the flags world an even split let an Ireland fix erase Cote d'Ivoire")
    lambda_scheme: str = _f("timestep", "timestep: lambda = s**k rises with noise level s; constant: the ablation")
    lambda_exponent: float = _f(
        2.0, "k in lambda = s**k. The paper's exact value was not recoverable; k=2 also cancels the "
        "1/s^2 growth of the surrogate target at low noise, so the forget term stays bounded")
    lambda_constant: float = _f(0.5, "lambda for the constant scheme")
    surgery: str = _f("forget", "off | forget (project g_f off g_r on conflict; paper's best) | pcgrad (both; ablation)")
    timestep_sampling: str = _f("logit_normal", "noise-level density: logit_normal (SD3's) | uniform")
    logit_mean: float = _f(0.0, "logit-normal mean (SD3 default)")
    logit_std: float = _f(1.0, "logit-normal std (SD3 default)")
    max_grad_norm: float = _f(1.0, "clip the final gradient to this norm")
    weight_decay: float = _f(0.0, "AdamW weight decay on the LoRA weights")
    seed: int = _f(0, "seed for noise, timesteps and batch order: same seed + config -> same fix")
    monitor_every: int = _f(10, "re-render the flagged seed every N steps (0 = never)")
    stop_when_fixed: bool = _f(False, "stop early once the caller's forgetting criterion holds")
    sampling_steps: int | None = _f(None, "denoising steps for remember set and monitor; None = the model's default")
    guidance: float | None = _f(None, "guidance for remember set and monitor; None = the model's default")
    remember_sampling_steps: int | None = _f(
        None, "denoising steps for the remember set only; None = sampling_steps. Fewer is cheaper (about "
        "linearly); what it costs in integrity is measured in bench/results/remember_steps.md")
    neggrad_weight: float = _f(1.0, "NegGrad: weight of the ascent term")
    erasediff_eta: float = _f(0.1, "EraseDiff: eta in g = g_r + max(eta - <g_r,g_f>/||g_f||^2, 0) g_f")
    siss_lambda: float = _f(0.5, "SISS: probability of drawing the mixture from the forget image (CelebA cfg 0.5)")
    siss_scaling_norm: float = _f(
        1.0, "SISS: norm of the subtracted forget gradient; the CelebA cfg's 500 is for a full UNet's "
        "gradient scale, the final clip to norm 1 follows it")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name, why):
            raise ValueError(f"UnlearnConfig.{name}={getattr(self, name)!r}: {why}")

        if self.method not in METHODS:
            bad("method", f"choose one of {', '.join(METHODS)}")
        if self.surgery not in SURGERY_MODES:
            bad("surgery", f"choose one of {', '.join(SURGERY_MODES)}")
        if self.lambda_scheme not in LAMBDA_SCHEMES:
            bad("lambda_scheme", f"choose one of {', '.join(LAMBDA_SCHEMES)}")
        if self.timestep_sampling not in TIMESTEP_SAMPLING:
            bad("timestep_sampling", f"choose one of {', '.join(TIMESTEP_SAMPLING)}")
        if not 1 <= self.steps <= 100_000:
            bad("steps", "must be between 1 and 100000")
        if not 0 < self.learning_rate <= 1:
            bad("learning_rate", "must be in (0, 1]")
        if not 1 <= self.lora_rank <= 1024:
            bad("lora_rank", "must be between 1 and 1024")
        for name in ("forget_batch_size", "remember_batch_size"):
            if not 1 <= getattr(self, name) <= 1024:
                bad(name, "must be between 1 and 1024")
        if not 1 <= self.remember_set_size <= 100_000:
            bad("remember_set_size", "must be between 1 and 100000")
        if self.flagged_prompt_share is not None and not 0.0 < self.flagged_prompt_share <= 1.0:
            bad("flagged_prompt_share", "must be in (0, 1] or None")
        if not 0.0 <= self.lookalike_share < 1.0:
            bad("lookalike_share", "must be in [0, 1)")
        if not 0 <= self.lambda_constant <= 1:
            bad("lambda_constant", "must be in [0, 1]")
        if self.lambda_exponent < 0:
            bad("lambda_exponent", "must be >= 0")
        if not 0 < self.siss_lambda < 1:
            bad("siss_lambda", "must be in (0, 1)")
        if self.max_grad_norm <= 0:
            bad("max_grad_norm", "must be > 0")
        for name in ("sampling_steps", "remember_sampling_steps"):
            if getattr(self, name) is not None and not 1 <= getattr(self, name) <= 1000:
                bad(name, "must be between 1 and 1000, or None for the default")
        if self.monitor_every < 0:
            bad("monitor_every", "must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "UnlearnConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown UnlearnConfig keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def with_overrides(self, **changes) -> "UnlearnConfig":
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        return UnlearnConfig.from_dict(data)

    @staticmethod
    def help() -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(UnlearnConfig)}
