"""Sections 1 and 2: generate seeded outputs, then flag the bad one(s).

Flags live in the session (gr.State): several can be flagged over a session and one is active; the
active flag feeds the surrogate, unlearn and compare sections.
"""

import gradio as gr

from .common import GPU, MAX_SEEDS, Flag, Session, titled, user_errors


def parse_seed_input(start, count, seed_list: str) -> list[int]:
    """A seed list like '0-7,12' wins; otherwise `count` seeds from `start`. Core checks the size
    before any list is built (a client may send '0-100000000' or count=1e9)."""
    from core.limits import parse_seeds, seeds_from_start

    if seed_list and seed_list.strip():
        return parse_seeds(seed_list, MAX_SEEDS, field="Seed list")
    if start is None or count is None:
        raise ValueError("give a start seed and a count, or a seed list like 0-7,12")
    return seeds_from_start(start, count, MAX_SEEDS)


def seeds_field(text: str, field: str) -> list[int]:
    """Seeds typed in a page field; a bad entry gets a sentence naming the field."""
    from core.generate import parse_seeds

    try:
        return parse_seeds(text or "")
    except ValueError as err:
        raise ValueError(f"{field}: {err}") from None


def build(ui, studio) -> None:
    """Sections 1 and 2, stacked in the workspace's first column."""
    info = studio.model.info
    gr.Markdown("### 1 · Generate", elem_classes=["section-title"])
    with gr.Row():
        # Hidden for an unconditional model (a DDPM): its outputs are named by seed alone.
        ui.prompt = gr.Textbox(label="Prompt", elem_id="prompt", placeholder="e.g. ireland flag", lines=1, scale=3,
                               min_width=150, visible=not studio.unconditional)
        ui.seed_count = gr.Number(label="Count", value=8, precision=0, minimum=1, maximum=MAX_SEEDS, min_width=70,
                                  scale=1, elem_id="seed-count")
    with gr.Accordion("Seeds and sampling", open=False):
        with gr.Row():
            ui.seed_start = gr.Number(label="Start seed", value=0, precision=0, minimum=0, min_width=80)
            ui.seed_list = gr.Textbox(label="or seed list", placeholder="0-7,12", elem_id="seed-list",
                                      min_width=100, info="overrides start and count")
        with gr.Row():
            ui.gen_steps = gr.Number(label="Steps", value=info.default_steps, precision=0, minimum=1, maximum=1000)
            ui.gen_guidance = gr.Number(label="Guidance", value=info.default_guidance, minimum=0, maximum=30)
    ui.gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
    ui.gen_status = gr.Markdown("", elem_id="generate-status")
    ui.gallery = gr.Gallery(label="Outputs (click the bad one to flag it)", elem_id="gallery", columns=4,
                            height=210, format="png", object_fit="contain", allow_preview=False,
                            elem_classes=["pixelated"])
    gr.Markdown("### 2 · Flag", elem_classes=["section-title"])
    with gr.Row():
        with gr.Column(scale=3, min_width=160):
            with gr.Row():
                ui.flag_seed = gr.Number(label="Seed to flag", value=None, precision=0, minimum=0, min_width=90)
                ui.flag_btn = gr.Button("Flag", variant="secondary", min_width=60)
            ui.flag_dd = gr.Dropdown(label="Active flag", choices=[], value=None, interactive=True,
                                     info="every output flagged this session", elem_id="flag-dd")
            ui.flag_info = gr.Markdown("Nothing flagged yet: click a bad output in the gallery.",
                                       elem_id="flag-info")
        with gr.Column(scale=2, min_width=110):
            ui.flag_image = gr.Image(label="Flagged output", elem_id="flag-image", type="pil", format="png",
                                     interactive=False, height=150, elem_classes=["pixelated", "fill-img"])


def generate(studio, session: Session, prompt, start, count, seed_list, steps, guidance, progress=gr.Progress()):
    from core.limits import check_guidance, check_steps

    with user_errors("Generate"):
        seeds = parse_seed_input(start, count, seed_list)
        if studio.unconditional:
            prompt = ""  # seed-only flow; a hidden box may still hold a prompt typed for another model
        elif not prompt or not prompt.strip():
            raise ValueError("the prompt is empty: type what to draw")
        steps = check_steps(steps) if steps else None
        guidance = check_guidance(guidance) if guidance is not None else None
        progress(0, desc="generating")
        gens = studio.generate(prompt, seeds, steps, guidance,
                               progress=lambda done, total, msg: progress(done / total, desc=msg))
    session.generation = {"prompt": prompt, "seeds": seeds, "images": [g.image for g in gens],
                          "steps": steps, "guidance": guidance}
    # While the user looks, flags and paints, the fix's remember set is drawn in the background;
    # any job they start waits for at most one small batch of it.
    prep = studio.prepare_fix(prompt, steps, guidance)
    items = [(g.image, f"seed {g.seed}") for g in gens]
    what = f"{len(gens)} outputs of *{prompt}*" if prompt else f"{len(gens)} outputs"
    status = f"{what}, seeds {seed_summary(seeds)}. Click the bad one to flag it."
    if prep.thread is not None:  # none when the remember store is off: nothing is prepared then
        status += f" (A fix {'of this prompt' if prompt else 'on this model'} is being prepared in the background meanwhile.)"
    return items, session, status, seed_text(seeds)


def seed_text(seeds: list[int]) -> str:
    """'0-7,12' for [0..7, 12]: the generated seeds as Compare's default."""
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)


def seed_summary(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds)) if len(seeds) <= 10 else f"{seeds[0]}..{seeds[-1]} ({len(seeds)})"


def flag_seed(studio, session: Session, seed):
    """Flag one output of the last generation by its seed (the gallery click calls this too)."""
    gen = session.generation
    if gen is None:
        raise titled("Generate first, then flag one of the outputs.", title="Nothing to flag")
    if seed is None:
        raise titled("Type the seed of the output to flag, or click it in the gallery.", title="No seed")
    from core.limits import InputLimitError, check_seed

    try:
        seed = check_seed(seed, "seed to flag")
    except InputLimitError as err:
        raise titled(str(err), title="Unknown seed") from err
    if seed not in gen["seeds"]:
        raise titled(f"seed {seed} is not among the last outputs ({seed_summary(gen['seeds'])})",
                       title="Unknown seed")
    image = gen["images"][gen["seeds"].index(seed)]
    existing = next((f for f in session.flags if f.prompt == gen["prompt"] and f.seed == seed
                     and f.steps == gen["steps"] and f.guidance == gen["guidance"]), None)
    if existing is None:
        existing = Flag(f"flag{len(session.flags) + 1}", gen["prompt"], seed, image, gen["steps"], gen["guidance"])
        session.flags.append(existing)
    return activate(studio, session, existing.id)


def preparing_note(studio, prompt: str) -> str:
    """How far the background preparation of this prompt's fix has got ("" when none is under way)."""
    prep = studio.preparation
    if prep is None or prep.prompt != prompt or prep.error or not (prep.running or prep.done):
        return ""
    return f" Remember set drawn meanwhile: {prep.done}/{prep.total}" + ("." if prep.done == prep.total else " so far.")


def ready_text(studio, session: Session, flag) -> str:
    """The fix status line for a newly active flag: it stays true once a surrogate is made (that event
    does not rewrite it), and names the surrogate the flag already has."""
    sur = session.surrogates.get(flag.id)
    step = (f"with its **{sur['info'].get('kind')}** surrogate: press Unlearn" if sur is not None
            else "make its surrogate (3), then press Unlearn")
    return f"Ready to fix **{flag.id}**: {step}.{preparing_note(studio, flag.prompt)}"


def activate(studio, session: Session, flag_id):
    """Make a flag active; returns every widget that shows the active flag."""
    from .surrogate_section import shown_surrogate

    flag = session.flag(flag_id)
    if flag is None:
        raise titled(f"no flag {flag_id!r} in this session", title="Unknown flag")
    session.active = flag.id
    # Now the flagged image is known, the preparation also draws ahead for the look-alike prompts it suggests.
    studio.prepare_fix(flag.prompt, flag.steps, flag.guidance, flagged=flag.image)
    choices = [(f.label, f.id) for f in session.flags]
    guidance = studio.model.info.default_guidance if flag.guidance is None else flag.guidance
    text = (f"**{flag.id}** · seed **{flag.seed}**"  # an unconditional model has no prompt and no guidance
            + ("" if studio.unconditional else f" · prompt *{flag.prompt}*")
            + f" · steps {flag.steps or studio.model.info.default_steps}"
            + ("" if studio.unconditional else f" · guidance {guidance}"))
    info = studio.model.info
    # The canvas is not among these outputs: it gets the flagged image in a second event
    # (load_canvas) whose progress shows elsewhere; see canvas_output in surrogate_section.
    return (session, gr.update(choices=choices, value=flag.id), text, flag.image,
            flag.image, flag.prompt, flag.seed,
            flag.steps or info.default_steps, info.default_guidance if flag.guidance is None else flag.guidance,
            *shown_surrogate(session, flag),
            ready_text(studio, session, flag), "", [],
            gr.update(value=None), gr.update(value=None),
            [])


def load_canvas(studio, session: Session):
    """(canvas, note): the active flag's image on the paint canvas, and the line saying whose it
    is (also what the canvas's Reset button and its clear button do)."""
    from .surrogate_section import canvas_note, editor_value

    flag = session.flag()
    return (editor_value(flag.image, studio.model.info.resolution) if flag else None), canvas_note(flag)


def wire(ui, studio) -> None:
    from .surrogate_section import canvas_output

    flag_outputs = [ui.session, ui.flag_dd, ui.flag_info, ui.flag_image, ui.sur_flagged,
                    ui.cmp_prompt, ui.flag_seed, ui.cmp_steps, ui.cmp_guidance, ui.sur_image, ui.sur_diff,
                    ui.sur_info, ui.ul_status, ui.ul_result, ui.monitor, ui.loss_plot, ui.surgery_plot, ui.moved]

    def on_canvas(session):
        return load_canvas(studio, session)

    def then_canvas(event):
        event.then(on_canvas, [ui.session], [ui.editor, ui.canvas_note], api_name=False, **canvas_output(ui))

    def on_generate(session, prompt, start, count, seed_list, steps, guidance, progress=gr.Progress()):
        return generate(studio, session, prompt, start, count, seed_list, steps, guidance, progress)

    inputs = [ui.session, ui.prompt, ui.seed_start, ui.seed_count, ui.seed_list, ui.gen_steps, ui.gen_guidance]
    outputs = [ui.gallery, ui.session, ui.gen_status, ui.cmp_seeds]
    ui.gen_btn.click(on_generate, inputs, outputs, api_name="generate", **GPU)
    ui.prompt.submit(on_generate, inputs, outputs, api_name=False, **GPU)

    def on_flag(session, seed):
        return flag_seed(studio, session, seed)

    then_canvas(ui.flag_btn.click(on_flag, [ui.session, ui.flag_seed], flag_outputs, api_name="flag"))

    def on_select(session, evt: gr.SelectData):
        gen = session.generation
        if gen is None or evt.index is None:
            raise titled("Generate first, then click an output.", title="Nothing to flag")
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        return flag_seed(studio, session, gen["seeds"][index])

    then_canvas(ui.gallery.select(on_select, [ui.session], flag_outputs, api_name=False))

    def on_pick(session, flag_id):
        return activate(studio, session, flag_id)

    then_canvas(ui.flag_dd.input(on_pick, [ui.session, ui.flag_dd], flag_outputs, api_name="pick_flag"))
    ui.canvas_reset.click(on_canvas, [ui.session], [ui.editor, ui.canvas_note], api_name="load_canvas",
                          **canvas_output(ui))
