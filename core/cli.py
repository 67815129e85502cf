"""`unlearn-studio` command line: a thin layer over core.Studio.

    unlearn-studio generate  --prompt P --seeds 0-7 --out DIR
    unlearn-studio surrogate --image IMG --kind flip|noise|sdedit|clip|paint|other_seed --out IMG
    unlearn-studio unlearn   --prompt P --seed S --surrogate IMG [--flagged IMG] --out RUN
    unlearn-studio compare   --run RUN [--run RUN2] --prompt P --seeds 0-15 --out DIR
    unlearn-studio check     --prompt P --seeds 0-63 [--run RUN ...]       (embedded world)
    unlearn-studio check     --model faces --seeds 0-1023 [--run RUN ...]  (faces world: no prompt)
    unlearn-studio relapse   --run RUN                                     (embedded world)
    unlearn-studio studio    [--host 127.0.0.1] [--port 7860]              (the Gradio app)
    unlearn-studio engine    [--model M] [--socket PATH]                   (keeps models loaded)

While `engine` runs, the other commands run inside it (same files, same JSON, without the seconds of
imports and model loading); UNLEARN_ENGINE=off runs every command in its own process (core/engine).

Every command takes --model (default: the embedded model) and --device. An unconditional model
(`--model faces`, a DDPM folder or hub id) takes no --prompt: its outputs are named by seed alone. Errors print one line
and exit with status 1. core never imports the GUI: `studio` is served by gui/launcher.py, the
`unlearn-studio` console script, which hands its command in through `main(argv, commands)`.
Choices, help and ranges come from the engine's typed configs (UnlearnConfig, surrogate params).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

from .engine.client import delegate

# Names and defaults below come from core's typed configs, imported inside each function: `run` must
# reach a running engine before this process pays for torch (core/engine).
EMBEDDED, FACES = "embedded", "faces"  # core.models.loading's names (tests/test_engine.py checks they agree)
EXIT_ERROR = 1


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help=f"'{EMBEDDED}' (the flags SD3), '{FACES}' (the memorised-faces "
                   "DDPM, unconditional), a diffusers folder, or a hub id. Default: the model the --run folders were "
                   f"made with (their config.json), else '{EMBEDDED}'")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--dtype", default="auto", help="auto | fp32 | fp16 | bf16")
    g.add_argument("--keep-t5", action="store_true", help="load SD3's T5 encoder too (4.7B params)")
    g.add_argument("--low-mem", action="store_true", help="CPU offload + gradient checkpointing (24 GB cards)")
    g.add_argument("--offline", action="store_true", help="never use the network; hub models from cache only")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")


# flag -> UnlearnConfig field; help, choices and the model's defaults come from the config itself.
CONFIG_FLAGS = {"--method": "method", "--steps": "steps", "--lr": "learning_rate", "--surgery": "surgery",
                "--lambda-scheme": "lambda_scheme", "--lambda-exponent": "lambda_exponent",
                "--remember-size": "remember_set_size", "--remember-batch-size": "remember_batch_size",
                "--flagged-prompt-share": "flagged_prompt_share",
                "--lookalike-share": "lookalike_share", "--rank": "lora_rank", "--train-seed": "seed",
                "--oracle": "oracle", "--forget-threshold": "forget_threshold", "--forget-projection": "forget_projection",
                "--remember-floor": "remember_floor", "--forget-snr-gamma": "forget_snr_gamma",
                "--twin-seeds": "twin_seeds", "--twin-patience": "twin_patience", "--retry-seeds": "retry_seeds",
                "--near-miss-steps": "near_miss_steps", "--near-miss-margin": "near_miss_margin",
                "--remember-from": "remember_from", "--earlier-forget-samples": "earlier_forget_samples",
                "--settle-steps": "settle_steps",
                "--settle-patience": "settle_patience", "--settle-lr-scale": "settle_lr_scale",
                "--remember-target": "remember_target", "--remember-model-share": "remember_model_share"}
BOOL_FLAGS = {"--stop-when-fixed": "stop_when_fixed", "--keep-best": "keep_best", "--twin-forget": "twin_forget",
              "--mode-guard": "mode_guard", "--overlap-monitor": "overlap_monitor",
              "--parallel-passes": "parallel_passes"}


def _float_or_none(text: str):
    """A number, or 'none' to reset an optional setting to None (e.g. --flagged-prompt-share none)."""
    return None if text.strip().lower() in ("none", "unset") else float(text)


def _literal(text: str) -> str:
    """A help text written for people, as argparse reads it (it formats help with %: "20%" would fail)."""
    return text.replace("%", "%%")


def _config_args(p: argparse.ArgumentParser) -> None:
    from .unlearn.config import CHOICES, UNSET, UnlearnConfig

    g = p.add_argument_group("fix settings (UnlearnConfig; unset flags keep the model's defaults)")
    helps = {name: _literal(text) for name, text in UnlearnConfig.help().items()}
    types = {f: str(t) for f, t in UnlearnConfig.__annotations__.items()}
    for flag, name in CONFIG_FLAGS.items():
        kind = types[name].replace("| None", "").strip()
        kw = {"choices": CHOICES[name]} if name in CHOICES else {"type": {"int": int, "float": float}.get(kind, str)}
        text = helps[name]
        if types[name].endswith("| None"):
            kw["type"], text = _float_or_none, text + " ('none' resets it)"
        g.add_argument(flag, dest=f"cfg_{name}", default=UNSET, help=text, **kw)  # prefix: --seed is the flagged seed
    for flag, name in BOOL_FLAGS.items():
        g.add_argument(flag, dest=f"cfg_{name}", action=argparse.BooleanOptionalAction, default=UNSET, help=helps[name])


def _surrogate_param_args(p: argparse.ArgumentParser) -> None:
    """One flag per surrogate parameter name, its help from each kind's dataclass."""
    from .surrogates import SURROGATES, param_spec

    g = p.add_argument_group("surrogate parameters (each applies to the kinds named in its help)")
    for name, kinds in _surrogate_param_names().items():
        specs = [(k, param_spec(SURROGATES[k].params_type, name)) for k in kinds]
        kind = specs[0][1]["kind"]
        text = "; ".join(f"{k}: {sp['help']}" + (f" {sp['range']}" if sp["range"] else "")
                         + (f", default {sp['default']}" if sp["default"] not in (None, "") else "") for k, sp in specs)
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=kind or str, default=None, help=_literal(text))


def _surrogate_param_names() -> dict[str, list[str]]:
    """parameter name -> kinds that take it (paint's layers come from --layer files instead)."""
    from dataclasses import fields

    from .surrogates import SURROGATES

    names: dict[str, list[str]] = {}
    for kind, maker in SURROGATES.items():
        for f in fields(maker.params_type):
            if f.name != "layers":
                names.setdefault(f.name, []).append(kind)
    return names


_PROMPT_HELP = "required for text-to-image models; leave it out for unconditional ones (--model faces)"


def build_parser() -> argparse.ArgumentParser:
    from dataclasses import fields

    from .surrogates import SURROGATE_KINDS

    parser = argparse.ArgumentParser(prog="unlearn-studio", description="Prompt-free instance unlearning for SD3 models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="seeded generation -> DIR/seed-NNNN.png + DIR/grid.png")
    p.add_argument("--prompt", default=None, help=_PROMPT_HELP)
    p.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 0,3,5")
    p.add_argument("--out", required=True, type=Path)
    _sampling_args(p)
    _model_args(p)

    p = sub.add_parser("surrogate", help="make a surrogate image from a flagged image")
    p.add_argument("--image", required=True, type=Path,
                   help="the flagged image; for --kind sdedit also a painting of it (paint, then sdedit the result)")
    p.add_argument("--flagged", type=Path, default=None,
                   help="the flagged image, when --image is a painting of it: the near-copy check compares with it, "
                        "and OUT.json records started_from (the painting's kind from its own .json, else its file name)")
    p.add_argument("--kind", required=True, choices=SURROGATE_KINDS)
    _surrogate_param_args(p)
    p.add_argument("--layer", type=Path, action="append", default=[], help="paint: RGBA layer PNG (repeatable)")
    p.add_argument("--suggest", default=None, metavar="SEEDS",
                   help="other_seed, unconditional models, instead of --seed: look through these seeds (e.g. "
                        "5000-5127, the studio's 'Suggest a seed') and take the most ordinary output that is no copy "
                        "of the flagged one and that no other seed there repeats")
    p.add_argument("--out", required=True, type=Path)
    _model_args(p)

    p = sub.add_parser("unlearn", help="train a fix -> RUN/config.json, LoRA file, loss_log.csv, metrics.json")
    p.add_argument("--prompt", default=None, help="the flagged prompt (" + _PROMPT_HELP + ")")
    p.add_argument("--seed", type=int, required=True, help="the flagged seed")
    p.add_argument("--surrogate", required=True, type=Path)
    p.add_argument("--flagged", type=Path, help="the flagged image (default: the generation at --seed)")
    _config_args(p)
    p.add_argument("--on", type=Path, action="append", default=[], help="earlier fix RUN to stack on (repeatable)")
    p.add_argument("--config", type=Path, help="a run's config.json to repeat (CLI flags override it)")
    p.add_argument("--remember-steps", type=int, default=None,
                   help="denoising steps of the remember set (default: the sampling steps)")
    p.add_argument("--remember-store-mb", type=float, default=None,
                   help="size bound of the remember-set store OUT/../.remember/, reused by later fixes "
                        "(default 1024; 0 = keep nothing)")
    p.add_argument("--out", required=True, type=Path)
    _model_args(p)

    p = sub.add_parser("compare", help="before/after grids of the same seeds + metrics.json")
    p.add_argument("--run", type=Path, action="append", required=True, help="fix RUN folder (repeatable)")
    p.add_argument("--prompt", action="append", default=None, help="prompt (repeatable; " + _PROMPT_HELP + ")")
    p.add_argument("--seeds", default="0-15")
    p.add_argument("--out", required=True, type=Path)
    _sampling_args(p)
    _model_args(p)

    p = sub.add_parser("check", help="world-checker verdicts per seed as JSON (flags and faces worlds)")
    p.add_argument("--prompt", default=None, help=_PROMPT_HELP)
    p.add_argument("--seeds", default="0-63")
    p.add_argument("--run", type=Path, action="append", default=[], help="apply these fixes first")
    _sampling_args(p)
    _model_args(p)

    p = sub.add_parser("relapse", help="does a fixed error come back at other seeds/steps/guidance/phrasings? (the judge decides)")
    p.add_argument("--run", type=Path, required=True, help="the fix RUN folder")
    p.add_argument("--scan-seeds", default="0-63", help="seeds scanned for the same error before the fix")
    p.add_argument("--out", type=Path, help="write the JSON report here too")
    _model_args(p)

    p = sub.add_parser("export", help="zip a fix: LoRA file, run records and a one-file HTML report")
    p.add_argument("--run", type=Path, required=True, help="the fix RUN folder")
    p.add_argument("--compare-dir", type=Path, default=None, help="where `compare` outputs live (optional)")
    p.add_argument("--out", type=Path, required=True, help="the .zip to write")

    from .engine.protocol import default_socket_path
    from .engine.server import EngineOptions

    engine_help = {f.name: _literal(f.metadata["help"]) for f in fields(EngineOptions)}
    p = sub.add_parser("engine", help="keep models loaded: later commands run in this process, without "
                       "the start-up (stop with Ctrl+C)")
    p.add_argument("--socket", type=Path, default=default_socket_path(),
                   help=engine_help["socket"] + " (default: $UNLEARN_ENGINE, else the user's cache folder)")
    p.add_argument("--idle-minutes", type=float, default=EngineOptions.idle_minutes,
                   help=engine_help["idle_minutes"])
    _model_args(p)

    p = sub.add_parser("studio", help="start the Gradio studio on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--allow-host", action="append", default=[],
                   help="another Host name the studio answers to, e.g. a LAN DNS name (repeatable); loopback "
                        "names and --host are always allowed")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--data-dir", type=Path, default=Path("studio-data"), help="runs, generations, temp files")
    p.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    _model_args(p)
    return parser


_TEMP_DIRS: list[Path] = []  # scratch folders of this call, removed when the command ends
_MADE_DIRS: list[Path] = []  # folders made for outputs: removed at the end if still empty


def run(argv: list[str] | None = None, commands: dict | None = None) -> int:
    """The shell's entry (`unlearn-studio`, `python -m core.cli`): a running engine answers the command
    if one listens (`unlearn-studio engine`; UNLEARN_ENGINE=off never asks), else this process runs it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    status = delegate(argv)
    return main(argv, commands) if status is None else status


def main(argv: list[str] | None = None, commands: dict | None = None) -> int:
    """Run one command in this process. `commands` adds or replaces handlers (gui/launcher.py passes `studio`)."""
    args = build_parser().parse_args(argv)
    try:
        _default_model(args)
        return _run_command({**COMMANDS, **(commands or {})}[args.command], args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line for users; tracebacks with UNLEARN_DEBUG=1
        import os

        if os.environ.get("UNLEARN_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR


def _default_model(args) -> None:
    """--model not given: the model the --run folders (or `unlearn --config RUN/config.json`) record
    (config.json "model"."name", what --model was when they were made), so a faces fix compares, probes, checks
    and repeats without repeating it; else the embedded SD3. Runs made with different models name none: the
    studio's base check then says which one is wrong."""
    if getattr(args, "model", EMBEDDED) is not None:
        return
    runs = args.run if isinstance(getattr(args, "run", None), list) else [r for r in [getattr(args, "run", None)] if r]
    runs = runs + [c for c in [getattr(args, "config", None)] if c]
    recorded = {_recorded_model(Path(r)) for r in runs}
    args.model = recorded.pop() if len(recorded) == 1 and None not in recorded else EMBEDDED


def _recorded_model(run: Path) -> str | None:
    from .runs import recorded_model

    try:
        record = recorded_model(run)
        name = record.get("name") or None
    except (OSError, ValueError, AttributeError):  # unreadable or not a run's config: no default from it
        return None
    # A folder named relative to where the run was made: its absolute location, from anywhere else.
    location = record.get("location")
    if (name and name not in (EMBEDDED, FACES) and not Path(name).exists() and location
            and Path(location).is_absolute() and Path(location).is_dir()):
        return location
    return name


def _run_command(command, args) -> int:
    try:
        return command(args)
    finally:
        import shutil

        while _TEMP_DIRS:
            shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)
        while _MADE_DIRS:
            try:
                _MADE_DIRS.pop().rmdir()  # only if empty: another run may be using it
            except OSError:
                pass


# -- commands ---------------------------------------------------------------------------------------
def load_options(args):
    """The --device/--dtype/--keep-t5/--low-mem/--offline flags as typed LoadOptions."""
    from .models.loading import LoadOptions

    return LoadOptions(device=args.device, dtype=args.dtype, drop_t5=not args.keep_t5, offline=args.offline,
                       cpu_offload=args.low_mem, gradient_checkpointing=args.low_mem)


def studio_options(args):
    """The `studio` command's flags as typed, checked StudioOptions (what the launcher serves)."""
    from .requests import StudioOptions

    return StudioOptions(host=args.host, port=args.port, data_dir=args.data_dir, share=bool(args.share),
                         open_browser=not args.no_browser, model=args.model, load=load_options(args),
                         allow_hosts=tuple(getattr(args, "allow_host", None) or ()))


_WARM = None  # the engine's loaded models while it runs a command (core/engine/server.py)


@contextlib.contextmanager
def warm_models(models):
    """Commands inside this block take their model from `models` (a WarmModels) instead of loading it."""
    global _WARM
    _WARM = models
    try:
        yield
    finally:
        _WARM = None


def _load(args):
    from .models.loading import load_model

    if _WARM is not None:
        return _WARM.get(args.model, load_options(args))
    return load_model(args.model, load_options(args))


def _studio(args, runs_dir: Path | None = None, remember_store_mb: float | None = None):
    from .studio import DEFAULT_REMEMBER_MB, Studio

    tmp = Path(tempfile.mkdtemp(prefix="unlearn-cli-"))
    _TEMP_DIRS.append(tmp)
    mb = DEFAULT_REMEMBER_MB if remember_store_mb is None else remember_store_mb
    return Studio(_load(args), data_dir=tmp, restore=False, runs_dir=runs_dir or tmp / "runs", persist_state=False,
                  remember_store_mb=mb)


def _check_sampling(args) -> None:
    """--steps and --guidance are checked before the model loads (a bad value costs nothing)."""
    from .limits import check_guidance, check_steps

    if args.steps is not None:
        check_steps(args.steps, "--steps")
    if args.guidance is not None:
        check_guidance(args.guidance, "--guidance")


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img" if "gen" in desc else "step", file=sys.stderr)


def cmd_generate(args) -> int:
    from .generate import parse_seeds, save_generations

    seeds = parse_seeds(args.seeds)
    _check_sampling(args)
    studio = _studio(args)
    args.prompt = studio.prompt_for(args.prompt)
    with _progress_bar(len(seeds), "generating") as bar:
        gens = studio.generate(args.prompt, seeds, args.steps, args.guidance, save=False,
                               progress=lambda done, total, msg: bar.update(done - bar.n))
    out = save_generations(gens, args.out)
    print(json.dumps({"out": str(out), "grid": str(out / "grid.png"), "seeds": seeds}))
    return 0


def cmd_surrogate(args) -> int:
    from dataclasses import replace

    from .images import load_image
    from .runs import atomic_save_image
    from .surrogates import SURROGATES, check_near_copy, make_surrogate, survey_other_seeds

    maker = SURROGATES[args.kind]
    values = surrogate_values(args)
    survey_params = _suggest_params(args, values)
    params = maker.params(values)  # checked before the model loads; --suggest fills in the seed below
    image = load_image(args.image)
    flagged = image if args.flagged is None else load_image(args.flagged)  # read before the model loads
    model = _load(args) if maker.needs_model else None
    survey = survey_other_seeds(model, flagged, survey_params) if survey_params is not None else None
    if survey is not None:
        print(survey.message(), file=sys.stderr)
        if survey.suggested is None:
            raise ValueError(f"--suggest {args.suggest}: {survey.message()}")
        params = replace(params, seed=survey.suggested)
    sur = make_surrogate(args.kind, image, model, params)
    if survey is not None:
        sur.info["suggested_from"] = survey.span
    if args.flagged is not None:  # --image was an edit of the flagged image: say which, as the studio does
        sur.info["started_from"] = _surrogate_kind(args.image) or args.image.name
    atomic_save_image(sur.image, args.out)
    (args.out.with_suffix(".json")).write_text(json.dumps(sur.info, indent=2))
    # the near-copy check needs the model's descriptor: here when the kind loaded it, else at `unlearn`
    near_copy = check_near_copy(model, flagged, sur.image, args.kind)[1] if model is not None else None
    for warning in [*sur.warnings, *([near_copy] if near_copy else [])]:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps({"out": str(args.out), **sur.info}))
    return 0


def _suggest_params(args, values: dict):
    """--suggest SEEDS as the survey's parameters (None without it); a clash names the flag to drop."""
    from .generate import parse_seeds
    from .surrogates import SeedSurveyParams

    if args.suggest is None:
        return None
    if args.kind != "other_seed":
        raise ValueError(f"--suggest does not apply to --kind {args.kind} (it is for other_seed): drop it")
    if "seed" in values:
        raise ValueError("--suggest picks the seed: drop --seed, or drop --suggest to use that seed")
    seeds = parse_seeds(args.suggest, max_count=1024)
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ValueError(f"--suggest {args.suggest}: give one run of seeds, e.g. 5000-5127")
    return SeedSurveyParams(start=seeds[0], count=len(seeds), steps=values.get("steps"))


def surrogate_values(args) -> dict:
    """The given surrogate flags as the kind's parameter values; a flag of another kind is an error."""
    values = {}
    for name, kinds in _surrogate_param_names().items():
        value = getattr(args, name)
        if value is None:
            continue
        if args.kind not in kinds:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --kind {args.kind} "
                             f"(it is for {', '.join(kinds)}): drop it")
        values[name] = value
    if args.layer:
        if args.kind != "paint":
            raise ValueError(f"--layer does not apply to --kind {args.kind} (it is for paint): drop it")
        values["layers"] = [_open_layer(p) for p in args.layer]
    return values


def _open_layer(path: Path):
    from .images import open_checked

    return open_checked(path, f"paint layer {path}", "RGBA")


def _unlearn_overrides(args) -> dict:
    """Given config flags only (UNSET = not given; None = an explicit reset)."""
    from .unlearn.config import UNSET

    names = [*CONFIG_FLAGS.values(), *BOOL_FLAGS.values()]
    given = {n: getattr(args, f"cfg_{n}") for n in names if getattr(args, f"cfg_{n}") is not UNSET}
    if args.remember_steps is not None:
        given["remember_sampling_steps"] = args.remember_steps
    return given


def cmd_unlearn(args) -> int:
    from .adapters import FIX_NAME_RULE, valid_fix_name
    from .generate import generate
    from .images import load_image
    from .limits import check_seed
    from .unlearn.run import new_try

    out = args.out.resolve()
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new --out folder (runs are never overwritten)")
    check_seed(args.seed, "--seed")
    if not valid_fix_name(out.name):
        raise ValueError(f"--out {args.out}: the folder's name {out.name!r} becomes the fix's name: {FIX_NAME_RULE}")
    surrogate = load_image(args.surrogate)  # bad inputs fail before the model loads
    flagged = load_image(args.flagged) if args.flagged else None
    if not out.parent.exists():  # made for this run: removed again if the run fails
        _MADE_DIRS.append(out.parent)
    studio = _studio(args, runs_dir=out.parent, remember_store_mb=args.remember_store_mb)
    args.prompt = studio.prompt_for(args.prompt)
    for i, prev in enumerate(args.on):
        studio.fixes.load(prev, f"on-{i}")
    config = studio.default_config()
    if args.config:
        config = config.with_overrides(**json.loads(args.config.read_text())["config"])
    config = config.with_overrides(**_unlearn_overrides(args))
    if flagged is None:
        flagged = generate(studio.model, args.prompt, [args.seed])[0].image
    _, near_copy = studio.check_surrogate(flagged, surrogate, _surrogate_kind(args.surrogate))
    if near_copy:  # trained anyway (the user decides), but read first
        print(f"warning: {near_copy}", file=sys.stderr)
    with _progress_bar(config.steps, "unlearning") as bar:
        def on_step(r):
            if r.total != bar.total:  # near_miss_steps: a near miss trains on past `steps`
                bar.total = r.total
            bar.update(1)
            bar.set_postfix(L_f=f"{r.L_f:.3f}", L_r=f"{r.L_r:.3f}")

        def on_progress(frac, msg):  # only a new try (retry_seeds) is news here: the bar starts again for it
            label = new_try(msg)
            if label:
                bar.reset()
                bar.set_description(label)

        result = studio.unlearn(args.prompt, flagged, surrogate, args.seed, config, {"kind": "file", "path": str(args.surrogate)},
                                on_step=on_step, run_id=out.name, progress=on_progress)
    m = result.run.metrics()
    print(f"remember set: {m.get('remember_set_size')} ({m.get('remember_reused', 0)} reused)", file=sys.stderr)
    print(json.dumps({"run": str(result.run.path), **m}))
    return 0


def _surrogate_kind(path: Path) -> str | None:
    """The kind `surrogate` wrote beside the image (IMG.json), for the advice of a warning; None if unknown."""
    try:
        return json.loads(path.with_suffix(".json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def _load_runs(studio, runs: list[Path]) -> list[str]:
    return [f["name"] for f in studio.load_runs(runs)]


def cmd_compare(args) -> int:
    from .generate import parse_seeds

    seeds = parse_seeds(args.seeds)
    _check_sampling(args)
    studio = _studio(args)
    args.prompt = [studio.prompt_for(p) for p in (args.prompt or [None])]
    names = _load_runs(studio, args.run)
    highlight = {}
    for run in args.run:
        cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
        if cfg.get("seed") is not None:
            highlight[cfg.get("prompt")] = cfg["seed"]
    cmps, out = studio.compare(args.prompt, seeds, names, args.steps, args.guidance, args.out, highlight)
    print(json.dumps({"out": str(out), "summary": {c.prompt: c.summary for c in cmps}}))
    return 0


def cmd_check(args) -> int:
    from .generate import parse_seeds

    seeds = parse_seeds(args.seeds)
    _check_sampling(args)
    studio = _studio(args)
    if not studio.has_checker:
        raise ValueError(f"model {args.model!r} has no checker: `check` works on the shipped worlds (the embedded "
                         f"flags world: --model {EMBEDDED}; the memorised-faces world: --model {FACES})")
    args.prompt = studio.prompt_for(args.prompt)
    _load_runs(studio, args.run)
    gens = studio.generate(args.prompt, seeds, args.steps, args.guidance, save=False)
    report = studio.check_images(args.prompt, [g.image for g in gens], seeds)
    report["fixes"] = [str(r) for r in args.run]
    print(json.dumps(report, indent=1))
    return 0


def cmd_relapse(args) -> int:
    from .generate import parse_seeds
    from .runs import atomic_write_json

    from .images import load_image

    scan = parse_seeds(args.scan_seeds)
    studio = _studio(args)
    names = _load_runs(studio, [args.run])
    cfg = json.loads((args.run / "config.json").read_text())
    report = studio.relapse(cfg["prompt"], cfg["seed"], names, scan,
                            flagged=load_image(args.run / "flagged.png"), surrogate=load_image(args.run / "surrogate.png"))
    if args.out:
        atomic_write_json(args.out, report)
    print(json.dumps({"run": str(args.run), "kinds": report["kinds"], "error_seeds_before": report["error_seeds_before"]}, indent=1))
    return 0


def cmd_export(args) -> int:
    from .report import export_zip
    from .runs import RunStore

    run = RunStore(args.run.resolve().parent).get(args.run.resolve().name)
    out = export_zip(run, args.compare_dir or args.run / "_no_compare", args.out)
    print(json.dumps({"out": str(out)}))
    return 0


def cmd_studio(args) -> int:
    raise ValueError("`studio` serves the Gradio app, which core does not import: run `unlearn-studio studio`, "
                     "`python -m gui.launcher studio` or `python launch.py`")


def cmd_engine(args) -> int:
    from .engine.server import EngineOptions, serve

    return serve(EngineOptions(socket=args.socket, model=args.model, load=load_options(args),
                               idle_minutes=args.idle_minutes))


COMMANDS = {"generate": cmd_generate, "surrogate": cmd_surrogate, "unlearn": cmd_unlearn,
            "compare": cmd_compare, "check": cmd_check, "relapse": cmd_relapse, "export": cmd_export,
            "studio": cmd_studio, "engine": cmd_engine}

if __name__ == "__main__":
    raise SystemExit(run())
