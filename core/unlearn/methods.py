"""Unlearning methods: each turns one training batch into a gradient on the fix's LoRA weights.

A method is a small strategy class with one job, `step(batch) -> StepGradients`; the trainer
owns everything else (sampling, optimiser, logging, cancel). Registry: `METHODS[name]`.

- surrogate (the paper): lambda-weighted forget loss toward the surrogate + remember loss,
  with gradient surgery.
- neggrad: gradient ascent on the flagged image's ordinary loss, plus the remember loss.
- erasediff: forget target = uniform noise; g = g_r + max(eta - <g_r,g_f>/||g_f||^2, 0) g_f.
- siss: mixture importance sampling (Alberti et al., ICLR 2025), all timesteps sampled, conditioned
  on the flagged prompt with remember samples of that prompt (as SISS's SD code).

Every method is written once against a loss parameterisation (forms.py): SD3's rectified flow
(velocity targets, the default) or a DDPM's epsilon form (the paper's unconditional setting).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch

from . import objectives as obj
from . import surgery
from .config import UnlearnConfig
from .forms import FlowForm
from .passes import SequentialPasses, StepPasses
from .weighting import lambda_weight


@dataclass
class Batch:
    """Everything one step needs; latents in model space, shapes (B, C, h, w)."""

    x_f: torch.Tensor  # flagged latent, repeated forget_batch_size times
    x_s: torch.Tensor  # surrogate latent, same shape
    cond_f: obj.Conditioning
    eps_f: torch.Tensor
    s_f: torch.Tensor  # (F,) noise levels
    x_r: torch.Tensor  # remember latents
    cond_r: obj.Conditioning
    eps_r: torch.Tensor
    s_r: torch.Tensor  # (R,)
    uniform_f: torch.Tensor  # U[0,1) draws, EraseDiff's forget "noise" target
    mix_from_forget: torch.Tensor  # (R,) bool, SISS's mixture choice
    as_fixed_r: torch.Tensor | None = None  # (R,) bool, remember samples drawn as the enabled fixes draw them


@dataclass
class StepGradients:
    grads: list[torch.Tensor]
    loss_f: float
    loss_r: float
    lam: float | None = None  # mean lambda over the forget samples
    cos: float | None = None  # cosine(g_f, g_r) when both were computed
    projected: bool | None = None


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter], retain_graph: bool = False) -> list[torch.Tensor]:
    gs = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=retain_graph)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


class UnlearnMethod(ABC):
    name: str
    # True: the trainer draws remember samples only from the flagged prompt's rows (see SISS).
    remember_from_flagged_prompt: bool = False

    def __init__(self, transformer, params: list[torch.nn.Parameter], config: UnlearnConfig, form=None,
                 reference: Callable[[], ContextManager] | None = None,
                 base_reference: Callable[[], ContextManager] | None = None, passes: StepPasses | None = None):
        self.transformer, self.params, self.config = transformer, params, config
        # How a step's separate forget and remember passes run: one after the other, or at once (passes.py).
        self.passes = passes or SequentialPasses()
        # The loss parameterisation (forms.py): SD3's rectified flow by default, a DDPM's epsilon form.
        self.form = form or FlowForm()
        # remember_target "model": a context in which the network predicts as before this fix
        # (FixManager.muted). Without a fix to mute there is nothing to refer to.
        if config.remember_target == "model" and reference is None:
            raise ValueError("UnlearnConfig.remember_target='model' needs the model as it was before the fix: "
                             "pass train(..., reference=lambda: fixes.muted(name)), or use remember_target 'noise'")
        self.reference = reference or contextlib.nullcontext
        # remember_from "base": the rows drawn from the base model are anchored on the base (every fix
        # muted), so the anchor does not hold the earlier fixes' drift the set was drawn to undo.
        self.base_reference = base_reference

    @abstractmethod
    def step(self, b: Batch) -> StepGradients:
        """Losses and the gradient to apply (before clipping) for one batch."""

    def v(self, x_t, s, cond):
        """The network's prediction in the form's parameterisation (flow: velocity; DDPM: epsilon)."""
        return self.form.predict(self.transformer, x_t, s, cond)

    def remember_loss(self, b: Batch, weights: torch.Tensor | None = None) -> torch.Tensor:
        return self._remember_mse(b, *self._remember_inputs(b), weights)

    def _remember_inputs(self, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(noised remember latents, their target); the target may mute this fix on the shared network."""
        x_t = self.form.noisy(b.x_r, b.eps_r, b.s_r)
        return x_t, self.remember_target(b, x_t)

    def _remember_mse(self, b: Batch, x_t: torch.Tensor, target: torch.Tensor,
                      weights: torch.Tensor | None) -> torch.Tensor:
        per = obj.per_sample_mse(self.v(x_t, b.s_r, b.cond_r), target)
        return (per * weights).mean() if weights is not None else per.mean()

    def separate_passes(self, forget_loss: Callable[[], torch.Tensor], b: Batch,
                        remember_weights: torch.Tensor | None = None):
        """((loss_f, g_f), (loss_r, g_r)) from two passes that may run at once (self.passes). The remember
        target is computed first, here: it may mute this fix on the shared network, which no pass may see."""
        x_t, target = self._remember_inputs(b)

        def forget():
            loss = forget_loss()
            return loss, _grads(loss, self.params)

        def remember():
            loss = self._remember_mse(b, x_t, target, remember_weights)
            return loss, _grads(loss, self.params)

        return self.passes.run(forget, remember)

    def remember_target(self, b: Batch, x_t: torch.Tensor) -> torch.Tensor:
        """The sampled noise in the form's terms, or (remember_target "model") the network's own
        prediction at x_t as it was before this fix: a target with no sampling noise in it, which the
        untouched model already meets (remember_model_share of it, the rest the noise's)."""
        noise = self.form.ordinary_target(b.x_r, b.eps_r)
        share = self.config.remember_model_share
        if self.config.remember_target == "noise" or share == 0:
            return noise
        with torch.no_grad():
            before = self._before(x_t, b).detach().to(noise.dtype)
        return before if share == 1 else share * before + (1 - share) * noise

    def _before(self, x_t: torch.Tensor, b: Batch) -> torch.Tensor:
        """The reference prediction per remember row: the base's for rows drawn from it (with a
        base_reference), the model's as before this fix for the rest."""
        if self.base_reference is None:
            with self.reference():
                return self.v(x_t, b.s_r, b.cond_r)
        current = b.as_fixed_r if b.as_fixed_r is not None else torch.zeros(len(x_t), dtype=torch.bool,
                                                                            device=x_t.device)
        out = torch.empty_like(x_t)
        for rows, context in ((~current, self.base_reference), (current, self.reference)):
            if rows.any():
                idx = torch.nonzero(rows).flatten()
                with context():
                    out[idx] = self.v(x_t[idx], b.s_r[idx], b.cond_r.take(idx.to(b.cond_r.pooled.device)))
        return out


class SurrogateMethod(UnlearnMethod):
    name = "surrogate"

    def forget_loss(self, b: Batch, weights: torch.Tensor) -> torch.Tensor:
        x_t = self.form.noisy(b.x_f, b.eps_f, b.s_f)
        target = self.form.surrogate_target(x_t, b.x_s, b.s_f)
        return (obj.per_sample_mse(self.v(x_t, b.s_f, b.cond_f), target) * weights).mean()

    def step(self, b: Batch) -> StepGradients:
        lam_f = lambda_weight(b.s_f, self.config).to(b.x_f.device)
        gamma = self.config.forget_snr_gamma  # eps form only: run.py refuses it for flow models
        w_f = lam_f * self.form.min_snr_weight(b.s_f, gamma).to(lam_f.device) if gamma else lam_f
        w_r = (1 - lambda_weight(b.s_r, self.config)).clamp(min=self.config.remember_floor).to(b.x_r.device)
        if self.config.surgery == "off":
            # One combined pass: the plain step the surgery's cost is measured against.
            loss_f, loss_r = self.forget_loss(b, w_f), self.remember_loss(b, w_r)
            grads = _grads(loss_f + loss_r, self.params)
            return StepGradients(grads, loss_f.item(), loss_r.item(), lam_f.mean().item())
        (loss_f, g_f), (loss_r, g_r) = self.separate_passes(lambda: self.forget_loss(b, w_f), b, w_r)
        grads, cos, projected = self.combine(g_f, g_r)
        return StepGradients(grads, loss_f.item(), loss_r.item(), lam_f.mean().item(), cos, projected)

    def combine(self, g_f: list[torch.Tensor], g_r: list[torch.Tensor]) -> tuple[list[torch.Tensor], float, bool]:
        """The gradient surgery on (g_f, g_r) -> (combined, cosine, projected?). A hook, so a faster
        variant (bench/cost.py's fused one) replaces only this, not the whole step."""
        res = surgery.project(g_f, g_r, self.config.surgery)
        return res.combined(), res.cos, res.projected


class NegGradMethod(UnlearnMethod):
    name = "neggrad"

    def step(self, b: Batch) -> StepGradients:
        x_t = self.form.noisy(b.x_f, b.eps_f, b.s_f)
        loss_f = obj.per_sample_mse(self.v(x_t, b.s_f, b.cond_f), self.form.ordinary_target(b.x_f, b.eps_f)).mean()
        loss_r = self.remember_loss(b)
        grads = _grads(loss_r - self.config.neggrad_weight * loss_f, self.params)
        return StepGradients(grads, loss_f.item(), loss_r.item())


class EraseDiffMethod(UnlearnMethod):
    name = "erasediff"

    def forget_loss(self, b: Batch) -> torch.Tensor:
        x_t = self.form.noisy(b.x_f, b.eps_f, b.s_f)
        # The forget image's noise is swapped for U[0,1) draws (flow: v target = u - x_f; DDPM: u).
        target = self.form.ordinary_target(b.x_f, b.uniform_f)
        return obj.per_sample_mse(self.v(x_t, b.s_f, b.cond_f), target).mean()

    def step(self, b: Batch) -> StepGradients:
        (loss_f, g_f), (loss_r, g_r) = self.separate_passes(lambda: self.forget_loss(b), b)
        nf2 = surgery.dot(g_f, g_f)
        coef = torch.clamp(self.config.erasediff_eta - surgery.dot(g_r, g_f) / (nf2 + 1e-20), min=0)
        grads = [r + coef.to(f.dtype) * f for f, r in zip(g_f, g_r)]
        return StepGradients(grads, loss_f.item(), loss_r.item(), cos=surgery.cosine(g_f, g_r))


class SISSMethod(UnlearnMethod):
    """SISS as its code computes it (claserken/SISS: delete_sd.py, losses/ddpm_deletion_loss.py), in
    the form's parameterisation (below in rectified-flow form; DDPM: m = gamma src + sigma eps,
    targets eps_x = (m - gamma x)/sigma and eps_a = (m - gamma a)/sigma, d = ||m - gamma x0||^2 / (2 sigma^2)):

    - every draw is conditioned on the flagged prompt, and the remember latents x come from the
      flagged prompt's rows of the remember set (the trainer selects them): the importance ratios
      compare the flagged latent a and x as two images of one prompt;
    - m = (1 - s) src + s eps with src = a (prob lambda) or x, one eps and s for both;
      w_x = 1/((1-l) + l e^(d_x-d_a)), w_a = 1/((1-l) e^(d_a-d_x) + l), d = ||m - (1-s) x0||^2 / (2 s^2);
    - squared errors are summed over latent elements and averaged over the batch
      (its `weighted_loss.sum() / train_batch_size`), so `siss_scaling_norm` keeps the ratio to
      ||g_x|| its configs were tuned at;
    - g = g_x - (scaling_norm / ||g_a||) g_a; the trainer then clips to max_grad_norm (1 there too).
    """

    name = "siss"
    remember_from_flagged_prompt = True

    def step(self, b: Batch) -> StepGradients:
        lam = self.config.siss_lambda
        x, a = b.x_r, b.x_f[:1].expand_as(b.x_r)
        cond = b.cond_f.take(torch.zeros(x.shape[0], dtype=torch.long, device=b.cond_f.pooled.device))
        src = torch.where(b.mix_from_forget.view(-1, 1, 1, 1), a, x)
        m = self.form.noisy(src, b.eps_r, b.s_r)  # the mixture sample, same eps and s for both
        pred = self.v(m, b.s_r, cond)
        n_el = x[0].numel()
        # Targets that explain m from x and from a (flow: (m - x)/s; DDPM: (m - gamma x)/sigma),
        # squared errors summed over elements.
        loss_x_i = obj.per_sample_mse(pred, self.form.surrogate_target(m, x, b.s_r)) * n_el
        loss_a_i = obj.per_sample_mse(pred, self.form.surrogate_target(m, a, b.s_r)) * n_el
        w_x, w_a = siss_importance_weights(m, x, a, b.s_r, lam, self.form)
        loss_x, loss_a = (w_x * loss_x_i).mean(), (w_a * loss_a_i).mean()
        g_x = _grads(loss_x, self.params, retain_graph=True)  # both losses share one forward pass
        g_a = _grads(loss_a, self.params)
        scale = self.config.siss_scaling_norm / (surgery.norm(g_a) + 1e-20)
        grads = [gx - scale.to(ga.dtype) * ga for gx, ga in zip(g_x, g_a)]
        # Logged per element, like the other methods' losses.
        return StepGradients(grads, loss_a.item() / n_el, loss_x.item() / n_el, cos=surgery.cosine(g_a, g_x))


@torch.no_grad()
def siss_importance_weights(m, x, a, s, lam: float, form=None) -> tuple[torch.Tensor, torch.Tensor]:
    """SISS's (w_x, w_a) for mixture samples m of x (prob 1-lam) and a (prob lam) at noise s,
    computed in log space (the exponents reach hundreds at low noise). With m = gamma x0 + sigma eps
    (the form's coefficients; flow: gamma = 1 - s, sigma = s), d = ||m - gamma x0||^2 / (2 sigma^2)."""
    gamma, sigma = (form or FlowForm()).coeffs(s, x)
    var2 = 2 * sigma.flatten().to(m.dtype) ** 2
    d_x = ((m - gamma * x) ** 2).flatten(1).sum(1) / var2
    d_a = ((m - gamma * a) ** 2).flatten(1).sum(1) / var2
    log1m, loglam = torch.log(torch.tensor(1 - lam)), torch.log(torch.tensor(lam))
    w_x = torch.exp(-torch.logaddexp(log1m.expand_as(d_x), loglam + d_x - d_a))
    w_a = torch.exp(-torch.logaddexp(log1m + d_a - d_x, loglam.expand_as(d_a)))
    return w_x, w_a


METHODS: dict[str, type[UnlearnMethod]] = {
    cls.name: cls for cls in (SurrogateMethod, NegGradMethod, EraseDiffMethod, SISSMethod)
}
