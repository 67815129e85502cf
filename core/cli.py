"""`unlearn-studio` command line: a thin layer over core.Studio.

    unlearn-studio generate  --prompt P --seeds 0-7 --out DIR
    unlearn-studio surrogate --image IMG --kind flip|noise|sdedit|clip|paint --out IMG
    unlearn-studio unlearn   --prompt P --seed S --surrogate IMG [--flagged IMG] --out RUN
    unlearn-studio compare   --run RUN [--run RUN2] --prompt P --seeds 0-15 --out DIR
    unlearn-studio check     --prompt P --seeds 0-63 [--run RUN ...]       (embedded world)
    unlearn-studio relapse   --run RUN                                     (embedded world)
    unlearn-studio studio    [--host 127.0.0.1] [--port 7860]              (the Gradio app)

Every command takes --model (default: the embedded model) and --device. Errors print one line
and exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .models.loading import EMBEDDED

EXIT_ERROR = 1


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=EMBEDDED, help="'embedded' (default), a diffusers folder, or a hub id")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--dtype", default="auto", help="auto | fp32 | fp16 | bf16")
    g.add_argument("--keep-t5", action="store_true", help="load SD3's T5 encoder too (4.7B params)")
    g.add_argument("--low-mem", action="store_true", help="CPU offload + gradient checkpointing (24 GB cards)")
    g.add_argument("--offline", action="store_true", help="never use the network; hub models from cache only")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn-studio", description="Prompt-free instance unlearning for SD3 models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="seeded generation -> DIR/seed-NNNN.png + DIR/grid.png")
    p.add_argument("--prompt", required=True)
    p.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 0,3,5")
    p.add_argument("--out", required=True, type=Path)
    _sampling_args(p)
    _model_args(p)

    p = sub.add_parser("surrogate", help="make a surrogate image from a flagged image")
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--kind", required=True, choices=["flip", "noise", "sdedit", "clip", "paint"])
    p.add_argument("--text", default="", help="clip: target text")
    p.add_argument("--prompt", default="", help="sdedit: prompt")
    p.add_argument("--strength", type=float, default=0.5, help="sdedit strength (0, 1]")
    p.add_argument("--clip-weight", type=float, default=2.0, help="clip: CLIP loss weight 0.5..32")
    p.add_argument("--sigma", type=float, default=0.1, help="noise: std as a fraction of the pixel range")
    p.add_argument("--layer", type=Path, action="append", default=[], help="paint: RGBA layer PNG (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    _model_args(p)

    p = sub.add_parser("unlearn", help="train a fix -> RUN/config.json, LoRA file, loss_log.csv, metrics.json")
    p.add_argument("--prompt", required=True)
    p.add_argument("--seed", type=int, required=True, help="the flagged seed")
    p.add_argument("--surrogate", required=True, type=Path)
    p.add_argument("--flagged", type=Path, help="the flagged image (default: the generation at --seed)")
    p.add_argument("--method", default=None, choices=["surrogate", "neggrad", "erasediff", "siss"])
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (paper: 100)")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--surgery", choices=["off", "forget", "pcgrad"], default=None)
    p.add_argument("--lambda-scheme", choices=["timestep", "constant"], default=None)
    p.add_argument("--lambda-exponent", type=float, default=None)
    p.add_argument("--remember-size", type=int, default=None, help="remember-set size (paper: 100)")
    p.add_argument("--flagged-prompt-share", type=float, default=None,
                   help="share of the remember set taken from the flagged prompt (default: the model's; "
                        "unset = an even split over the remember prompts)")
    p.add_argument("--lookalike-share", type=float, default=None,
                   help="share of the remember set for prompts whose flag the flagged image shows (flags "
                        "world: the checker finds them; 0 = off; default 0.4)")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank")
    p.add_argument("--train-seed", type=int, default=None, help="seed of the training randomness")
    p.add_argument("--stop-when-fixed", action=argparse.BooleanOptionalAction, default=None,
                   help="stop once the checker sees the flagged seed fixed (default: the model's; on for the embedded "
                        "model, --no-stop-when-fixed runs every step)")
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
    p.add_argument("--prompt", action="append", required=True, help="prompt (repeatable)")
    p.add_argument("--seeds", default="0-15")
    p.add_argument("--out", required=True, type=Path)
    _sampling_args(p)
    _model_args(p)

    p = sub.add_parser("check", help="flag-checker verdicts per seed as JSON (embedded world)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--seeds", default="0-63")
    p.add_argument("--run", type=Path, action="append", default=[], help="apply these fixes first")
    _sampling_args(p)
    _model_args(p)

    p = sub.add_parser("relapse", help="does a fixed error come back at other seeds/steps/guidance/phrasings? (embedded world)")
    p.add_argument("--run", type=Path, required=True, help="the fix RUN folder")
    p.add_argument("--scan-seeds", default="0-63", help="seeds scanned for the same error before the fix")
    p.add_argument("--out", type=Path, help="write the JSON report here too")
    _model_args(p)

    p = sub.add_parser("export", help="zip a fix: LoRA file, run records and a one-file HTML report")
    p.add_argument("--run", type=Path, required=True, help="the fix RUN folder")
    p.add_argument("--compare-dir", type=Path, default=None, help="where `compare` outputs live (optional)")
    p.add_argument("--out", type=Path, required=True, help="the .zip to write")

    p = sub.add_parser("studio", help="start the Gradio studio on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--data-dir", type=Path, default=Path("studio-data"), help="runs, generations, temp files")
    p.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    _model_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line for users; tracebacks with UNLEARN_DEBUG=1
        import os

        if os.environ.get("UNLEARN_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR


# -- commands ---------------------------------------------------------------------------------------
def _load(args):
    from .models.loading import LoadOptions, load_model

    opts = LoadOptions(device=args.device, dtype=args.dtype, drop_t5=not args.keep_t5, offline=args.offline,
                       cpu_offload=args.low_mem, gradient_checkpointing=args.low_mem)
    return load_model(args.model, opts)


def _studio(args, runs_dir: Path | None = None, remember_store_mb: float | None = None):
    from .studio import DEFAULT_REMEMBER_MB, Studio

    tmp = Path(tempfile.mkdtemp(prefix="unlearn-cli-"))
    mb = DEFAULT_REMEMBER_MB if remember_store_mb is None else remember_store_mb
    return Studio(_load(args), data_dir=tmp, restore=False, runs_dir=runs_dir or tmp / "runs", persist_state=False,
                  remember_store_mb=mb)


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img" if "gen" in desc else "step", file=sys.stderr)


def cmd_generate(args) -> int:
    from .generate import parse_seeds, save_generations

    seeds = parse_seeds(args.seeds)
    studio = _studio(args)
    with _progress_bar(len(seeds), "generating") as bar:
        gens = studio.generate(args.prompt, seeds, args.steps, args.guidance, save=False,
                               progress=lambda done, total, msg: bar.update(done - bar.n))
    out = save_generations(gens, args.out)
    print(json.dumps({"out": str(out), "grid": str(out / "grid.png"), "seeds": seeds}))
    return 0


def cmd_surrogate(args) -> int:
    from .images import load_image
    from .runs import atomic_save_image

    image = load_image(args.image)
    needs_model = args.kind in ("sdedit", "clip")
    model = _load(args) if needs_model else None
    from .surrogates import make_surrogate

    params = {"flip": {}, "noise": {"sigma": args.sigma, "seed": args.seed},
              "sdedit": {"strength": args.strength, "prompt": args.prompt, "seed": args.seed},
              "clip": {"text": args.text, "clip_weight": args.clip_weight},
              "paint": {"layers": [_open_layer(p) for p in args.layer]}}[args.kind]
    sur = make_surrogate(args.kind, image, model, **params)
    atomic_save_image(sur.image, args.out)
    (args.out.with_suffix(".json")).write_text(json.dumps(sur.info, indent=2))
    print(json.dumps({"out": str(args.out), **sur.info}))
    return 0


def _open_layer(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return img.convert("RGBA")


def _unlearn_overrides(args) -> dict:
    return {"method": args.method, "steps": args.steps, "learning_rate": args.lr, "surgery": args.surgery,
            "lambda_scheme": args.lambda_scheme, "lambda_exponent": args.lambda_exponent,
            "remember_set_size": args.remember_size, "lora_rank": args.rank, "seed": args.train_seed,
            "stop_when_fixed": args.stop_when_fixed, "flagged_prompt_share": args.flagged_prompt_share,
            "lookalike_share": args.lookalike_share, "remember_sampling_steps": args.remember_steps}


def cmd_unlearn(args) -> int:
    from .generate import generate
    from .images import load_image

    out = args.out.resolve()
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new --out folder (runs are never overwritten)")
    studio = _studio(args, runs_dir=out.parent, remember_store_mb=args.remember_store_mb)
    for i, prev in enumerate(args.on):
        studio.fixes.load(prev, f"on-{i}")
    config = studio.default_config()
    if args.config:
        config = config.with_overrides(**json.loads(args.config.read_text())["config"])
    config = config.with_overrides(**_unlearn_overrides(args))
    flagged = load_image(args.flagged) if args.flagged else generate(studio.model, args.prompt, [args.seed])[0].image
    surrogate = load_image(args.surrogate)
    with _progress_bar(config.steps, "unlearning") as bar:
        def on_step(r):
            bar.update(1)
            bar.set_postfix(L_f=f"{r.L_f:.3f}", L_r=f"{r.L_r:.3f}")

        result = studio.unlearn(args.prompt, flagged, surrogate, args.seed, config, {"kind": "file", "path": str(args.surrogate)},
                                on_step=on_step, run_id=out.name)
    m = result.run.metrics()
    print(f"remember set: {m.get('remember_set_size')} ({m.get('remember_reused', 0)} reused)", file=sys.stderr)
    print(json.dumps({"run": str(result.run.path), **m}))
    return 0


def _load_runs(studio, runs: list[Path]) -> list[str]:
    return [f["name"] for f in studio.load_runs(runs)]


def cmd_compare(args) -> int:
    from .generate import parse_seeds

    studio = _studio(args)
    names = _load_runs(studio, args.run)
    highlight = {}
    for run in args.run:
        cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
        if cfg.get("seed") is not None:
            highlight[cfg.get("prompt")] = cfg["seed"]
    cmps, out = studio.compare(args.prompt, parse_seeds(args.seeds), names, args.steps, args.guidance, args.out, highlight)
    print(json.dumps({"out": str(out), "summary": {c.prompt: c.summary for c in cmps}}))
    return 0


def cmd_check(args) -> int:
    from .generate import parse_seeds
    from .world.checker import check_images

    studio = _studio(args)
    if not studio.has_checker:
        raise ValueError(f"model {args.model!r} has no flag checker: `check` works on the embedded flags world")
    _load_runs(studio, args.run)
    seeds = parse_seeds(args.seeds)
    gens = studio.generate(args.prompt, seeds, args.steps, args.guidance, save=False)
    report = check_images(args.prompt, [g.image for g in gens], seeds)
    report["fixes"] = [str(r) for r in args.run]
    print(json.dumps(report, indent=1))
    return 0


def cmd_relapse(args) -> int:
    from .generate import parse_seeds
    from .runs import atomic_write_json

    studio = _studio(args)
    names = _load_runs(studio, [args.run])
    cfg = json.loads((args.run / "config.json").read_text())
    report = studio.relapse(cfg["prompt"], cfg["seed"], names, parse_seeds(args.scan_seeds))
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
    from gui.app import launch_studio

    return launch_studio(args)


COMMANDS = {"generate": cmd_generate, "surrogate": cmd_surrogate, "unlearn": cmd_unlearn,
            "compare": cmd_compare, "check": cmd_check, "relapse": cmd_relapse, "export": cmd_export,
            "studio": cmd_studio}

if __name__ == "__main__":
    raise SystemExit(main())
