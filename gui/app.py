"""Unlearn Studio's Gradio app over a headless `core.Studio`: one workspace for the flow, left to
right (1 Generate, 2 Flag | 3 Surrogate | 4 Fix), and two tabs (5 Compare, 6 Fixes).

`build_app(studio)` makes the Blocks (tests drive it with gradio_client); gui/launcher.py serves
it for `unlearn-studio studio` / `python launch.py`: loopback only unless told otherwise, no
share link, no analytics, temp files under the data dir.
"""

import os
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
/* Gradio's gallery keeps thumbnails >= 100 px (3 to a row here): a grid of 32 outputs then needs 11 rows of
   scrolling to find the bad one. Small thumbnails of small images are enough to spot it. */
#gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(64px, 1fr)) !important;
                           grid-auto-rows: minmax(64px, 1fr) !important; gap: 4px !important; }
"""


def header_text(studio) -> str:
    from core.metrics import availability

    m, info = studio.model, studio.model.info
    dtype = str(m.denoiser.dtype).replace("torch.", "")
    on = sum(f.enabled for f in studio.fixes.fixes.values())
    lines = ["# Unlearn Studio",
             f"Model **{info.name}** (`{m.location}`) · device **{m.device}** · dtype **{dtype}** · "
             f"{info.resolution} px · {info.default_steps} steps · "
             + ("unconditional (seeds only, no prompt) · " if m.unconditional else f"guidance {info.default_guidance} · ")
             + f"world checker: **{'yes' if studio.has_checker else 'no'}** · "
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

    from . import compare_section, fixes_section, generate_section, model_picker, surrogate_section, unlearn_section
    from .common import JobRegistry, Session

    jobs = jobs or JobRegistry()
    ui = SimpleNamespace()
    with gr.Blocks(title="Unlearn Studio", analytics_enabled=False) as demo:
        ui.session = gr.State(Session())
        with gr.Row(equal_height=False):
            ui.header = gr.Markdown(header_text(studio), elem_classes=["studio-header"], elem_id="studio-header")
            model_picker.build(ui, studio)
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
        model_picker.wire(ui, studio, header_text)

        def on_load():
            for err in studio.restore_errors:
                gr.Warning(f"earlier fix not loaded: {err}", title="Fix not loaded")
            return (header_text(studio), *fixes_section.fix_widgets(studio), *model_picker.model_widgets(studio))

        demo.load(on_load, None, [ui.header, ui.fix_table, ui.fix_pick, ui.cmp_fixes, ui.fix_config, ui.fix_on,
                                  *model_picker.model_outputs(ui)], api_name=False)
    demo.ui = ui  # for tests and scripts
    return demo


def launch_kwargs(studio, hosts: list[str] | None = None) -> dict:
    """launch() settings shared by the CLI and scripts: see docs/reference anchors A1, B.

    `hosts`: the Host names the server answers to (default: loopback only); requests for other
    hosts, other ports or from other origins are refused before any route runs (server_guard)."""
    from .server_guard import allowed_hosts, guard_middleware

    data_dir = Path(studio.data_dir).resolve()
    return dict(ssr_mode=False, max_file_size="25mb", allowed_paths=[], css=CSS,
                blocked_paths=[str(data_dir / "runs"), str(Path(studio.store.root).resolve()), _hf_cache()],
                footer_links=["api", "settings"], quiet=True, strict_cors=True,
                app_kwargs={"middleware": guard_middleware(hosts or allowed_hosts("127.0.0.1"))})


def _hf_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(Path(HF_HUB_CACHE).resolve())
    except Exception:  # pragma: no cover
        return str(Path("~/.cache/huggingface").expanduser())


def launch_studio(args) -> int:
    """Kept for scripts that call it: the launcher (gui/launcher.py) serves the studio now."""
    from core.cli import studio_options

    from .launcher import serve

    return serve(studio_options(args))
