"""Section 6: the fixes made for this base model: list, switch on/off, remove, export, relapse probe.

Each fix is a run folder (LoRA file, config.json, metrics, loss log, PNGs); Studio finds them again
after a restart. Export hands out a zip with the LoRA file and a one-file HTML report.
"""

import gradio as gr
import pandas as pd

from .common import GPU, fmt, serve_copy, session_key, titled, upload_dir, user_errors

FIX_COLUMNS = ["run_id", "name", "on", "prompt", "seed", "method", "steps", "surrogate", "flagged change", "fixed", "created"]
RELAPSE_COLUMNS = ["probe", "cases", "error before", "error after", "relapsed", "relapse fraction", "new errors"]


def build(ui, studio) -> None:
    gr.Markdown("### 6 · Fixes", elem_classes=["section-title"])
    ui.fix_table = gr.Dataframe(headers=FIX_COLUMNS, label="Fixes for this model (each is a run with its config)",
                                interactive=False, wrap=True, max_height=300)
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row():
                ui.fix_pick = gr.Dropdown(label="Fix", choices=[], value=None, interactive=True, scale=3)
                ui.fix_on = gr.Checkbox(label="switched on", value=False, scale=1)
            with gr.Row():
                ui.fix_refresh = gr.Button("Refresh")
                ui.fix_export = gr.Button("Export (zip: LoRA + report)", variant="primary")
                ui.fix_remove = gr.Button("Remove", variant="stop")
            with gr.Row():
                ui.fix_label_name = gr.Textbox(label="name", max_length=80, elem_id="fix-label-name")
                ui.fix_label_note = gr.Textbox(label="note", elem_id="fix-label-note")
                ui.fix_label_btn = gr.Button("Save name and note", min_width=80)
            ui.fix_file = gr.File(label="Export", interactive=False, height=90)
            with gr.Row():
                ui.fix_relapse = gr.Button("Relapse probe", elem_id="relapse-btn")
                ui.relapse_stop = gr.Button("Stop probe", variant="stop", elem_id="relapse-stop")
        with gr.Column(scale=3):
            ui.fix_config = gr.JSON(label="Run config and metrics", open=False)
            ui.relapse_table = gr.Dataframe(
                headers=RELAPSE_COLUMNS, interactive=False, wrap=True,
                label="Relapse probe: does the fixed error come back at other seeds that drew it, other sampling "
                      "steps and, for a text-to-image model, other guidance and phrasings? (this fix alone, vs the base)")


def _rows(studio) -> pd.DataFrame:
    rows = []
    for f in studio.list_fixes():
        run = studio.run(f.run_id)
        cfg, m = run.config, run.metrics()
        name = _label(run)["name"]
        rows.append([f.run_id, "" if name == f.run_id else name,  # an unnamed fix: its id once, not twice
                     "on" if f.enabled else "off", f.prompt, f.seed, f.method,
                     m.get("steps_done", cfg.get("config", {}).get("steps")),
                     (cfg.get("surrogate") or {}).get("kind", "?"), fmt(m.get("flagged_seed_mean_abs_change")),
                     _fixed(m.get("flagged_seed_fixed")), f.created])
    return pd.DataFrame(rows, columns=FIX_COLUMNS)


def _label(run) -> dict:
    return run.label() if hasattr(run, "label") else {"name": run.run_id, "note": ""}


def _details(studio, run_id):
    if not run_id:
        return None
    run = studio.run(run_id)
    return {"run_id": run_id, **_label(run), "folder": str(run.path), "metrics": run.metrics(), **run.config}


def _fixed(verdict: bool | None) -> str:
    """The checker's verdict on the flagged seed when the fix finished ("-" without a checker)."""
    return "-" if verdict is None else ("yes" if verdict else "no")


def fix_widgets(studio, pick: str | None = None, compare: bool = False):
    """(table, fix dropdown, compare checkboxes, config JSON, on/off) for the fixes as they are now;
    `compare` ticks the picked fix in Compare (a fix just made is compared, on or off)."""
    fixes = studio.list_fixes()
    ids = [f.run_id for f in fixes]
    pick = pick if pick in ids else (ids[-1] if ids else None)
    on = next((f.enabled for f in fixes if f.run_id == pick), False)
    choices = [(_choice_label(studio, run_id), run_id) for run_id in ids]  # the name shows, the id is sent
    return (_rows(studio), gr.update(choices=choices, value=pick), gr.update(choices=choices, value=[pick] if compare and pick else []),
            _details(studio, pick), on)


def _choice_label(studio, run_id: str) -> str:
    name = _label(studio.run(run_id)).get("name") or run_id
    return run_id if name == run_id else f"{name} ({run_id})"


def _enabled(studio, run_id) -> bool:
    return next((f.enabled for f in studio.list_fixes() if f.run_id == run_id), False)


def set_enabled(studio, run_id, on):
    with user_errors("Switch fix"):
        if not run_id:
            raise ValueError("pick a fix first")
        studio.set_enabled(run_id, bool(on))
    gr.Info(f"{run_id} switched {'on' if on else 'off'}")
    return fix_widgets(studio, run_id)


def remove(studio, run_id):
    if not run_id:  # nothing picked, or the confirm dialog was cancelled
        return (gr.skip(),) * 5
    with user_errors("Remove fix"):
        studio.run(run_id)  # raises for an unknown or invalid id
        studio.remove_fix(run_id)
    gr.Info(f"{run_id} removed")
    return fix_widgets(studio)


def export(studio, run_id):
    from core.report import export_zip

    with user_errors("Export"):
        if not run_id:
            raise ValueError("pick a fix to export")
        run = studio.run(run_id)
        path = export_zip(run, studio.data_dir / "compare", upload_dir("exports") / f"{run_id}.zip")
    return serve_copy(path)


def relapse(studio, run_id, progress=None, cancel=None) -> pd.DataFrame:
    """The relapse probe of one fix (core.Studio.relapse), one row per kind of probe."""
    with user_errors("Relapse probe"):
        if not run_id:
            raise ValueError("pick a fix to probe")
        cfg = studio.run(run_id).config
        extra = {} if progress is None and cancel is None else {"progress": progress, "cancel": cancel}
        report = studio.relapse(cfg["prompt"], int(cfg["seed"]), [run_id], **extra)
    rows = [[kind, k["cases"], k["error_before"], k["error_after"], k["relapsed"], fmt(k["relapse_fraction"]),
             k["new_errors"]] for kind, k in report["kinds"].items()]
    return pd.DataFrame(rows, columns=RELAPSE_COLUMNS)


def wire(ui, studio, jobs) -> None:
    from .app import header_text

    # The header's "fixes loaded: N (M on)" follows every change made here.
    widgets = [ui.fix_table, ui.fix_pick, ui.cmp_fixes, ui.fix_config, ui.fix_on, ui.header]

    def with_header(values):
        return (*values, header_text(studio)) if len(values) == 5 else values

    def on_pick(run_id):
        with user_errors("Fix"):
            label = _label(studio.run(run_id)) if run_id else {"name": "", "note": ""}
            return _details(studio, run_id), _enabled(studio, run_id), label["name"], label["note"]

    def on_switch(run_id, enabled):
        return with_header(set_enabled(studio, run_id, enabled))

    def on_refresh(run_id=None):
        return with_header(fix_widgets(studio, run_id))

    def on_remove(run_id):
        return with_header(remove(studio, run_id))

    def on_export(run_id):
        return export(studio, run_id)

    ui.fix_pick.input(on_pick, [ui.fix_pick], [ui.fix_config, ui.fix_on, ui.fix_label_name, ui.fix_label_note],
                      api_name="show_fix")
    ui.fix_on.input(on_switch, [ui.fix_pick, ui.fix_on], widgets, api_name="set_fix_enabled", **GPU)
    ui.fix_refresh.click(on_refresh, [ui.fix_pick], widgets, api_name="list_fixes")
    ui.fix_remove.click(on_remove, [ui.fix_pick], widgets, api_name="remove_fix", **GPU,
                        js="(r) => (r && confirm('Remove fix ' + r + ' and delete its files?')) ? r : null")
    ui.fix_export.click(on_export, [ui.fix_pick], [ui.fix_file], api_name="export_fix")
    def on_relapse(run_id, request: gr.Request, progress=gr.Progress()):
        from core.unlearn.trainer import CancelledError, CancelToken

        token, key = CancelToken(), f"relapse:{session_key(request)}"
        jobs.start(key, token)
        try:
            return relapse(studio, run_id, lambda frac, msg: progress(frac, desc=msg), token)
        except gr.Error as err:
            if isinstance(err.__cause__, CancelledError):
                raise titled(f"The relapse probe was stopped ({err.__cause__}).", title="Probe stopped") from None
            raise
        finally:
            jobs.finish(key, token)

    def on_relapse_stop(request: gr.Request):
        if not jobs.cancel(f"relapse:{session_key(request)}"):
            gr.Info("No relapse probe is running.", title="Stop probe")

    ui.fix_relapse.click(on_relapse, [ui.fix_pick], [ui.relapse_table], api_name="relapse_probe", **GPU)
    ui.relapse_stop.click(on_relapse_stop, None, None, api_name="relapse_stop", concurrency_id="stop")

    def on_label(run_id, name, note):
        with user_errors("Fix name"):
            if not run_id:
                raise ValueError("pick a fix first")
            studio.store.set_label(run_id, name, note)
        return with_header(fix_widgets(studio, run_id))

    ui.fix_label_btn.click(on_label, [ui.fix_pick, ui.fix_label_name, ui.fix_label_note], widgets,
                           api_name="label_fix")
