"""Unlearn Studio's Gradio app: one page, top to bottom, over a headless `core.Studio`.

    1 Generate -> 2 Flag -> 3 Surrogate -> 4 Unlearn -> 5 Compare -> 6 Fixes

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
.section-title h2 { margin-top: 0.6em; border-bottom: 1px solid var(--border-color-primary); }
.studio-header p { margin: 0.1em 0; }
"""


def header_text(studio) -> str:
    from core.metrics import availability

    m, info = studio.model, studio.model.info
    dtype = str(m.pipe.transformer.dtype).replace("torch.", "")
    lines = ["# Unlearn Studio",
             f"Model **{info.name}** (`{m.location}`) · device **{m.device}** · dtype **{dtype}** · "
             f"{info.resolution} px · {info.default_steps} steps · guidance {info.default_guidance} · "
             f"flag checker: **{'yes' if studio.has_checker else 'no'}** · "
             f"fixes loaded: **{len(studio.fixes.fixes)}**"]
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
        ui.header = gr.Markdown(header_text(studio), elem_classes=["studio-header"])
        generate_section.build(ui, studio)
        surrogate_section.build(ui, studio)
        unlearn_section.build(ui, studio)
        compare_section.build(ui, studio)
        fixes_section.build(ui, studio)

        generate_section.wire(ui, studio)
        surrogate_section.wire(ui, studio)
        unlearn_section.wire(ui, studio, jobs)
        compare_section.wire(ui, studio)
        fixes_section.wire(ui, studio)

        def on_load():
            for err in studio.restore_errors:
                gr.Warning(f"earlier fix not loaded: {err}")
            return (header_text(studio), *fixes_section.fix_widgets(studio))

        demo.load(on_load, None, [ui.header, ui.fix_table, ui.fix_pick, ui.cmp_fixes, ui.fix_config, ui.fix_on],
                  api_name=False)
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
