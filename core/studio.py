"""A studio session: one loaded model, its fixes and run folders, and the flag-and-fix verbs.

The Gradio app and the CLI both drive this class; it holds no UI code. Fixes made earlier for
the same base model (matched by weight fingerprint) are found on disk and loaded again.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from . import limits
from .adapters import AdapterError, FixManager
from .compare import (Moved, PromptComparison, add_per_seed_lpips, compare_prompt, moved_most, per_seed_lpips_report,
                      repeated_pictures, write_comparison)
from .generate import Generated, check_prompt_for, generate, save_generations
from .judge import ForgettingJudge, SurrogateCopyCheck, pick_descriptor
from .metrics import availability, lpips, sscd_similarity
from .metrics.clip_space import clip_fd, clip_similarity
from .models.loading import EMBEDDED, SHIPPED_NAMES, LoadedModel, LoadOptions, load_model
from .requests import CompareRequest, GenerateRequest, RelapseRequest
from .runs import RunInfo, RunStore, atomic_write_json, new_run_id, recorded_model
from .surrogates import (SeedSurvey, SeedSurveyParams, Surrogate, SurrogateParams, check_near_copy, make_surrogate,
                         survey_other_seeds)
from .unlearn.config import UnlearnConfig
from .unlearn.run import AlreadyFixedError, FixRequest, FixResult, unlearn  # noqa: F401 (re-exported)
from .unlearn.prepare import Preparation, start_preparation
from .unlearn.remember import RememberCache, stored_generations
from .unlearn.remember_store import DEFAULT_MAX_MB as DEFAULT_REMEMBER_MB, RememberStore, model_state

STATE_FILE = "fixes_state.json"
CHECKED_WORLDS = ("flags", "faces")  # ModelInfo.world values with a ground-truth checker


def _exclusive(method):
    """One model job at a time per studio: adapters are switched on the shared transformer, so a
    toggle or a second job during a fix would train or render the wrong model state. Re-entrant,
    so a verb may call another. A fix is stopped through its cancel token, not this lock."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._model_lock:
            return method(self, *args, **kwargs)

    return wrapper


class WrongBaseError(AdapterError):
    """A fix recorded for another base model (its weight fingerprint differs)."""


@dataclass
class FixEntry:
    run_id: str
    enabled: bool
    prompt: str
    seed: int | None
    method: str
    created: str


class Studio:
    def __init__(self, model: LoadedModel, data_dir: str | Path = "studio-data", restore: bool = True,
                 runs_dir: str | Path | None = None, persist_state: bool = True,
                 remember_store_mb: float = DEFAULT_REMEMBER_MB):
        self.model = model
        self._model_lock = threading.RLock()
        self.data_dir = Path(data_dir)
        self.fixes = FixManager(model)
        self.store = RunStore(runs_dir or self.data_dir / "runs")
        self.persist_state = persist_state
        # Remember-set generations on disk beside the runs (0 MB: none kept), whole recent sets in memory:
        # later fixes, retries and restarts on the same model state skip regenerating them.
        self.remember_cache = RememberCache(store=RememberStore.beside(self.store.root, remember_store_mb))
        self.generation_store = self.remember_cache.store  # one store of generations: grids and Compare too
        self.restore_errors: list[str] = []
        self.preparation: Preparation | None = None
        if restore:
            self.restore_fixes()

    @_exclusive
    def switch_model(self, name: str, options: LoadOptions | None = None) -> None:
        """Load another model (a shipped world by name, a diffusers folder or a hub id) in place of
        this one: its own fixes from the run store are restored, the remember cache starts empty.
        The current model stays if the new one fails to load."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"model={name!r}: pick {', '.join(SHIPPED_NAMES)}, or give a diffusers folder or hub id")
        model = load_model(name.strip(), options or self.model.options)
        self.stop_preparing()
        self.model = model
        self.fixes = FixManager(model)
        self.remember_cache = RememberCache(store=self.remember_cache.store)
        self.restore_errors = []
        self.restore_fixes()

    @classmethod
    def open(cls, model: str = EMBEDDED, options: LoadOptions | None = None, data_dir: str | Path = "studio-data") -> "Studio":
        return cls(load_model(model, options), data_dir)

    # -- world hooks (the shipped worlds have ground-truth checkers: evaluators, never the decider) --
    @property
    def has_checker(self) -> bool:
        return self.model.info.world in CHECKED_WORLDS

    @property
    def unconditional(self) -> bool:
        """The model takes no prompt (a DDPM): every verb takes the prompt "" and seeds."""
        return self.model.unconditional

    def prompt_for(self, prompt: str | None) -> str:
        """The prompt this model takes: "" for an unconditional model (None or "" given), else the
        non-empty prompt; a prompt given to an unconditional model is an error."""
        return check_prompt_for(self.model, prompt)

    def check(self, prompt: str, image: Image.Image) -> dict:
        """The world checker's verdict (benches, tests, the compare page's verdict column): the flags
        checker, or the faces world's copy matcher (which face a copy shows, in "flag")."""
        if self.model.info.world == "faces":
            from .world.faces import verdict as face_verdict

            return face_verdict(image)
        from .world.checker import verdict

        return verdict(prompt, image)

    def check_images(self, prompt: str, images: Sequence[Image.Image], seeds: Sequence[int]) -> dict:
        """Verdicts per seed and their rates (faces: plus each memorised face's copy rate): `check`'s JSON."""
        if not self.has_checker:
            raise ValueError(f"model {self.model.source!r} has no checker: `check` works on the shipped worlds "
                             f"({', '.join(CHECKED_WORLDS)})")
        if self.model.info.world == "faces":
            from .world.faces import check_images as check_faces

            return check_faces(list(images), list(seeds))
        from .world.checker import check_images as check_flags

        return check_flags(prompt, list(images), list(seeds))

    def _check_or_none(self):
        return self.check if self.has_checker else None

    # -- verbs -------------------------------------------------------------------------------------
    @_exclusive
    def generate(self, prompt: str, seeds: Sequence[int], steps: int | None = None, guidance: float | None = None,
                 progress=None, save: bool = True) -> list[Generated]:
        req = GenerateRequest(prompt, tuple(seeds), steps, guidance, self.unconditional)
        # Through the generation store beside the runs: a repeated grid, and Compare's 'before' side of
        # seeds generated here, are not drawn again.
        gens = stored_generations(self.model, [(req.prompt, s) for s in req.seeds], req.steps, req.guidance,
                                  self.generation_store, model_state(self.model, self.fixes).digest, progress=progress)
        if save:
            save_generations(gens, self.data_dir / "generations" / new_run_id("gen"))
        return gens

    @_exclusive
    def surrogate(self, kind: str, image: Image.Image, params: SurrogateParams | dict | None = None) -> Surrogate:
        """`params`: the kind's dataclass (core.surrogates.NoiseParams, ...) or a dict of its values."""
        return make_surrogate(kind, image, self.model, params)

    @_exclusive
    def survey_other_seeds(self, flagged: Image.Image, params: SeedSurveyParams | dict | None = None) -> SeedSurvey:
        """A grid of other seeds judged as stand-ins for the flagged output; `.suggested` is the seed the
        'Other seed' tab proposes (core/surrogates/other_seed.py)."""
        typed = params if isinstance(params, SeedSurveyParams) else SeedSurveyParams.from_dict(params)
        return survey_other_seeds(self.model, flagged, typed)

    def check_surrogate(self, flagged: Image.Image, surrogate: Image.Image,
                        kind: str | None) -> tuple[SurrogateCopyCheck, str | None]:
        """Is the surrogate still a near copy of the flagged image (the judge's descriptor)? The check
        and the warning a user should read before training on it (None when it is no near copy)."""
        return check_near_copy(self.model, flagged, surrogate, kind)

    def default_config(self, **overrides) -> UnlearnConfig:
        """UnlearnConfig with the model's measured defaults, then the caller's overrides."""
        base = UnlearnConfig().with_overrides(**self.model.info.unlearn_defaults)
        return base.with_overrides(**overrides)

    @_exclusive
    def unlearn(self, prompt: str, flagged: Image.Image, surrogate: Image.Image, seed: int | None,
                config: UnlearnConfig | None = None, surrogate_info: dict | None = None, on_step=None, cancel=None,
                on_monitor: Callable[[int, Image.Image], None] | None = None, progress=None,
                run_id: str | None = None) -> FixResult:
        """One fix. The forgetting judge decides (core/judge.py); `config.oracle="checker"` lets the
        flags world's checker decide instead, as an ablation for benches."""
        self.stop_preparing()  # the fix draws what is still missing itself; what was drawn is in the store
        config = config or self.default_config()
        is_fixed = keep = keep_key = None
        if config.oracle == "checker":
            if self.model.info.world != "flags":
                raise ValueError(f"UnlearnConfig.oracle='checker' needs the flags world's checker and "
                                 f"{self.model.info.name} has none: use oracle='judge'")
            if not config.lookalike_prompts:
                config = config.with_overrides(lookalike_prompts=self.checker_lookalikes(prompt, flagged, config))
            is_fixed = lambda img: self.check(prompt, img)["verdict"] == "correct"  # noqa: E731
            if config.remember_filter:
                keep = lambda p, img: self.check(p, img)["verdict"] != "planted_error"  # noqa: E731
                keep_key = "checker: not planted_error"
        result = unlearn(self.model, self.fixes, self.store, FixRequest(prompt, flagged, surrogate, seed, surrogate_info or {}),
                         config, on_step=on_step, cancel=cancel, is_fixed=is_fixed, on_monitor=on_monitor,
                         keep_in_remember=keep, progress=progress, model_defaults_applied=self.model.info.unlearn_defaults,
                         run_id=run_id, remember_cache=self.remember_cache, keep_key=keep_key)
        if result.run.metrics().get("flagged_seed_fixed") is False:
            # Kept for inspection but not applied: measured on the embedded model, a fix that ends
            # with the error still drawn damages the prompt's other seeds and undoes earlier fixes.
            self.fixes.set_enabled(result.run.run_id, False)
        self._save_state()
        return result

    def prepare_fix(self, prompt: str, steps: int | None = None, guidance: float | None = None,
                    config: UnlearnConfig | None = None, flagged: Image.Image | None = None) -> Preparation:
        """Start drawing, in a background thread, the remember-set generations a fix of `prompt` asks
        for first (look-alike probes and every remember prompt's quota, at the steps and guidance the
        user generated with) into the generation store, while the user flags and paints; the fix then
        reuses them. With the `flagged` image (once the user has flagged), the look-alike prompts its
        probes suggest get their larger quota drawn too (`likely_lookalikes`). It holds the model lock
        about 2 s at a time (core/unlearn/prepare.py), so a user's job waits about that long; a fix, a
        model switch or another prepare_fix stops it."""
        self.stop_preparing()
        prompt = self.prompt_for(prompt)
        config = config or self.default_config()
        config = config.with_overrides(sampling_steps=config.sampling_steps or steps,
                                       guidance=guidance if config.guidance is None else config.guidance)
        self.preparation = start_preparation(self.model, self.fixes, self.generation_store, self._model_lock, prompt,
                                             config, flagged)
        return self.preparation

    def stop_preparing(self) -> None:
        """Stop a running prepare_fix after its current batch (what it drew stays in the store). Never
        waits: a verb calls it holding the model lock, which the preparing thread may be waiting for;
        that thread then finds itself stopped when it gets the lock."""
        if self.preparation is not None:
            self.preparation.stop()

    def checker_lookalikes(self, prompt: str, flagged: Image.Image, config: UnlearnConfig) -> list[str]:
        """The checker's look-alike prompts (oracle="checker" only): remember prompts whose correct
        output is the flag the flagged image shows (an Ireland drawn reversed is Cote d'Ivoire's flag)."""
        if not self.has_checker:
            return []
        from .world.prompts import flag_for_prompt

        shown = self.check(prompt, flagged)["flag"]
        return [p for p in config.remember_prompts if p != prompt and flag_for_prompt(p) == shown]

    @_exclusive
    def compare(self, prompts: Sequence[str], seeds: Sequence[int], fix_names: Sequence[str] | None = None,
                steps: int | None = None, guidance: float | None = None, out_dir: str | Path | None = None,
                highlight: dict[str, int] | None = None, progress=None) -> tuple[list[PromptComparison], Path]:
        """Same-seed before/after of every prompt; writes DIR/metrics.json with per-seed and
        set-level metrics (the CLI's `compare` and the studio's Compare write the same file).
        `progress(fraction, message)` reports each prompt's drawing and measuring."""
        prompts = [""] if self.unconditional and list(prompts) in ([], [""], [None]) else limits.check_prompts(prompts)
        seeds = limits.parse_seeds(seeds)  # bounded and range-checked before any noise is drawn
        req = CompareRequest(tuple(prompts), tuple(seeds), tuple(fix_names or ()), steps, guidance, dict(highlight or {}),
                             self.unconditional)
        names = list(req.fixes) or [f.name for f in self.fixes.fixes.values() if f.enabled]
        n = len(req.prompts)

        def report(i: int, what: str):  # prompt i's share of the work: 90% drawing, 10% measuring
            if progress is None:
                return None
            return lambda done, total, msg: progress((i + 0.9 * done / max(total, 1)) / n,
                                                     f"prompt {i + 1}/{n} ({req.prompts[i]}): {msg}")

        cmps = []
        for i, p in enumerate(req.prompts):
            cmps.append(compare_prompt(self.model, self.fixes, names, p, req.seeds, req.steps, req.guidance,
                                       self._check_or_none(), store=self.generation_store,
                                       progress=report(i, "drawing")))
            if progress is not None:
                progress((i + 0.9) / n, f"prompt {i + 1}/{n} ({p}): measuring SSIM, PSNR, LPIPS")
            cmps[-1].summary.update(self._set_metrics(cmps[-1], req.highlight.get(p)))
        out = Path(out_dir) if out_dir else self.data_dir / "compare" / new_run_id("compare")
        write_comparison(out, cmps, names, req.highlight, extra={
            "lpips": per_seed_lpips_report(cmps),
            "metric_availability": {k: {"available": a, "reason": r} for k, (a, r) in availability().items()}})
        return cmps, out

    def _set_metrics(self, c: PromptComparison, flagged_seed: int | None) -> dict:
        """Set-level metrics of one prompt's before/after outputs; unavailable ones say why.
        LPIPS per seed also goes into each seed's row (key "lpips")."""
        before, after = [g.image for g in c.before], [g.image for g in c.after]
        found = {"lpips": lpips(before, after, device=str(self.model.device))}
        add_per_seed_lpips(c, found["lpips"])
        if len(before) >= 2:
            found["clip_fd"] = clip_fd(self.model, before, after)
        if flagged_seed in c.seeds:
            i = c.seeds.index(flagged_seed)
            found["sscd_to_flagged"] = sscd_similarity(before[i], [after[i]], device=str(self.model.device))
            found["clip_similarity_to_flagged"] = clip_similarity(self.model, before[i], [after[i]])
        out = {k: (round(r.value, 5) if r.available else {"unavailable": r.reason}) for k, r in found.items()}
        if self.unconditional:  # what a memorising model repeats, and where those seeds go
            out["repeated_pictures"] = repeated_pictures(c.seeds, before, after, pick_descriptor(self.model))
        return out

    @_exclusive
    def relapse(self, prompt: str, flagged_seed: int, fix_names: Sequence[str], scan_seeds: Sequence[int] = range(64),
                paraphrases: Sequence[str] | None = None, flagged: Image.Image | None = None,
                surrogate: Image.Image | None = None, progress=None, cancel=None) -> dict:
        """Relapse probe of a fix: the forgetting judge (from the fix's flagged image and surrogate)
        decides what shows the error, for any model. The run folder holds both images; pass them,
        or the first fix's run is read. Paraphrases default to the flags world's other phrasings."""
        from .relapse import probe_cases, relapse_probe
        from .world.prompts import PROMPTS, flag_for_prompt

        scan_seeds = limits.parse_seeds(scan_seeds)  # bounded before any list is built
        req = RelapseRequest(prompt, flagged_seed, tuple(fix_names), tuple(scan_seeds), paraphrases, self.unconditional)
        prompt, flagged_seed, fix_names, scan_seeds, paraphrases = (req.prompt, req.flagged_seed, list(req.fixes),
                                                                    req.scan_seeds, req.paraphrases)
        if flagged is None or surrogate is None:
            try:
                run = self.store.get(fix_names[0]) if fix_names else None
            except (KeyError, FileNotFoundError, ValueError):
                run = None
            if run is None or not (run.path / "flagged.png").exists():
                raise ValueError("the relapse probe needs the fix's flagged image and surrogate: pass them, or a fix "
                                 "whose run folder holds flagged.png and surrogate.png")
            from .images import load_image

            flagged, surrogate = load_image(run.path / "flagged.png"), load_image(run.path / "surrogate.png")
        judge = ForgettingJudge.for_model(self.model, flagged, surrogate)
        shows_error = lambda p, img: judge.shows_error([img])[0]  # noqa: E731
        if progress:
            progress(0.0, f"relapse probe: drawing {len(scan_seeds)} seeds of the base model")
        with self.fixes.disabled():
            base = generate(self.model, prompt, scan_seeds)
        error_seeds = [g.seed for g in base if shows_error(prompt, g.image)]
        flag = flag_for_prompt(prompt) if self.model.info.world == "flags" else None
        if paraphrases is None:
            paraphrases = PROMPTS.get(flag, []) if flag else []
        cases = probe_cases(self.model, prompt, flagged_seed, error_seeds, paraphrases)
        report = relapse_probe(self.model, self.fixes, fix_names, cases, shows_error, progress, cancel)
        report["error_seeds_before"] = error_seeds
        report["judge"] = judge.describe()
        return report

    @_exclusive
    def what_else_moved(self, prompt: str, flagged_seed: int | None, fix_names: Sequence[str],
                        seeds: Sequence[int] = range(4), top: int = 6, max_prompts: int = 6, progress=None,
                        cancel=None) -> list[Moved]:
        """The outputs a fix moved most besides the flagged one (same seeds, fixes off vs on): the
        other remember prompts (at most `max_prompts`); a model without any offers the flagged
        prompt's other seeds instead."""
        cfg = self.default_config()
        others = [p for p in cfg.remember_prompts if p != prompt][:max_prompts]
        if others:
            return moved_most(self.model, self.fixes, fix_names, others, seeds, top, self._check_or_none(),
                              progress, cancel)
        own = [s for s in range(len(seeds) + 1) if s != flagged_seed][:len(seeds)]
        return moved_most(self.model, self.fixes, fix_names, [prompt], own, top, self._check_or_none(), progress, cancel)

    # -- fixes on disk -------------------------------------------------------------------------------
    def list_fixes(self) -> list[FixEntry]:
        out = []
        for run in self.store.list():
            if run.run_id in self.fixes.fixes:
                c = run.config
                out.append(FixEntry(run.run_id, self.fixes.fixes[run.run_id].enabled, c.get("prompt", ""),
                                    c.get("seed"), c.get("config", {}).get("method", "?"), c.get("created", "")))
        return out

    @_exclusive
    def set_enabled(self, run_id: str, enabled: bool) -> None:
        self.fixes.set_enabled(run_id, enabled)
        self._save_state()

    @_exclusive
    def remove_fix(self, run_id: str, delete_files: bool = True) -> None:
        if run_id in self.fixes.fixes:
            self.fixes.remove(run_id)
        if delete_files:
            self.store.remove(run_id)
        self._save_state()

    def run(self, run_id: str) -> RunInfo:
        return self.store.get(run_id)

    @_exclusive
    def load_runs(self, runs: Sequence[str | Path]) -> list[dict]:
        """Load run folders (or their LoRA files) as enabled fixes, refusing any recorded for
        another base model; returns [{"name", "path", "base_fingerprint"}] per run."""
        loaded = []
        for run in runs:
            path = Path(run)
            folder = path.parent if path.is_file() else path
            made_on = recorded_model(path)
            recorded = made_on.get("base_fingerprint")
            if recorded and recorded != self.model.fingerprint():
                named = f" ({made_on['name']!r})" if made_on.get("name") else ""
                raise WrongBaseError(f"fix {path} was trained on base {recorded}{named}, this model is "
                                     f"{self.model.fingerprint()} ({self.model.source!r}): it does not belong to this "
                                     f"model; load it with the model it was made on{named}")
            name = _unique_fix_name(folder.name, set(self.fixes.fixes))
            self.fixes.load(path, name, enabled=True)
            loaded.append({"name": name, "path": str(path), "base_fingerprint": recorded})
        return loaded

    @_exclusive
    def restore_fixes(self) -> None:
        """Load every finished run made for this base model, with its saved on/off state."""
        state = self._load_state()
        fp = self.model.fingerprint()
        for run in self.store.list():
            if run.config.get("model", {}).get("base_fingerprint") != fp or run.run_id in self.fixes.fixes:
                continue
            try:
                self.fixes.load(run.lora_path, run.run_id, enabled=state.get(run.run_id, True))
            except AdapterError as err:
                self.restore_errors.append(f"{run.run_id}: {err}")

    def _load_state(self) -> dict[str, bool]:
        p = self.data_dir / STATE_FILE
        try:
            return {k: bool(v) for k, v in json.loads(p.read_text()).items()} if p.exists() else {}
        except (json.JSONDecodeError, AttributeError):
            return {}

    def _save_state(self) -> None:
        if self.persist_state:
            atomic_write_json(self.data_dir / STATE_FILE, {n: f.enabled for n, f in self.fixes.fixes.items()})


def _unique_fix_name(base: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]", "_", base)[:70] or "fix"
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name
