"""Unlearn Studio's Gradio app over a headless `core.Studio`: one workspace for the flow, left to
right (1 Generate, 2 Flag | 3 Surrogate | 4 Fix), and two tabs (5 Compare, 6 Fixes).

`build_app(studio)` makes the Blocks (tests drive it with gradio_client); `launch_studio(args)` is
what `unlearn-studio studio` / `python launch.py` runs: loopback only unless told otherwise, no
share link, no analytics, temp files under the data dir.
"""

import os
import sys
from pathlib import Path

# Before gradio is imported anywhere: some of its modules read these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
.fill-img img { width: 100% !important; height: 100% !important; object-fit: contain; }
.section-title h3 { margin: 0.2em 0 0.1em 0; border-bottom: 1px solid var(--border-color-primary); }
.studio-header p { margin: 0.05em 0; font-size: 0.9em; }
.studio-header h1 { margin: 0 0 0.1em 0; font-size: 1.4em; }
"""
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def header_text(studio) -> str:
    from core.metrics import availability

    m, info = studio.model, studio.model.info
    dtype = str(m.pipe.transformer.dtype).replace("torch.", "")
    on = sum(f.enabled for f in studio.fixes.fixes.values())
    lines = ["# Unlearn Studio",
             f"Model **{info.name}** (`{m.location}`) · device **{m.device}** · dtype **{dtype}** · "
             f"{info.resolution} px · {info.default_steps} steps · guidance {info.default_guidance} · "
             f"flag checker: **{'yes' if studio.has_checker else 'no'}** · "
             f"fixes loaded: **{len(studio.fixes.fixes)}** ({on} on)"]
    ok, why = availability()["lpips"]
    lines.append("Metrics: SSIM and PSNR" + (", LPIPS" if ok else f"; LPIPS unavailable ({short_reason(why)})"))
    if studio.restore_errors:
        lines.append("**Warning: some earlier fixes could not be loaded:** "
                     + "; ".join(studio.restore_errors))
    return "  \n".join(lines)


def short_reason(reason: str) -> str:
    """First clause of a metric's 'unavailable' reason (the full text is in the Compare section)."""
    return reason.split(":")[0].strip() if reason else "unknown"


def build_app(studio, jobs=None):
    """The studio page for one loaded Studio; every event has an api_name for gradio_client."""
    from types import SimpleNamespace

    import gradio as gr

    from . import compare_section, fixes_section, generate_section, surrogate_section, unlearn_section
    from .common import JobRegistry, Session

    jobs = jobs or JobRegistry()
    ui = SimpleNamespace()
    with gr.Blocks(title="Unlearn Studio", analytics_enabled=False) as demo:
        ui.session = gr.State(Session())
        ui.header = gr.Markdown(header_text(studio), elem_classes=["studio-header"], elem_id="studio-header")
        # One screen for the flow (generate, flag, surrogate, fix), left to right; Compare and
        # Fixes one click away.
        with gr.Tabs(elem_id="studio-tabs"):
            with gr.Tab("Flag and fix", elem_id="tab-fix"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=300):
                        generate_section.build(ui, studio)
                    with gr.Column(scale=4, min_width=360):
                        surrogate_section.build(ui, studio)
                    with gr.Column(scale=4, min_width=360):
                        unlearn_section.build(ui, studio)
            with gr.Tab("Compare", elem_id="tab-compare"):
                compare_section.build(ui, studio)
            with gr.Tab("Fixes", elem_id="tab-fixes"):
                fixes_section.build(ui, studio)

        generate_section.wire(ui, studio)
        surrogate_section.wire(ui, studio)
        unlearn_section.wire(ui, studio, jobs)
        compare_section.wire(ui, studio)
        fixes_section.wire(ui, studio, jobs)

        def on_load():
            for err in studio.restore_errors:
                gr.Warning(f"earlier fix not loaded: {err}", title="Fix not loaded")
            return (header_text(studio), *fixes_section.fix_widgets(studio))

        demo.load(on_load, None, [ui.header, ui.fix_table, ui.fix_pick, ui.cmp_fixes, ui.fix_config, ui.fix_on],
                  api_name=False)
    demo.ui = ui  # for tests and scripts
    return demo


def launch_kwargs(studio) -> dict:
    """launch() settings shared by the CLI and scripts: see docs/reference anchors A1, B."""
    data_dir = Path(studio.data_dir).resolve()
    return dict(ssr_mode=False, max_file_size="25mb", allowed_paths=[], css=CSS,
                blocked_paths=[str(data_dir / "runs"), str(Path(studio.store.root).resolve()), _hf_cache()],
                footer_links=["api", "settings"], quiet=True)


def _hf_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(Path(HF_HUB_CACHE).resolve())
    except Exception:  # pragma: no cover
        return str(Path("~/.cache/huggingface").expanduser())


def launch_studio(args) -> int:
    """Load the model, build the page, serve it until Ctrl+C. Returns the exit status."""
    data_dir = Path(args.data_dir).expanduser().resolve()
    (data_dir / "tmp").mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(data_dir / "tmp")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"

    from core.models.loading import LoadOptions
    from core.studio import Studio

    opts = LoadOptions(device=args.device, dtype=args.dtype, drop_t5=not args.keep_t5, offline=args.offline,
                       cpu_offload=args.low_mem, gradient_checkpointing=args.low_mem)
    print(f"loading model {args.model!r} (device {args.device}, dtype {args.dtype})...", file=sys.stderr)
    studio = Studio.open(args.model, opts, data_dir)
    for err in studio.restore_errors:
        print(f"warning: earlier fix not loaded: {err}", file=sys.stderr)
    if args.host not in LOOPBACK:
        print(f"warning: serving on {args.host}: anyone who can reach this address can use the studio "
              "and your GPU (there is no login)", file=sys.stderr)
    if args.share:
        print("warning: --share asks Gradio for a public link: anyone with the link can use the studio",
              file=sys.stderr)
    demo = build_app(studio)
    _, local_url, share_url = demo.launch(server_name=args.host, server_port=args.port, share=bool(args.share),
                                          inbrowser=not args.no_browser, prevent_thread_lock=True,
                                          **launch_kwargs(studio))
    print(f"Unlearn Studio running at {local_url}" + (f" (public: {share_url})" if share_url else ""))
    print(f"model {studio.model.info.name} on {studio.model.device}; data in {data_dir}; Ctrl+C to stop")
    sys.stdout.flush()
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0
