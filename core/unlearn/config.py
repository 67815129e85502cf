"""The one config of an unlearning run. Saved in every run's config.json; a run is re-made from it.

Defaults follow "Unlearning the Unpromptable" (Lee et al., 2026) where the paper states them
(SD3 + LoRA, 100 steps, batch 8, remember set of 100 generations of the same prompt, gradient
surgery on the forget gradient only). Where it does not, the default says where it comes from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..limits import GUIDANCE_RANGE, MAX_PROMPT_CHARS, MAX_PROMPTS, SAMPLING_PRECISIONS, SEED_MAX, STEPS_RANGE

METHODS = ("surrogate", "neggrad", "erasediff", "siss")
SURGERY_MODES = ("off", "forget", "pcgrad")
LAMBDA_SCHEMES = ("timestep", "constant")
TIMESTEP_SAMPLING = ("logit_normal", "uniform")
ORACLES = ("judge", "copy", "checker")
REMEMBER_FROM = ("current", "base")
REMEMBER_TARGETS = ("noise", "model")
# The one table of choice lists: validation, the CLI's argparse choices and the GUI's dropdowns.
CHOICES = {"method": METHODS, "surgery": SURGERY_MODES, "lambda_scheme": LAMBDA_SCHEMES,
           "timestep_sampling": TIMESTEP_SAMPLING, "oracle": ORACLES, "remember_precision": SAMPLING_PRECISIONS,
           "remember_from": REMEMBER_FROM, "remember_target": REMEMBER_TARGETS}


class _Unset:
    """`with_overrides` marker for "not given" (None is a value: it resets an optional field)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()

# Ranges per field: (lo, hi, lo_open); None = unbounded. Types come from the annotations.
RANGES = {
    "steps": (1, 100_000, False), "learning_rate": (0, 1, True), "lora_rank": (1, 1024, False),
    "lora_alpha": (0, None, True), "forget_batch_size": (1, 1024, False), "remember_batch_size": (1, 1024, False),
    "remember_set_size": (1, 100_000, False), "remember_seed_start": (0, SEED_MAX, False),
    "flagged_prompt_share": (0, 1, True), "lambda_exponent": (0, None, False), "lambda_constant": (0, 1, False),
    "logit_std": (0, None, True), "max_grad_norm": (0, None, True), "weight_decay": (0, 1, False),
    "monitor_every": (0, 100_000, False), "sampling_steps": (*STEPS_RANGE, False), "guidance": (*GUIDANCE_RANGE, False),
    "seed": (0, SEED_MAX, False), "forget_threshold": (0, 1, True), "forget_projection": (0, 1, False),
    "remember_floor": (0, 1, False), "forget_snr_gamma": (0, None, False),
    "earlier_forget_samples": (0, 64, False),
    "guard_seeds": (0, 64, False), "twin_seeds": (0, 64, False), "lookalike_probe_seeds": (0, 64, False),
    "remember_mode_weight": (1, 64, False), "settle_steps": (0, 100_000, False),
    "settle_patience": (0, 100_000, False), "settle_lr_scale": (0, 1, True), "twin_patience": (0, 100_000, False),
    "remember_sampling_steps": (*STEPS_RANGE, False), "remember_model_share": (0, 1, False),
    "retry_seeds": (0, 16, False), "near_miss_steps": (0, 100_000, False), "near_miss_margin": (0, 1, False),
    "neggrad_weight": (0, None, True), "erasediff_eta": (0, None, False), "siss_scaling_norm": (0, None, True),
}


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class UnlearnConfig:
    method: str = _f("surrogate", "surrogate (the paper's method) | neggrad | erasediff | siss")
    steps: int = _f(100, "optimiser steps (paper: 100 for SD3 LoRA)")
    learning_rate: float = _f(1e-4, "AdamW learning rate (diffusers' SD3 LoRA default; a model folder's "
                                    "unlearn_studio.json sets its own: flags 1e-3, faces 3e-3)")
    lora_rank: int = _f(8, "LoRA rank of the fix")
    lora_alpha: float | None = _f(None, "LoRA alpha; None = rank (scale 1), so the saved file needs no extra metadata")
    lora_targets: list[str] = _f(
        [], "module names the fix's LoRA adapts (peft target_modules: a suffix such as to_q, or a whole path); "
        "empty = the model family's default (SD3: attention projections; a UNet: resnet convs and attention). The "
        "faces world ships its decoder's attention alone (2026-12-06): all four targets in 8 of 12 tuning fixes "
        "against 3 with every attention block (faces_tune_rb16_lora_up_*.md)")
    forget_batch_size: int = _f(4, "noised copies of the flagged image per step (paper: batch 8 = 4 forget + 4 remember)")
    remember_batch_size: int = _f(
        4, "remember-set samples per step. The faces world ships 16 (2026-12-06): the memorised faces' copy rates "
        "follow the remember gradient's noise (remember-only fine-tunes: all within 20% with 16, not with 4); fresh "
        "seeds: other faces within 20% 0.667 / 0.750 of cases against 0.583 / 0.250, a step about 1.6 times dearer "
        "(faces_tune_share1_rb16_*.md, heldout_faces_..._rb16_seeds14600_*.md, faces_fix_time_rb16.md)")
    remember_set_size: int = _f(100, "generations of the prompt kept as the remember set (paper: 100)")
    remember_seed_start: int = _f(100_000, "remember seeds start here, far from the seeds people browse")
    remember_prompts: list[str] = _f([], "extra prompts whose generations join the remember set")
    flagged_prompt_share: float | None = _f(
        None, "share of the remember set taken from the flagged prompt when there are extra prompts; "
        "None = an even split over all remember prompts")
    lookalike_prompts: list[str] = _f(
        [], "remember prompts whose own correct outputs look like the flagged image (empty: the fix finds them "
        "with its oracle); a fix drags them along first, so they are remembered most")
    lookalike_share: float = _f(
        0.4, "share of the remember set given to lookalike_prompts (no effect while that list is empty). "
        "Not in the paper: on the flags world an even split let an Ireland fix erase Cote d'Ivoire")
    lambda_scheme: str = _f("timestep", "timestep: lambda = s**k rises with noise level s; constant: the ablation")
    lambda_exponent: float = _f(
        2.0, "k in lambda = s**k. The paper's exact value was not recoverable; k=2 also cancels the "
        "1/s^2 growth of the surrogate target at low noise, so the forget term stays bounded")
    lambda_constant: float = _f(0.5, "lambda for the constant scheme")
    remember_floor: float = _f(
        1.0, "the remember loss keeps at least this weight at every noise level. 1 - lambda alone (0, the "
        "paper's form) silences it at high noise, where a prompt's global look is decided: on the flags "
        "world's tuning seeds a fix then carried its surrogate's look to the whole prompt (right seeds kept "
        "0.38 with 0, 0.57 with 0.5, 0.91 with 1)")
    forget_snr_gamma: float = _f(
        0.0, "DDPM (epsilon) models, the surrogate method (the other methods' losses do not read it): weight each "
        "forget sample by min(SNR, gamma) / SNR (Min-SNR weighting, Hang et al. 2023; diffusers' training scripts' "
        "--snr_gamma, which recommend 5.0). The forget target eps + sqrt(SNR) (x_f - x_s) grows without bound as "
        "the noise goes (SNR 455 at t=10 on a linear schedule), so a few low-noise samples outweigh the rest; this "
        "bounds them. 0 = off (every sample counts as the plain loss has it). The faces world's default 5 (tuning "
        "seeds, faces_tune_snr_gamma*.md: faces gone 11 of 12 against 10, the other memorised faces moved less, "
        "|change| 0.26 against 0.37; 1-3 lose the most copied face)")
    surgery: str = _f("forget", "off | forget (project g_f off g_r on conflict; paper's best) | pcgrad (both; ablation)")
    timestep_sampling: str = _f("logit_normal", "noise-level density: logit_normal (SD3's) | uniform")
    logit_mean: float = _f(0.0, "logit-normal mean (SD3 default)")
    logit_std: float = _f(1.0, "logit-normal std (SD3 default)")
    max_grad_norm: float = _f(1.0, "clip the final gradient to this norm")
    weight_decay: float = _f(0.0, "AdamW weight decay on the LoRA weights")
    seed: int = _f(0, "seed for noise, timesteps and batch order: same seed + config -> same fix")
    monitor_every: int = _f(10, "re-render the flagged seed every N steps (0 = never)")
    overlap_monitor: bool = _f(
        True, "on a CPU with two cores or more, render the monitor on a copy of the network in a second thread "
        "while the training goes on (core/unlearn/overlap.py): the same fix, figure for figure, in less time. "
        "No effect on a GPU or for networks over 100M parameters")
    parallel_passes: bool = _f(
        True, "on a CPU with two cores or more, run a step's forget and remember passes (each a forward and a "
        "backward pass of the network) in two threads at once (core/unlearn/passes.py): the same fix, value for "
        "value, in less time (a faces fix's median step 90 ms against 113 ms on two cores: "
        "bench/results/faces_fix_time_near_miss_passes.md). Methods without separate passes (neggrad, siss, "
        "surgery off) are unaffected")
    stop_when_fixed: bool = _f(
        True, "stop once the oracle sees the flagged seed forgotten (checked every monitor_every steps); "
        "False runs every step, as the paper does")
    settle_steps: int = _f(
        0, "with stop_when_fixed: steps trained on after the first monitor step that sees the flagged seed "
        "forgotten, still monitored, so the guard (keep_best) can publish a forgotten state that moved the "
        "other outputs less. 0 = stop at once. Measured: the faces world's default, 60 with settle_patience 10 "
        "(more faces gone, higher SSIM: bench/results/faces_tune_settle_*.md, faces_seq_tune_settle60_p10.md); "
        "not the flags world's (fewer right seeds of the prompt kept: tune_judge_settle10.md)")
    settle_lr_scale: float = _f(
        1.0, "learning rate of the settle steps, as a multiple of learning_rate: once the flagged seed is "
        "forgotten, smaller steps let the remember loss bring the other outputs back while the fix moves on "
        "less. The faces world's default 0.3: in its four-face sequence (tuning seeds) the lowest SSIM after a "
        "fix 0.893 against 0.876 at training seed 0, single fixes all at SSIM >= 0.90 (faces_seq_tune_settle_lr03.md, "
        "faces_tune_settle_lr_*.md, faces_fix_trajectory_lr03.md); over training seeds 0-3 the sequences do not "
        "separate, 0.862 against 0.857 (faces_seq_spread_tune_settle_lr.md)")
    settle_patience: int = _f(
        0, "with settle_steps: stop settling once the forgotten state with the least drift (the one the guard "
        "publishes) is this many steps old, so a fix settles only while the other outputs are still coming "
        "back; needs keep_best. 0 = settle all settle_steps. Measured in the faces world's four-face sequence (tuning seeds): the "
        "lowest SSIM after a fix 0.876 against 0.817 with other faces and 0.901 against 0.879 with painted "
        "bands, against settle_steps 10; single fixes kept the same states (faces_tune_patience_*.md)")
    oracle: str = _f(
        "judge", "what decides during a fix (stop, look-alike prompts, remember-set filter, guard): judge = "
        "core/judge.py, from the flagged image, the surrogate and a copy descriptor, for any model; copy = the "
        "same judge, but the flagged seed counts as forgotten once its render is no longer a near copy of the "
        "flagged image (no progress toward the surrogate asked: the method-neutral bar benches use to compare "
        "methods that never see a surrogate); checker = the flags world's ground-truth checker, an ablation "
        "for benches (flags world only)")
    forget_threshold: float = _f(
        0.7, "the judge's bar for 'forgotten': how far the flagged seed's re-render must move from the flagged "
        "image toward the surrogate, inside the region you edited (0..1; chosen on the flags world's tuning "
        "seeds 0-63, where 0.5-0.65 were still half-way blends)")
    forget_projection: float = _f(
        0.0, "a second bar for 'forgotten', 0 = none: the re-render, each image's mean brightness taken off, "
        "must also have gone this share of the way along the line from the flagged image to the surrogate "
        "inside the region (core.judge 'projection_centred'). A blurred or noisy re-render is far from both "
        "images, which lifts forget_threshold's ratio of distances but not this. The faces world: 0.35 "
        "(bench/results/faces_judge_score_pooled.md: on tuning seeds it stopped 1 of 36 other-face fixes on a "
        "copy, against 4 with the ratio alone)")
    mode_guard: bool = _f(
        False, "a third condition for 'forgotten' (the judge oracle): the flagged seed's re-render (and each twin's) "
        "must be no near copy of a picture the model repeats, i.e. a remember output with a near copy among the "
        "others (by the judge's copy descriptor), unless the surrogate is a near copy of it too. A fix that "
        "turns one memorised face into another has not forgotten anything; without it the judge sees only "
        "that the edited region moved toward the surrogate. The faces world's default: on its tuning seeds "
        "it stopped an Other-seed fix that had turned face 3 into face 27 and changed nothing for other-face "
        "surrogates (bench/results/faces_tune_mode_guard_*.md); not measured on the flags world")
    near_miss_steps: int = _f(
        0, "with stop_when_fixed and keep_best: when no monitored state had the flagged seed forgotten by the last "
        "step (so a retry would start over) but the judge's score there is within near_miss_margin of "
        "forget_threshold, train on up to this many more steps, still monitored, the fix stopping as usual once "
        "forgotten. 0 = end at `steps`. The faces world's default 20: on its tuning seeds 15 of 16 fixes were the "
        "same and a near miss (0.473) was forgotten at step 202 instead of being retried "
        "(bench/results/faces_tune_near_miss.md, faces_tune_trajectory260.md); not measured on the flags world")
    near_miss_margin: float = _f(
        0.05, "with near_miss_steps: how far under forget_threshold the judge's score of the flagged seed may "
        "end for the fix to train on")
    retry_seeds: int = _f(
        0, "when the deciding oracle does not see the flagged seed forgotten at the end of a fix, train it again "
        "from the start with the next training seed (seed + 1, + 2, ...), up to this many more times; the tries "
        "that did not forget are discarded and listed in the published fix's metrics (earlier_tries), and its "
        "config.json records the seed that trained it. 0 = one try. What a retry brings and costs is measured "
        "in bench/results/faces_tune_retry*.md")
    keep_best: bool = _f(
        True, "publish the monitored state that is forgotten with the least drift of the guard seeds "
        "(core/unlearn/guard.py), not simply the last step")
    remember_filter: bool = _f(
        True, "leave the flagged prompt's outputs that show the flagged picture out of the remember set (the "
        "model is never asked to remember the error); False = the paper's unfiltered set")
    guard_seeds: int = _f(4, "remember seeds re-rendered at each forgotten monitor step to measure drift (0 = none)")
    twin_seeds: int = _f(
        0, "other seeds of the flagged prompt that draw the flagged picture too (the remember filter's "
        "left-outs): at each monitor step where the flagged seed is forgotten, up to this many are re-drawn "
        "and judged like it, and the fix counts as forgotten only when they are too. 0 = the flagged seed "
        "alone decides. For a model that memorised an image, the flagged seed is one of many ways to reach it "
        "(the faces world: 4, bench/results/faces_tune_twins.md)")
    twin_patience: int = _f(
        0, "with twin_seeds: stop once the flagged seed has been forgotten while some twins still draw the picture, "
        "and the state the guard would publish (the fewest twins left) is this many steps old: the fix is then "
        "published with its flagged seed forgotten, as it would be after all its steps. 0 = train on to the end "
        "hoping the twins go too. No effect without twin_seeds or stop_when_fixed. Faster, at a risk: on the faces "
        "world 20 changed 1 of 12 tuning-seed fixes (faces_tune_twin_patience20*.md) but on held-out seeds stopped "
        "2 of 8 fixes before their twins went, leaving the face drawn at 3.8% and 6.6% "
        "(heldout_faces_other_face_build_seed1_twinpatience20_seeds3048_fixseed*.md)")
    twin_forget: bool = _f(
        False, "also train the forget loss on the twin seeds (twin_seeds of them): each twin is denoised "
        "toward itself plus your edit (twin + surrogate - flagged), so the fix moves the picture's other "
        "seeds, not only the flagged one. Needs twin_seeds > 0. Measured on the faces world's tuning seeds: "
        "fewer faces gone and lower SSIM than without (bench/results/faces_tune_twin_forget.md); off by default")
    earlier_forget_samples: int = _f(
        0, "the surrogate method with other fixes on: this many more forget samples each step, drawn among the "
        "enabled fixes' own flagged images of the same prompt and denoised toward their surrogates again, so that "
        "the new fix does not draw back a picture an earlier fix removed (forget_batch_size samples of the new "
        "flagged image stay as they are; the other methods do not read it). Each enabled fix's run folder must "
        "hold its flagged.png and surrogate.png. 0 = off")
    lookalike_probe_seeds: int = _f(
        3, "seeds per remember prompt rendered to find look-alike prompts with the judge (0 = do not look)")
    sampling_steps: int | None = _f(None, "denoising steps for remember set and monitor; None = the model's default")
    guidance: float | None = _f(None, "guidance for remember set and monitor; None = the model's default")
    remember_sampling_steps: int | None = _f(
        None, "denoising steps for the remember set only; None = sampling_steps. Fewer is cheaper (about "
        "linearly); what it costs in integrity is measured in bench/results/remember_steps.md")
    remember_precision: str = _f(
        "model", "number format the remember set is sampled in: model = the model's own dtype; bfloat16 = bf16 "
        "autocast over a float32 model (about 2x faster on CPUs with AVX512-BF16; no effect on a model loaded "
        "in bf16 or fp16). What it costs in integrity is measured in bench/results/remember_precision.md (the flags world: bfloat16)")
    remember_mode_weight: int = _f(
        1, "how many times a remember output counts when it has near copies among the other remember outputs "
        "(by the judge's copy descriptor): what the model draws from many seeds, as memorised pictures are. "
        "1 = like any other output. Measured on the faces world's tuning seeds (faces_tune_mode_weight_*.md): "
        "at 4 the other memorised faces stayed within 20% in 2 of 8 fixes against 0, but 1 face went against 3; "
        "with forget_snr_gamma 5 (faces_tune_mode_weight_snr5_*.md) 4 forgets as many and moves the other faces "
        "less (mean change 0.20 against 0.26) but keeps fewer pixels, under SSIM 0.90 in a four-face sequence; on "
        "fresh seeds the other faces stayed within 20% in half the cases against a fifth, mean SSIM 0.90 against 0.92")
    remember_from: str = _f(
        "current", "which model the remember set is drawn from when other fixes are on: current = the model "
        "as it is (base + enabled fixes), so each fix keeps what the one before left; base = the base model "
        "with every fix off, so a stacked fix also pulls what earlier fixes moved back toward the original "
        "outputs, while seeds that showed an enabled fix's flagged picture (by a judge from its run folder's "
        "flagged.png and surrogate.png) are remembered as the fixes draw them. No difference without enabled "
        "fixes. Measured in sequences of fixes (bench/results/faces_seq_tune_*.md, seq_tune_*.md): the faces "
        "world's default (SSIM 0.854 against 0.800, the same faces gone); not the flags world's (SSIM 0.765 "
        "against 0.689 after two fixes, but its third fix failed)")
    remember_target: str = _f(
        "noise", "what the remember loss regresses on a noised remember sample: noise = the sampled noise "
        "(the usual diffusion loss, the paper's); model = what the model predicted there before this fix "
        "(its own LoRA muted, earlier fixes as they are; with remember_from base, the base's for the rows drawn "
        "from it), a frozen reference as in concept ablation's model-based anchor: the loss starts at 0 and "
        "counts only what this fix changed. Costs one more forward pass of the remember batch per step. "
        "Measured: the flags world's default at "
        "remember_model_share 0.5 (held-out: right seeds kept 0.997 against 0.973, other prompts 0.954 against "
        "0.943, SSIM 0.905 against 0.880: heldout_judge_rtmodel05.md); the faces world's too since the judge's "
        "projection bar (tuning seeds: 8 of 12 fixes forgotten with SSIM >= 0.90 against 6, one fewer forgotten: "
        "faces_tune_bar035_remember_target_*.md; before the bar it forgot fewer faces: faces_tune_remember_target.md); "
        "in four-face sequences (tuning seeds) it forgot 8 of 8 faces against 7, lowest SSIM after a fix 0.885 / "
        "0.827 against 0.904 / 0.895 (faces_seq_tune_baseref_fixseed*.md, faces_seq_tune_rtnoise_bar035_fixseed*.md; "
        "anchored on the model as it was, not the base: 0.848 / 0.798, faces_seq_tune_rtmodel05_fixseed*.md)")
    remember_model_share: float = _f(
        1.0, "with remember_target model: the target is this share of the model's prediction before the fix plus "
        "the rest of the sampled noise's target (1 = the model's alone; 0 = the same as noise). The flags world "
        "ships 0.5 (see remember_target). The faces world 1.0 since 2026-12-06: at 0.5 the remember loss alone "
        "(no forget loss; half its target the sampled noise) moved a memorised face's copy rate past 20% at every "
        "training seed (faces_control_remember_only_*.md); tuning seeds: fixes meeting all four targets 4 of 12 "
        "against 1 "
        "(faces_tune_share_snr5_seed*.md)")
    neggrad_weight: float = _f(1.0, "NegGrad: weight of the ascent term")
    erasediff_eta: float = _f(
        1e-2, "EraseDiff: eta in g = g_r + max(eta - <g_r,g_f>/||g_f||^2, 0) g_f (1e-2 as in the public "
        "code's configs, e.g. claserken/SISS config/delete_sd.yaml deletion.eta)")
    siss_lambda: float = _f(0.5, "SISS: probability of drawing the mixture from the forget image (CelebA cfg 0.5)")
    siss_scaling_norm: float = _f(
        750.0, "SISS: norm the forget gradient is scaled to before it is subtracted, "
        "g = g_x - (scaling_norm/||g_a||) g_a, then clipped to max_grad_norm. SISS's losses are sums over "
        "latent elements (so are ours for SISS), and 750 is its Stable Diffusion config's value (CelebA: 500)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for f in fields(self):
            _check(f.name, str(f.type), getattr(self, f.name))
        if self.remember_seed_start + self.remember_set_size > SEED_MAX + 1:
            _bad("remember_seed_start", self.remember_seed_start, f"lower it below {SEED_MAX + 1 - self.remember_set_size}")
        for name in ("remember_prompts", "lookalike_prompts"):
            prompts = getattr(self, name)
            if len(prompts) > MAX_PROMPTS or any(len(p) > MAX_PROMPT_CHARS for p in prompts):
                _bad(name, f"{len(prompts)} prompts", f"give at most {MAX_PROMPTS} prompts of at most "
                     f"{MAX_PROMPT_CHARS} characters each")
        if len(self.lora_targets) > 64 or any(not t or len(t) > 64 or not all(c.isalnum() or c in "._" for c in t)
                                               for t in self.lora_targets):
            _bad("lora_targets", self.lora_targets, "give at most 64 module names such as to_q or to_out.0")
        if not 0.0 <= self.lookalike_share < 1.0:
            _bad("lookalike_share", self.lookalike_share, "choose a value in [0, 1)")
        if self.twin_forget and self.twin_seeds == 0:
            _bad("twin_forget", self.twin_forget, "set twin_seeds above 0 (the twins it trains on), or leave it False")
        if self.twin_patience and self.stop_when_fixed and not self.keep_best:
            _bad("twin_patience", self.twin_patience, "set keep_best true (it waits on the guard's state with the "
                 "fewest twins left), or twin_patience 0")
        if self.settle_patience and self.settle_steps and self.stop_when_fixed and not self.keep_best:
            # Patience counts the age of the state the guard keeps; without keep_best nothing is kept.
            _bad("settle_patience", self.settle_patience, "set keep_best true (patience waits on the state it "
                 "keeps), or settle_patience 0 to settle all settle_steps")
        if self.near_miss_steps and self.stop_when_fixed and not self.keep_best:
            _bad("near_miss_steps", self.near_miss_steps, "set keep_best true (it reads the guard's monitored "
                 "score), or near_miss_steps 0")
        if not 0 < self.siss_lambda < 1:
            _bad("siss_lambda", self.siss_lambda, "choose a value in (0, 1)")

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
        """A copy with `changes` applied. Values equal to UNSET are "not given" and skipped; None is
        applied, so an optional field (flagged_prompt_share, sampling_steps...) can be reset."""
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not UNSET})
        return UnlearnConfig.from_dict(data)

    @staticmethod
    def help() -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(UnlearnConfig)}


def _bad(name: str, value, fix: str):
    raise ValueError(f"UnlearnConfig.{name}={value!r}: {fix}")


def _check(name: str, annotation: str, value) -> None:
    """Type, choice and range check of one field; the message names the field, value and fix."""
    optional = annotation.endswith("| None")
    base = annotation.replace("| None", "").strip()
    if value is None:
        if not optional:
            _bad(name, value, "give a value (None is only allowed where the default is None)")
        return
    if base == "bool" and not isinstance(value, bool):
        _bad(name, value, "must be true or false")
    if base == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        _bad(name, value, "must be a whole number")
    if base == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        _bad(name, value, "must be a number")
    if base == "str" and not isinstance(value, str):
        _bad(name, value, "must be text")
    if base.startswith("list") and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        _bad(name, value, "must be a list of strings")
    if base == "float" and value != value:  # NaN passes every comparison below
        _bad(name, value, "must be a number, not NaN")
    if base == "float" and value in (float("inf"), float("-inf")):
        _bad(name, value, "must be a finite number")
    if name in CHOICES and value not in CHOICES[name]:
        _bad(name, value, f"choose one of {', '.join(CHOICES[name])}")
    if name in RANGES:
        lo, hi, lo_open = RANGES[name]
        low_bad = lo is not None and (value <= lo if lo_open else value < lo)
        if low_bad or (hi is not None and value > hi):
            span = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}" + (")" if hi is None else "]")
            _bad(name, value, f"choose a value in {span}")
