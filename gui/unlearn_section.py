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

from .common import GPU, Session, checked, fmt, log, session_key, titled, upscale, user_errors

MAIN_FIELDS = ["method", "steps", "learning_rate", "lambda_scheme", "surgery", "remember_set_size", "stop_when_fixed"]
HIDDEN_FIELDS = {"remember_seed_start"}  # kept at the engine default, far from browsed seeds
UI_REFRESH_S = 0.5  # the status line of a running fix
PLOT_REFRESH_S = 2.0  # its loss and surgery plots (a browser redraws a whole chart per update)


def _choices(name: str):
    from core.unlearn import config as c

    return c.CHOICES.get(name)  # the config's one table of choice lists


def _component(f, value, help_text: str, label: str | None = None):
    """One config widget from a dataclass field: its type, the studio's default and its help text."""
    label, elem_id = label or f.name.replace("_", " "), f"cfg-{f.name}"
    choices = _choices(f.name)
    if choices:
        return gr.Dropdown(list(choices), value=value, label=label, info=help_text, elem_id=elem_id)
    if isinstance(value, bool):
        return gr.Checkbox(value=value, label=label, info=help_text, elem_id=elem_id)
    if isinstance(value, list):
        return gr.Textbox(value="\n".join(value), label=label, info=help_text + " (one per line)", lines=2,
                          elem_id=elem_id)
    if value is None:
        # The page's Number cannot hold "empty": it turns None into 0 as soon as it is drawn, and 0
        # is out of range (lora_alpha) or silently wrong (guidance 0) here. Empty text = the default.
        return gr.Textbox(value="", label=label, placeholder="empty = default", info=help_text, elem_id=elem_id,
                          max_lines=1)
    is_int = f.type in ("int", "int | None", int) or isinstance(value, int)
    return gr.Number(value=value, label=label, info=help_text, precision=0 if is_int else None, elem_id=elem_id)


PLAIN = {  # plain labels first; the help text keeps the paper's words
    "method": "method", "steps": "steps", "learning_rate": "learning rate",
    "lambda_scheme": "forget / remember balance", "surgery": "when the two pulls conflict",
    "remember_set_size": "outputs to keep (remember set)", "stop_when_fixed": "stop when fixed",
}
PAPER = {
    "lambda_scheme": "paper: lambda scheme weighting L_f against L_r",
    "surgery": "paper: gradient surgery, project g_f off g_r when they conflict",
    "remember_set_size": "paper: the remember set D_r",
}


def fix_name_example(unconditional: bool) -> str:
    """The fix-name box's example, in the loaded world's terms (a DDPM's outputs have no prompt)."""
    return "e.g. seed 21: the copied face" if unconditional else "e.g. ireland: no orange"


def build(ui, studio) -> None:
    """Section 4: the fix controls, Unlearn/Stop, status, live plots, monitor and what else moved."""
    from core.unlearn.config import UnlearnConfig

    defaults = studio.default_config()
    helps = UnlearnConfig.help()
    for name, words in PAPER.items():
        helps[name] = f"{helps.get(name, '')} ({words})".strip()
    by_name = {f.name: f for f in fields(UnlearnConfig)}
    gr.Markdown("### 4 · Fix", elem_classes=["section-title"])
    ui.cfg = {}
    with gr.Row():
        for name in MAIN_FIELDS[:3]:
            ui.cfg[name] = _component(by_name[name], getattr(defaults, name), helps[name], PLAIN[name])
    with gr.Row():
        ui.fix_name = gr.Textbox(label="fix name", placeholder=fix_name_example(studio.unconditional), elem_id="fix-name",
                                 max_length=80, scale=1)
        ui.fix_note = gr.Textbox(label="note", placeholder="why this fix (optional)", elem_id="fix-note", scale=2)
    with gr.Row():
        ui.run_btn = gr.Button("Unlearn", variant="primary", elem_id="unlearn-btn")
        ui.stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
    ui.ul_status = gr.Markdown("Flag an output and make a surrogate, then press Unlearn.", elem_id="unlearn-status")
    with gr.Row():
        ui.loss_plot = gr.LinePlot(x="step", y="value", color="series", title="losses", height=170,
                                   x_title="step", y_title="loss", elem_id="loss-plot",
                                   label="forget: flagged → surrogate (paper: L_f); remember: other outputs (L_r)")
        ui.surgery_plot = gr.LinePlot(x="step", y="value", color="series", height=170, x_title="step",
                                      title="gradient surgery", y_title="share / cosine", elem_id="surgery-plot")
    ui.monitor = gr.Gallery(label="Flagged seed re-drawn during the fix", columns=8, height=110, format="png",
                            object_fit="contain", allow_preview=False, fit_columns=False, elem_id="monitor",
                            elem_classes=["pixelated"])
    ui.ul_result = gr.Markdown("", elem_id="unlearn-result")
    ui.moved = gr.Gallery(label="What else moved: other outputs before | after, largest change first", columns=3,
                          height=150, format="png", object_fit="contain", allow_preview=True, elem_id="moved",
                          elem_classes=["pixelated"], visible=True)
    # The less-used settings last, so that opening them never pushes the plots off the screen.
    with gr.Accordion("More settings", open=False):
        with gr.Row():
            for name in MAIN_FIELDS[3:6]:
                ui.cfg[name] = _component(by_name[name], getattr(defaults, name), helps[name], PLAIN[name])
        ui.cfg["stop_when_fixed"] = gr.Checkbox(
            value=defaults.stop_when_fixed, label="stop when fixed",
            info="the forgetting judge compares each re-drawn flagged seed with your flagged image and surrogate",
            elem_id="cfg-stop_when_fixed")
        rest = [f for f in fields(UnlearnConfig) if f.name not in MAIN_FIELDS and f.name not in HIDDEN_FIELDS]
        for i in range(0, len(rest), 3):
            with gr.Row():
                for f in rest[i:i + 3]:
                    ui.cfg[f.name] = _component(f, getattr(defaults, f.name), helps[f.name])


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
        elif v is None or (isinstance(v, str) and not v.strip()):
            continue
        elif isinstance(default, bool):
            v = bool(v)
        elif isinstance(default, int) or types[name] in ("int", "int | None"):
            v = check_number(v, name, -SEED_MAX, SEED_MAX, integer=True)  # UnlearnConfig checks its range
        elif isinstance(default, float) or "float" in str(types[name]):
            v = check_number(v, name, -1e9, 1e9)
        out[name] = v
    return defaults.with_overrides(**out)


LOSS_SERIES = ("forget: flagged → surrogate", "remember: other outputs")
SURGERY_SERIES = ("share of steps with the conflict removed", "agreement of the two pulls (cosine)")
PLOT_COLS = ["step", "value", "series"]
MOVED_SEEDS = range(4)  # per other prompt, for "what else moved"


def _frame(rows: list) -> pd.DataFrame:
    """Typed columns even when empty: an empty object column reads as categorical in the browser."""
    return pd.DataFrame(rows, columns=PLOT_COLS).astype({"step": "int64", "value": "float64", "series": "string"})


def _frames(reports: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    loss, surgery, proj = [], [], []
    for r in reports:
        loss += [(r.step, r.L_f, LOSS_SERIES[0]), (r.step, r.L_r, LOSS_SERIES[1])]
        if r.projected is not None:
            proj.append(bool(r.projected))
            surgery.append((r.step, sum(proj) / len(proj), SURGERY_SERIES[0]))
        if r.cos is not None:
            surgery.append((r.step, r.cos, SURGERY_SERIES[1]))
    return _frame(loss), _frame(surgery)


def _plots(reports: list, live: bool) -> tuple:
    """Plot updates. The page's LinePlot builds its chart (axis types, series colours) from the
    first value it gets and afterwards only swaps the data in, unless a setting like the title
    changes. A run used to start with empty frames (object columns, sent as 'nominal'), so every
    later step was drawn on categorical axes without a line. So: never send empty frames (None
    instead), and switch the title to '· live' with a run's first rows and back at its end, so
    each run's chart is built from typed, non-empty data."""
    loss, surgery = _frames(reports)
    tag = " · live" if live and reports else ""
    return (gr.update(value=loss if len(loss) else None, title=f"losses{tag}"),
            gr.update(value=surgery if len(surgery) else None, title=f"gradient surgery{tag}"))


def _out(status, reports, shots, result=None, session=None, fixes=None, live=True, moved=None, header=None):
    """One update of the section's outputs; None = leave that widget as it is (reports and shots too:
    a refresh of the status line alone sends the browser no plot or image)."""
    skip = gr.skip()
    keep = lambda v: skip if v is None else v  # noqa: E731
    plots = (skip, skip) if reports is None else _plots(reports, live)
    return (status, *plots, skip if shots is None else list(shots), keep(result), keep(moved), keep(session),
            keep(header), *(fixes or (skip,) * 5))


def _eta(seconds: float) -> str:
    return f"about {seconds:.0f} s left" if seconds < 90 else f"about {seconds / 60:.0f} min left"


class _Progress:
    """The status line of a running fix: stage, counts and an estimate, in plain words."""

    def __init__(self, head: str):
        self.head, self.stage_start, self.stage = head, time.monotonic(), None
        self.text = f"{head}: preparing"
        self.try_note = ""  # retry_seeds: "try 2 of 2 (training seed 1) · " once a try is trained again
        self.planned = None  # the try's steps as it started; near_miss_steps may train on past them

    def progress(self, frac: float, msg: str) -> None:
        from core.unlearn.run import new_try

        stage, label = msg.split(":")[0], new_try(msg)
        if label:
            self.try_note, self.planned = f"{label} · ", None
        if stage != self.stage:
            self.stage, self.stage_start = stage, time.monotonic()
        spent = time.monotonic() - self.stage_start
        est = f", {_eta(spent / frac * (1 - frac))}" if 0.05 < frac < 1 and spent > 2 else ""
        self.text = f"{self.head}: {msg} ({frac:.0%}{est})"

    def step(self, r) -> None:
        self.planned = self.planned or r.total
        near = (f"the flagged seed scored just under the bar at step {self.planned}: training on · "
                if r.total > self.planned else "")
        self.text = (f"{self.head}: {self.try_note}{near}step **{r.step}/{r.total}** "
                     f"({_eta(r.seconds * (r.total - r.step))}) · forget loss {fmt(r.L_f)} · "
                     f"remember loss {fmt(r.L_r)} · {r.seconds:.2f} s/step")


def run(studio, jobs, session: Session, key: str, values: dict):
    """Generator: (status, loss plot, surgery plot, monitor, result, moved, session, header, *fix widgets).

    The status line belongs to this generator alone (Stop only sets the token), so the last thing
    it shows is always how the run ended."""
    from core.unlearn.run import new_try
    from core.unlearn.trainer import CancelledError, CancelToken

    from .app import header_text
    from .fixes_section import fix_widgets

    flag = session.require_flag()
    sur = session.require_surrogate()
    name, note = values.pop("fix_name", None), values.pop("fix_note", None)
    with user_errors("Unlearn"):
        config = config_from_values(studio, values)
        # Remember set and monitor are drawn the way the flagged output was, unless set otherwise.
        config = config.with_overrides(sampling_steps=config.sampling_steps or flag.steps,
                                       guidance=flag.guidance if config.guidance is None else config.guidance)
    events: queue.Queue = queue.Queue()
    token = CancelToken()
    thread = threading.Thread(target=_work, args=(studio, flag, sur, config, token, events), name="unlearn",
                              daemon=True)
    reports, shots, outcome = [], [], None
    named = f"seed {flag.seed}, *{flag.prompt}*" if flag.prompt else f"seed {flag.seed}"  # a DDPM's: no prompt
    head = f"Fixing **{flag.id}** ({named}) with the **{sur['info'].get('kind')}** surrogate"
    line = _Progress(head)
    jobs.start(key, token)
    thread.start()
    try:
        yield _out(line.text, [], [], result="", moved=[])
        last, last_plot, stopping = 0.0, 0.0, False
        while outcome is None:
            # Every event waiting now, not one per pass: a burst of steps costs one refresh, and
            # each refresh shows the latest state.
            batch = _drain(events, timeout=0.25)
            kinds = set()
            for kind, payload in batch:
                kinds.add(kind)
                if kind == "step":
                    reports.append(payload)
                    line.step(payload)
                elif kind == "progress":
                    if new_try(payload[1]):  # retry_seeds: the plots and shots show the try that runs
                        reports.clear()
                        shots.clear()
                    line.progress(*payload)
                elif kind == "monitor":
                    shots.append((payload[1], f"step {payload[0]}"))
                elif kind == "saved":
                    line.text = f"{head}: fix saved; now drawing other outputs to see what else moved"
                elif kind in ("done", "error"):
                    outcome = (kind, payload)
                    break
            if outcome is not None:
                break
            if token.cancelled and not stopping:
                stopping = True
                kinds.add("stop")
                line.text = f"{head}: **stopping** after the current step..."
            now = time.monotonic()
            if kinds & {"monitor", "stop", "saved"} or (kinds and now - last > UI_REFRESH_S):
                # Plots are redrawn in the browser at each update: at most every PLOT_REFRESH_S,
                # and the monitor gallery only when it has a new image.
                plots = bool(kinds & {"stop", "saved"}) or "step" in kinds and now - last_plot > PLOT_REFRESH_S
                last, last_plot = now, (now if plots else last_plot)
                yield _out(line.text, reports if plots else None, shots if "monitor" in kinds else None)
    finally:
        if thread.is_alive():  # the page went away: stop the run so the device is free again
            token.cancel()
            thread.join()
        jobs.finish(key, token)
    kind, payload = outcome
    if kind == "error":
        yield from _failed(studio, head, payload, reports, shots)
        return
    result, moved = payload
    _label(studio, result.run.run_id, name, note)
    stopped_note = ""
    if isinstance(moved, CancelledError):
        moved, stopped_note = [], " (Stop pressed after saving: the look at other outputs was skipped)"
    elif isinstance(moved, BaseException):
        log.warning("what else moved failed: %s", moved)
        moved, stopped_note = [], f" (could not show what else moved: {moved})"
    yield _out(f"{head}: **done**{stopped_note}", reports, shots, result_text(studio, result, flag), session,
               fix_widgets(studio, result.run.run_id, compare=True), live=False, moved=moved_items(moved),
               header=header_text(studio))


def _drain(events: queue.Queue, timeout: float) -> list:
    """The events waiting in `events`, in order: waits up to `timeout` for the first."""
    try:
        batch = [events.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            batch.append(events.get_nowait())
        except queue.Empty:
            return batch


def _work(studio, flag, sur: dict, config, token, events: queue.Queue) -> None:
    """The worker thread of a run: the fix, then what else moved; everything goes to `events`."""
    put_progress = lambda frac, msg: events.put(("progress", (frac, msg)))  # noqa: E731
    try:
        result = studio.unlearn(
            flag.prompt, flag.image, sur["image"], flag.seed, config, sur["info"],
            on_step=lambda r: events.put(("step", r)), cancel=token,
            on_monitor=lambda step, img: events.put(("monitor", (step, img.copy()))), progress=put_progress)
    except BaseException as err:  # noqa: BLE001 - reported to the page
        events.put(("error", err))
        return
    events.put(("saved", result))
    try:  # the fix is saved: a Stop from here on only skips this look around
        moved = studio.what_else_moved(flag.prompt, flag.seed, [result.run.run_id], MOVED_SEEDS,
                                       progress=put_progress, cancel=token)
        events.put(("done", (result, moved)))
    except BaseException as err:  # noqa: BLE001
        events.put(("done", (result, err)))


def _failed(studio, head: str, err: BaseException, reports, shots):
    """The last status of a run that ended without a fix, then the error toast."""
    from core.unlearn.run import AlreadyFixedError
    from core.unlearn.trainer import CancelledError, DivergedError

    if isinstance(err, CancelledError):
        gr.Warning(f"Stopped: {err}. Nothing was saved.", title="Fix stopped")
        yield _out(f"{head}: **stopped** ({err}); nothing was saved, earlier fixes are untouched.",
                   reports, shots, result="", live=False)
        return
    if isinstance(err, AlreadyFixedError):
        yield _out(f"{head}: **not needed**: {err}", reports, shots, result="", live=False)
        raise titled(str(err), title="Already fixed")
    yield _out(f"{head}: **failed**; nothing was saved.", reports, shots, result="", live=False)
    if isinstance(err, DivergedError):
        raise titled(f"{err}. Nothing was saved.", title="Training diverged")
    with user_errors("Unlearn"):
        raise err


def _label(studio, run_id: str, name, note) -> None:
    if (name and name.strip()) or (note and note.strip()):
        try:
            studio.store.set_label(run_id, name or "", note or "")
        except ValueError as err:
            gr.Warning(f"The fix is saved as {run_id}; its name was not: {err}", title="Fix name")


def moved_items(moved) -> list:
    """Gallery items of core's "what else moved": before | after side by side, with the change."""
    from PIL import Image

    items = []
    for m in moved:
        w, h = m.before.size
        pair = Image.new("RGB", (2 * w + max(1, w // 16), h), (255, 255, 255))
        pair.paste(m.before.convert("RGB"), (0, 0))
        pair.paste(m.after.convert("RGB"), (w + max(1, w // 16), 0))
        pair = upscale(pair, max(1, 96 // h))
        verdicts = f" · {m.verdict_before} → {m.verdict_after}" if m.verdict_before else ""
        named = f"{m.prompt} · seed {m.seed}" if m.prompt else f"seed {m.seed}"  # a DDPM's outputs: seeds alone
        items.append((pair, f"{named} · changed {m.change:.3f}{verdicts}"))
    return items


def _swapped(verdict: dict) -> bool:
    """The judge's saved verdict puts the flagged seed on a picture the model repeats (at or above the
    copy threshold, as core/judge.py refuses it)."""
    return verdict.get("mode_similarity") is not None and verdict["mode_similarity"] >= verdict["mode_threshold"]


def _swap_hint(metrics: dict, unconditional: bool) -> str:
    """A switched-off fix whose flagged seed ended on another picture the model repeats: the surrogate
    steered it there, so the surrogate is the thing to change (bench/results/README.md: a face's swap at
    both training seeds with another face, forgotten with Suggest a seed)."""
    if not _swapped(metrics.get("forgetting") or {}):
        return ""
    return (" Here the flagged seed went to another picture the model repeats: "
            + ("a surrogate that is an ordinary output of the model (Surrogate, Other seed, **Suggest a seed**) "
               "can steer it clear of them." if unconditional else "try a surrogate farther from it."))


def result_text(studio, result, flag) -> str:
    m = result.run.metrics()
    state = ("saved and switched on." if m.get("flagged_seed_fixed") is not False else
             "saved but **switched off**: the forgetting judge still sees the flagged content on the flagged seed, and such a "
             "fix tends to damage the prompt's other seeds. Switch it on in Fixes to use it anyway, or "
             "try more steps, a higher learning rate, another surrogate or another *seed* (More settings): "
             f"the same settings and seed ({result.run.config.get('config', {}).get('seed', '?')}) train the same "
             "fix again." + _swap_hint(m, studio.unconditional))
    label = result.run.label()["name"] if hasattr(result.run, "label") else result.run.run_id
    planned = result.run.config.get("config", {}).get("steps")
    past = (f" ({m['steps_done'] - planned} past {planned}: the flagged seed scored just under the bar there, "
            "so the fix trained on)" if planned and (m.get("steps_done") or 0) > planned else "")
    lines = [f"**Fix {label}** {state}",
             f"steps {m.get('steps_done')}{past}{' (stopped early: fixed)' if m.get('stopped_early') else ''}"
             f" · {fmt(m.get('seconds_total'))} s · final forget loss {fmt(m.get('final_L_f'))}"
             f" · remember loss {fmt(m.get('final_L_r'))}"
             f" · outputs kept {m.get('remember_set_size')} (left out {m.get('remember_excluded')})"
             + (f", drawn with the other fixes off ({m.get('remember_as_fixed')} that showed their pictures: as the "
                "fixes draw them)" if m.get("remember_drawn_from") == "base" else "")]
    copy = m.get("surrogate_copy") or {}
    if copy.get("near_copy"):
        lines.append(f"the surrogate itself is a near copy of the flagged image (similarity {fmt(copy['similarity'])}, "
                     f"near copies from {fmt(copy['threshold'])}, {copy['descriptor']}): "
                     + ("the fix was taught the same picture. Change more of it, then fix again."
                        if m.get("flagged_seed_fixed") is False else
                        "'forgotten' says the flagged seed moved to your edit, not that the picture is gone; "
                        "Compare shows whether other seeds still draw it."))
    if m.get("earlier_tries"):  # retry_seeds: the tries that did not forget, discarded
        lines.append("discarded before this one, not forgotten: " + ", ".join(
            f"training seed {t['seed']} (judge's score {fmt(t['score'])}, {t['steps_done']} steps, "
            f"{fmt(t['seconds_total'])} s)" for t in m["earlier_tries"]))
    if m.get("flagged_seed_mean_abs_change") is not None:
        lines.append(f"flagged seed {flag.seed} changed by mean |diff| {fmt(m['flagged_seed_mean_abs_change'])}")
    f = m.get("forgetting")
    if f:
        lines.append(f"judge: {'forgotten' if f['forgotten'] else 'not forgotten'} (moved {fmt(f['score'])} of the way "
                     f"from your flagged image to the surrogate where you edited; needs {fmt(f['threshold'])}"
                     + (f"; along the line between them, blur and brightness aside, {fmt(f['projection'])}, needs "
                        f"{fmt(f['projection_threshold'])}" if f.get("projection_threshold") else "")
                     + f") · copy similarity {fmt(f['copy_similarity'])} ({f['descriptor']})"
                     + (f" · similarity to the pictures the model repeats {fmt(f['mode_similarity'])}"
                        + (" (at or above the copy threshold: the flagged seed now draws another picture the model "
                           "repeats, so this is a swap, not a fix)" if _swapped(f) else "")
                        if f.get("mode_similarity") is not None else ""))
    if m.get("kept_step") is not None:
        lines.append(f"kept the state of step {m['kept_step']} (other outputs moved by {fmt(m.get('remember_drift'))} "
                     "mean |diff| on the guard seeds)")
    if m.get("twin_seeds"):
        left = m.get("twins_left")
        lines.append(f"other seeds that drew the flagged picture ({', '.join(map(str, m['twin_seeds']))}): "
                     + ("not re-drawn (the flagged seed was never forgotten)" if left is None
                        else f"{left} still draw{'s' if left == 1 else ''} it" if left else "none draws it any more"))
    after = result.run.path / "after.png"
    if studio.has_checker and after.exists():
        from core.images import load_image

        v = studio.check(flag.prompt, load_image(after))
        lines.append(f"{studio.model.info.world}-world checker (evaluation only) on the flagged seed now: "
                     f"{checked(v, bold=True)}")
    return "  \n".join(lines)


def wire(ui, studio, jobs) -> None:
    outputs = [ui.ul_status, ui.loss_plot, ui.surgery_plot, ui.monitor, ui.ul_result, ui.moved, ui.session,
               ui.header, ui.fix_table, ui.fix_pick, ui.cmp_fixes, ui.fix_config, ui.fix_on]
    named = {**ui.cfg, "fix_name": ui.fix_name, "fix_note": ui.fix_note}

    def on_run(session, request: gr.Request, **values):
        yield from run(studio, jobs, session, session_key(request), values)

    # Every setting is optional for API clients: a missing one keeps the studio's default.
    P = inspect.Parameter
    on_run.__signature__ = inspect.Signature(
        [P("session", P.POSITIONAL_OR_KEYWORD), P("request", P.POSITIONAL_OR_KEYWORD, annotation=gr.Request)]
        + [P(name, P.KEYWORD_ONLY, default=None) for name in named])

    ui.run_btn.click(on_run, [ui.session], outputs, inputs_kwargs=named, api_name="unlearn", **GPU)

    def on_stop(request: gr.Request):
        # Only the token: the running event owns the status line and says when it has stopped.
        if jobs.cancel(session_key(request)):
            gr.Info("Stopping after the current step; nothing of this run will be saved.", title="Stop")
        else:
            gr.Info("Nothing is running.", title="Stop")

    ui.stop_btn.click(on_stop, None, None, api_name="stop", concurrency_id="stop")
