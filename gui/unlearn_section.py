"""Section 4: train a fix for the active flag from its surrogate, with live losses, monitor and Stop.

`Studio.unlearn` is synchronous: it runs in a worker thread that reports through a queue, and the
event handler is a generator that streams those reports to the page. Stop sets the run's
CancelToken; the engine stops at the next step and keeps nothing of the run.
"""

import inspect
import queue
import threading
import time
from dataclasses import fields

import gradio as gr
import pandas as pd

from .common import GPU, Session, fmt, session_key, user_errors

MAIN_FIELDS = ["method", "steps", "learning_rate", "lambda_scheme", "surgery", "remember_set_size", "stop_when_fixed"]
HIDDEN_FIELDS = {"remember_seed_start"}  # kept at the engine default, far from browsed seeds
UI_REFRESH_S = 0.5


def _choices(name: str):
    from core.unlearn import config as c

    return c.CHOICES.get(name)  # the config's one table of choice lists


def _component(f, value, help_text: str):
    """One config widget from a dataclass field: its type, the studio's default and its help text."""
    label, elem_id = f.name.replace("_", " "), f"cfg-{f.name}"
    choices = _choices(f.name)
    if choices:
        return gr.Dropdown(list(choices), value=value, label=label, info=help_text, elem_id=elem_id)
    if isinstance(value, bool):
        return gr.Checkbox(value=value, label=label, info=help_text, elem_id=elem_id)
    if isinstance(value, list):
        return gr.Textbox(value="\n".join(value), label=label, info=help_text + " (one per line)", lines=2,
                          elem_id=elem_id)
    is_int = f.type in ("int", "int | None", int) or isinstance(value, int)
    return gr.Number(value=value, label=label + (" (empty = default)" if "None" in str(f.type) else ""),
                     info=help_text, precision=0 if is_int else None, elem_id=elem_id)


def build(ui, studio) -> None:
    from core.unlearn.config import UnlearnConfig

    defaults = studio.default_config()
    helps = UnlearnConfig.help()
    gr.Markdown("## 4 · Unlearn", elem_classes=["section-title"])
    ui.cfg = {}
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row():
                for name in MAIN_FIELDS[:3]:
                    f = next(x for x in fields(UnlearnConfig) if x.name == name)
                    ui.cfg[name] = _component(f, getattr(defaults, name), helps[name])
            with gr.Row():
                for name in MAIN_FIELDS[3:6]:
                    f = next(x for x in fields(UnlearnConfig) if x.name == name)
                    ui.cfg[name] = _component(f, getattr(defaults, name), helps[name])
            ui.cfg["stop_when_fixed"] = gr.Checkbox(
                value=defaults.stop_when_fixed, label="stop when fixed",
                info="the forgetting judge compares each monitor render with your flagged image and surrogate",
                elem_id="cfg-stop_when_fixed")
            with gr.Accordion("Advanced", open=False):
                rest = [f for f in fields(UnlearnConfig) if f.name not in MAIN_FIELDS and f.name not in HIDDEN_FIELDS]
                for i in range(0, len(rest), 3):
                    with gr.Row():
                        for f in rest[i:i + 3]:
                            ui.cfg[f.name] = _component(f, getattr(defaults, f.name), helps[f.name])
            with gr.Row():
                ui.run_btn = gr.Button("Unlearn", variant="primary", elem_id="unlearn-btn")
                ui.stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
            ui.ul_status = gr.Markdown("Flag an output and make a surrogate, then press Unlearn.",
                                       elem_id="unlearn-status")
            ui.ul_result = gr.Markdown("")
        with gr.Column(scale=3):
            with gr.Row():
                ui.loss_plot = gr.LinePlot(x="step", y="value", color="series", title="losses", height=220,
                                           x_title="step", y_title="loss")
                ui.surgery_plot = gr.LinePlot(x="step", y="value", color="series", height=220, x_title="step",
                                              title="gradient surgery", y_title="fraction / cosine")
            ui.monitor = gr.Gallery(label="Flagged seed re-rendered during training (every 'monitor every' steps)",
                                    columns=8, height=180, format="png", object_fit="contain", allow_preview=False,
                                    fit_columns=False, elem_classes=["pixelated"])


def config_from_values(studio, values: dict):
    """UnlearnConfig from widget values: empty numbers keep the studio's default."""
    from core.limits import SEED_MAX, check_number
    from core.unlearn.config import UnlearnConfig

    types = {f.name: f.type for f in fields(UnlearnConfig)}
    defaults = studio.default_config()
    out = {}
    for name, v in values.items():
        if name not in types:
            raise ValueError(f"unknown setting {name!r}")
        default = getattr(defaults, name)
        if isinstance(default, list):
            v = [line.strip() for line in (v or "").splitlines() if line.strip()] if isinstance(v, str) else v
        elif v is None or v == "":
            continue
        elif isinstance(default, bool):
            v = bool(v)
        elif isinstance(default, int) or types[name] in ("int", "int | None"):
            v = check_number(v, name, -SEED_MAX, SEED_MAX, integer=True)  # UnlearnConfig checks its range
        elif isinstance(default, float) or "float" in str(types[name]):
            v = check_number(v, name, -1e9, 1e9)
        out[name] = v
    return defaults.with_overrides(**out)


def _frames(reports: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    loss, surgery, proj = [], [], []
    for r in reports:
        loss += [(r.step, r.L_f, "L_f (forget)"), (r.step, r.L_r, "L_r (remember)")]
        if r.projected is not None:
            proj.append(bool(r.projected))
            surgery.append((r.step, sum(proj) / len(proj), "projected fraction"))
        if r.cos is not None:
            surgery.append((r.step, r.cos, "cos(g_f, g_r)"))
    cols = ["step", "value", "series"]
    return pd.DataFrame(loss, columns=cols), pd.DataFrame(surgery, columns=cols)


def _out(status, reports, shots, result=None, session=None, fixes=None):
    """One update of the section's outputs; None = leave that widget as it is."""
    skip = gr.skip()
    return (status, *_frames(reports), list(shots), skip if result is None else result,
            skip if session is None else session, *(fixes or (skip,) * 5))


def run(studio, jobs, session: Session, key: str, values: dict):
    """Generator: (status, loss df, surgery df, monitor gallery, result, session, *fix widgets)."""
    from core.unlearn.trainer import CancelledError, CancelToken, DivergedError

    from .fixes_section import fix_widgets

    flag = session.require_flag()
    sur = session.require_surrogate()
    with user_errors("Unlearn"):
        config = config_from_values(studio, values)
        # Remember set and monitor are drawn the way the flagged output was, unless set otherwise.
        config = config.with_overrides(sampling_steps=config.sampling_steps or flag.steps,
                                       guidance=flag.guidance if config.guidance is None else config.guidance)
    events: queue.Queue = queue.Queue()
    token = CancelToken()

    def work():
        try:
            result = studio.unlearn(
                flag.prompt, flag.image, sur["image"], flag.seed, config, sur["info"],
                on_step=lambda r: events.put(("step", r)), cancel=token,
                on_monitor=lambda step, img: events.put(("monitor", (step, img.copy()))),
                progress=lambda frac, msg: events.put(("progress", (frac, msg))))
            events.put(("done", result))
        except BaseException as err:  # noqa: BLE001 - reported to the page below
            events.put(("error", err))

    reports, shots, outcome = [], [], None
    head = f"Fixing **{flag.id}** (seed {flag.seed}, *{flag.prompt}*) with the **{sur['info'].get('kind')}** surrogate"
    status = f"{head}: preparing"
    thread = threading.Thread(target=work, name="unlearn", daemon=True)
    jobs.start(key, token)
    thread.start()
    try:
        yield _out(status, [], [], result="")
        last = 0.0
        while outcome is None:
            try:
                kind, payload = events.get(timeout=0.25)
            except queue.Empty:
                kind, payload = None, None
            if kind == "step":
                reports.append(payload)
                r = payload
                status = (f"{head}: step **{r.step}/{r.total}** · L_f {fmt(r.L_f)} · L_r {fmt(r.L_r)}"
                          f" · grad norm {fmt(r.grad_norm)} · {r.seconds:.2f} s/step")
            elif kind == "progress":
                status = f"{head}: {payload[1]} ({payload[0]:.0%})"
            elif kind == "monitor":
                shots.append((payload[1], f"step {payload[0]}"))
            elif kind in ("done", "error"):
                outcome = (kind, payload)
                break
            if kind == "monitor" or (kind and time.monotonic() - last > UI_REFRESH_S):
                last = time.monotonic()
                yield _out(status, reports, shots)
    finally:
        if thread.is_alive():  # the page went away: stop the run so the device is free again
            token.cancel()
            thread.join()
        jobs.finish(key, token)
    kind, payload = outcome
    if kind == "error":
        if isinstance(payload, CancelledError):
            gr.Warning(f"Stopped: {payload}. Nothing was saved.")
            yield _out(f"{head}: **stopped** ({payload}); nothing was saved, earlier fixes are untouched.",
                       reports, shots, result="")
            return
        if isinstance(payload, DivergedError):
            raise gr.Error(f"{payload}. Nothing was saved.", title="Training diverged")
        with user_errors("Unlearn"):
            raise payload
    result = payload
    yield _out(f"{head}: **done**", reports, shots, result_text(studio, result, flag), session, fix_widgets(studio))


def result_text(studio, result, flag) -> str:
    m = result.run.metrics()
    state = ("saved and switched on." if m.get("flagged_seed_fixed") is not False else
             "saved but **switched off**: the forgetting judge still sees the flagged content on the flagged seed, and such a "
             "fix tends to damage the prompt's other seeds. Switch it on in Fixes to use it anyway, or "
             "try more steps, a higher learning rate or another surrogate.")
    lines = [f"**Fix {result.run.run_id}** {state}",
             f"steps {m.get('steps_done')}{' (stopped early: fixed)' if m.get('stopped_early') else ''}"
             f" · {fmt(m.get('seconds_total'))} s · final L_f {fmt(m.get('final_L_f'))}"
             f" · L_r {fmt(m.get('final_L_r'))}"
             f" · remember set {m.get('remember_set_size')} (excluded {m.get('remember_excluded')})"]
    if m.get("flagged_seed_mean_abs_change") is not None:
        lines.append(f"flagged seed {flag.seed} changed by mean |diff| {fmt(m['flagged_seed_mean_abs_change'])}")
    f = m.get("forgetting")
    if f:
        lines.append(f"judge: {'forgotten' if f['forgotten'] else 'not forgotten'} (moved {fmt(f['score'])} of the way "
                     f"from your flagged image to the surrogate where you edited; needs {fmt(f['threshold'])}) · "
                     f"copy similarity {fmt(f['copy_similarity'])} ({f['descriptor']})")
    if m.get("kept_step") is not None:
        lines.append(f"kept the state of step {m['kept_step']} (other outputs moved by {fmt(m.get('remember_drift'))} "
                     "mean |diff| on the guard seeds)")
    after = result.run.path / "after.png"
    if studio.has_checker and after.exists():
        from core.images import load_image

        v = studio.check(flag.prompt, load_image(after))
        lines.append(f"flags-world checker (evaluation only) on the flagged seed now: **{v['verdict']}**")
    return "  \n".join(lines)


def wire(ui, studio, jobs) -> None:
    outputs = [ui.ul_status, ui.loss_plot, ui.surgery_plot, ui.monitor, ui.ul_result, ui.session,
               ui.fix_table, ui.fix_pick, ui.cmp_fixes, ui.fix_config, ui.fix_on]

    def on_run(session, request: gr.Request, **values):
        yield from run(studio, jobs, session, session_key(request), values)

    # Every setting is optional for API clients: a missing one keeps the studio's default.
    P = inspect.Parameter
    on_run.__signature__ = inspect.Signature(
        [P("session", P.POSITIONAL_OR_KEYWORD), P("request", P.POSITIONAL_OR_KEYWORD, annotation=gr.Request)]
        + [P(name, P.KEYWORD_ONLY, default=None) for name in ui.cfg])

    ui.run_btn.click(on_run, [ui.session], outputs, inputs_kwargs=dict(ui.cfg), api_name="unlearn", **GPU)

    def on_stop(request: gr.Request):
        if jobs.cancel(session_key(request)):
            gr.Info("Stopping after the current step.")
            return "Stopping after the current step..."
        return gr.skip()

    ui.stop_btn.click(on_stop, None, [ui.ul_status], api_name="stop", concurrency_id="stop")
