"""Section 3: the surrogate, the flagged image with the unwanted part gone, made one of five ways.

Paint composites are rebuilt in core from the canvas background and layers (an API client sends
no composite). Small models are painted on a NEAREST-upscaled canvas and box-reduced back, so
every unpainted pixel is returned exactly.
"""

import gradio as gr
import numpy as np
from gradio.components.base import server

from core.surrogates import ClipEditParams, NoiseParams, OtherSeedParams, SDEditParams, SeedSurveyParams, Surrogate, \
    canvas_surrogate, param_spec, require_changed, to_model_size

from .common import CLIP_WEIGHTS, DEFAULT_NAMES, DEFAULT_PALETTE, GPU, Session, difference, fmt, paint_scale, titled, \
    upscale, user_errors


def _slider(params_type, name: str, step: float, label: str, **kw):
    """A slider whose range, default and help come from the parameter's dataclass metadata."""
    spec = param_spec(params_type, name)
    lo = spec["lo"] + step if spec["lo_open"] else spec["lo"]
    return gr.Slider(lo, spec["hi"], value=spec["default"], step=step, label=label, info=spec["help"], **kw)


def _seed_box(params_type, label: str, elem_id: str | None = None):
    spec = param_spec(params_type, "seed")
    return gr.Number(label=label, value=spec["default"], precision=0, minimum=spec["lo"], maximum=spec["hi"],
                     info=spec["help"], elem_id=elem_id)

# What SDEdit starts from. The second is SDEdit's stroke-guided use (Meng et al.): paint the change
# roughly, then let the model redraw the painting into a picture it could have made.
SDEDIT_FROM = ("the flagged image", "the current surrogate")

MAX_PENDING_CANVASES = 64  # canvases uploaded through accept_blobs and not yet submitted


def check_canvas_inputs(editor: gr.ImageEditor) -> gr.ImageEditor:
    """Make the canvas's background, layers and composite pass core's image checks (pixel cap,
    format allow-list, empty or unreadable files) before Gradio decodes them, so a bad canvas gets
    core's one-sentence message instead of a bare "upstream app raised an exception".

    Wraps this one instance's methods: a gr.ImageEditor subclass would make Gradio write a .pyi
    stub next to this module on every import."""
    from core.images import MAX_LAYERS, ImageInputError, check_canvas

    preprocess, accept_blobs = editor.preprocess, editor.accept_blobs

    def checked_preprocess(payload):
        if payload is not None:
            parts = editor.blob_storage.get(payload.id) if payload.id is not None else payload
            path = lambda f: f if f is None or isinstance(f, (bytes, bytearray)) else f.path  # noqa: E731
            try:
                if parts is not None:
                    check_canvas(path(parts.background), [path(f) for f in parts.layers], path(parts.composite))
            except ImageInputError as err:
                editor.blob_storage.pop(payload.id, None)
                raise titled(str(err), title="Paint: not possible") from err
        return preprocess(payload)

    @server
    def checked_accept_blobs(data):
        # The browser canvas uploads each layer here; its index sizes a list, so it is bounded first.
        index = data.data.get("index")
        if index not in (None, "", "null") and not (str(index).isdigit() and int(index) < MAX_LAYERS):
            raise titled(f"paint layer index {str(index)[:20]!r} is out of range: at most {MAX_LAYERS} layers",
                           title="Paint: not possible")
        while len(editor.blob_storage) >= MAX_PENDING_CANVASES:  # canvases sent but never submitted
            editor.blob_storage.pop(next(iter(editor.blob_storage)))
        return accept_blobs(data)

    checked_accept_blobs.__name__ = "accept_blobs"
    editor.preprocess, editor.accept_blobs = checked_preprocess, checked_accept_blobs
    return editor


def canvas_output(ui) -> dict:
    """Listener settings for every event that writes the canvas: its progress shows on the text
    below the canvas, never on the canvas itself.

    Gradio 6's page applies each status change of a component only after reading the component's
    value, and reading a painted canvas exports and uploads all its layers (seconds in a software-
    rendered browser). The "pending" and "complete" of one quick event then land out of order and
    the canvas keeps a "processing" overlay that blocks painting for good (seen every time after
    painting and flagging another output). A status shown elsewhere never touches the canvas."""
    return dict(show_progress="hidden", show_progress_on=[ui.sur_info])


def canvas_note(flag) -> str:
    """The line under the canvas that says whose image it holds (set with the canvas itself)."""
    if flag is None:
        return "The canvas shows the flagged output once you flag one."
    return f"Canvas: **{flag.id}** (seed {flag.seed}). Paint over the part that must go."


def editor_value(image, resolution: int) -> dict:
    big = upscale(image.convert("RGBA"), paint_scale(resolution))
    return {"background": big, "layers": [], "composite": big}


def palette_of(info) -> list[tuple[str, str]]:
    """(name, hex) swatches: the model's palette (named from the flags world where it matches),
    else a default set; near-duplicates (closer than 48 in every channel) are dropped."""
    from core.world.flags import PALETTE as WORLD

    names = {h.upper(): n.replace("_", " ") for table in (DEFAULT_NAMES, WORLD) for n, h in table.items()}
    out: list[tuple[str, str]] = []
    for h in [c.upper() for c in (info.palette or DEFAULT_PALETTE)]:
        rgb = [int(h[i:i + 2], 16) for i in (1, 3, 5)]
        if any(all(abs(a - int(o[i:i + 2], 16)) < 48 for a, i in zip(rgb, (1, 3, 5))) for _, o in out):
            continue
        out.append((names.get(h, h), h))
    return out


def default_colour(palette: list[tuple[str, str]]) -> str:
    """The first swatch that shows on the white toolbar and is not plain black; for a palette of
    greys (the faces world), the grey nearest the middle, the tone of a band painted over a face."""
    rgbs = [(h, [int(h[i:i + 2], 16) for i in (1, 3, 5)]) for _, h in palette]
    for h, c in rgbs:
        if max(c) - min(c) > 60:
            return h
    greys = [(h, c) for h, c in rgbs if max(c) > 0]
    return min(greys, key=lambda hc: abs(sum(hc[1]) / 3 - 128))[0] if greys else palette[0][1]


# Measured on the faces world's fresh seeds 6408-7431 and 5128-6151 (bench/results/heldout_faces_*_seeds6408_*.md,
# heldout_faces_other_face_build_seed1_retry1_seeds5128_*.md): a band over the eyes is still the face and took no
# face away; painted over most of the face, 1 of 4; another face, 4 of 4. The band then SDEdit of the painting: 11 of
# 12 (training seeds 0-2) on seeds 7432-8455 (heldout_faces_paint_sdedit_until_no_copy_build_seed1_seeds7432_*.md).
PAINT_FACE_HINT = ("To forget *who* a memorised face is, a band over the eyes is not enough: it is still the same face "
                   "(the studio warns under the surrogate) and no fix toward one took a face away. Painting over most "
                   "of the face took 1 face of 4 away; a band over the eyes, then **SDEdit** of the painting (start "
                   "from the current surrogate, strength raised until the warning goes) 11 of 12; **Other seed** or "
                   "another face uploaded, 4 of 4.")


# Suggest a seed: fresh seeds 19720-20743, training seeds 0-1, the shipped defaults (learning rate 3e-3)
# (heldout_faces_other_seed_typical_build_seed1_lr3e-3_seeds19720_*.md against
# heldout_faces_other_face_build_seed1_lr3e-3_seeds19720_*.md); at 2e-3 on 17672-18695 it left 1 face of 8 at over
# 0.5%; with the four attention blocks 2 faces of 4 at 0.6-2.3% (..._seeds16648_*.md). Twelve tuning instances
# (faces_tune_lr3e-3_perface3_suggest_seed*.md against faces_tune_lr3e-3_perface3_seed*.md); the swap it forgot:
# faces_tune_lr3e-3_flag128_suggest_seed01.md.
def other_seed_hint(unconditional: bool) -> str:
    return ("The model's own output at another seed, drawn as the flagged one was"
            + (": a face that is no copy, the paper's *another face*. Pick one the grid shows once, "
               "not one it repeats across seeds (that may be memorised too): the studio draws "
               f"{param_spec(OtherSeedParams, 'repeat_probe_seeds')['default']} other seeds and warns when one of "
               "them draws a near copy of your pick. **Suggest a seed** looks through "
               f"{param_spec(SeedSurveyParams, 'count')['default']} seeds for you and takes the most ordinary face "
               "that is neither: on fresh seeds its fixes took 8 of 8 faces to <= 0.1% of seeds, as another real "
               "face uploaded did, and moved the other memorised faces less; over more flagged faces it forgot "
               "a little less often (20 of 24 against 24), but it is the one to try when a fix lands the flagged "
               "seed on another face the model repeats."
               if unconditional else ": a seed drawn the way the flagged one should look."))


def build(ui, studio) -> None:
    """Section 3, the workspace's middle column: the canvas (or another way), then the result."""
    info = studio.model.info
    scale = paint_scale(info.resolution)
    side = info.resolution * scale
    palette = palette_of(info)
    first = default_colour(palette)
    size = max(2, side // 32)
    gr.Markdown("### 3 · Surrogate: the same image without the unwanted part", elem_classes=["section-title"])
    with gr.Tabs():
        with gr.Tab("Paint"):
            swatches = " · ".join(f"<span style='color:{h}'>■</span> {n}" for n, h in palette)
            ui.editor = gr.ImageEditor(
                elem_id="paint-canvas",
                label=f"Paint over the unwanted part · brush {size} px (one model pixel = {scale} px)",
                # No upload on the canvas: the browser fits any file into the fixed canvas before
                # the server sees it (a huge image drew black, a non-image white, a wide one
                # letterboxed). Uploads go through the checked "upload" box below instead.
                type="pil", image_mode="RGBA", format="png", sources=(), height=430,
                canvas_size=(side, side), fixed_canvas=True, transforms=(), layers=True,
                brush=gr.Brush(colors=[h for _, h in palette], default_color=first, color_mode="defaults",
                               default_size=size),
                eraser=gr.Eraser(default_size=max(4, side // 16)), elem_classes=["pixelated"])
            ui.canvas_note = gr.Markdown(canvas_note(None), elem_id="canvas-note")
            ui.paint_hint = gr.Markdown(PAINT_FACE_HINT, visible=studio.unconditional, elem_id="paint-hint")
            gr.Markdown(f"Colours: {swatches}. The brush starts in **{dict((h, n) for n, h in palette)[first]}**.",
                        elem_id="swatch-names")
            check_canvas_inputs(ui.editor)
            with gr.Row():
                ui.paint_btn = gr.Button("Use painting as surrogate", variant="primary", elem_id="paint-btn")
                ui.canvas_reset = gr.Button("Reset canvas to the flagged image", elem_id="canvas-reset")
            ui.sur_upload = gr.File(label="…or upload an edited image as the surrogate (square PNG, JPEG, WebP or BMP)",
                                    type="filepath", file_count="single", height=70, elem_id="surrogate-upload")
        with gr.Tab("SDEdit"):
            with gr.Row():
                ui.sde_strength = _slider(SDEditParams, "strength", 0.05, "Strength")
                ui.sde_prompt = gr.Textbox(label="Prompt (optional)", placeholder="describe the corrected image",
                                           info=param_spec(SDEditParams, "prompt")["help"],
                                           visible=not studio.unconditional)
                ui.sde_seed = _seed_box(SDEditParams, "Seed")
            ui.sde_from = gr.Radio(list(SDEDIT_FROM), value=SDEDIT_FROM[0], label="Start from", elem_id="sde-from",
                                   info="paint the change roughly (Paint tab), then start from it: SDEdit "
                                        "redraws the painting as the model would draw it")
            ui.sde_btn = gr.Button("Make SDEdit surrogate", variant="primary")
        with gr.Tab("CLIP edit"):
            with gr.Row():
                ui.clip_text = gr.Textbox(label="Target text", placeholder="what the image should show",
                                          elem_id="clip-text")
                ui.clip_weight = gr.Radio(CLIP_WEIGHTS, value=param_spec(ClipEditParams, "clip_weight")["default"],
                                          label="CLIP weight", elem_id="clip-weight",
                                          info=param_spec(ClipEditParams, "clip_weight")["help"])
            ui.clip_btn = gr.Button("Make CLIP-guided surrogate", variant="primary", elem_id="clip-btn")
        with gr.Tab("Flip / Noise"):
            with gr.Row():
                ui.flip_btn = gr.Button("Flip horizontally", elem_id="flip-btn")
            with gr.Row():
                ui.noise_sigma = _slider(NoiseParams, "sigma", 0.01, "Noise sigma")
                ui.noise_seed = _seed_box(NoiseParams, "Noise seed")
                ui.noise_btn = gr.Button("Add noise")
        with gr.Tab("Other seed"):
            ui.other_seed_hint = gr.Markdown(other_seed_hint(studio.unconditional), elem_id="other-seed-hint")
            with gr.Row():
                ui.other_seed = _seed_box(OtherSeedParams, "Seed", "other-seed")
                ui.other_seed_btn = gr.Button("Use this seed's output", variant="primary", elem_id="other-seed-btn")
            ui.other_seed_suggest = gr.Button("Suggest a seed", elem_id="other-seed-suggest",
                                              visible=studio.unconditional)
    with gr.Row(equal_height=True):
        shown = dict(type="pil", format="png", interactive=False, height=120, min_width=90,
                     elem_classes=["pixelated", "fill-img"])
        ui.sur_flagged = gr.Image(label="Flagged", **shown)
        ui.sur_image = gr.Image(label="Surrogate", elem_id="surrogate-image", **shown)
        ui.sur_diff = gr.Image(label="changed (bright)", **shown)
    ui.sur_info = gr.Markdown("No surrogate yet.", elem_id="surrogate-info")


def _finish(studio, session: Session, flag, sur: Surrogate, note: str = ""):
    """Store the surrogate for the active flag and show it next to the flagged image, with the
    maker's warnings (and `note`, how it was chosen) under it."""
    info = sur.info
    image = to_model_size(sur.image, studio.model.info.resolution)
    with user_errors("Surrogate"):
        require_changed(flag.image, image)  # core's rule: a surrogate must differ from the flagged image
    # an uploaded image has no maker to advise on ("paint" names its canvas): generic advice
    _, near_copy = studio.check_surrogate(flag.image, image, "file" if info.get("uploaded") else info.get("kind"))
    heat, mad = difference(flag.image, image)
    changed = float((np.asarray(image) != np.asarray(flag.image.convert("RGB"))).any(axis=2).mean())
    params = ", ".join(f"{k}={fmt(v)}" for k, v in info.items() if k != "kind" and v not in ("", None))
    text = (f"**{info.get('kind', '?')}** surrogate for **{flag.id}** (seed {flag.seed})  \n"
            + (f"{note}  \n" if note else "") + f"{params}  \n"
            f"mean |diff| **{mad:.4f}** · pixels changed **{changed:.1%}**"
            + "".join(f"  \n⚠ {w}" for w in [*sur.warnings, *([near_copy] if near_copy else [])]))
    session.surrogates[flag.id] = {"image": image, "info": dict(info), "heat": heat, "text": text}
    return image, heat, text, session


def shown_surrogate(session: Session, flag) -> tuple:
    """(surrogate, heatmap, text) of a flag's surrogate, for when that flag becomes active."""
    sur = session.surrogates.get(flag.id)
    if sur is None:
        return None, None, f"No surrogate for {flag.id} yet."
    return sur["image"], sur["heat"], sur["text"]


def paint(studio, session: Session, value):
    flag = session.require_flag()
    res = studio.model.info.resolution
    value = value or {}
    background = value.get("background") or upscale(flag.image, paint_scale(res))
    with user_errors("Paint"):
        # core decides what a blank canvas is, and accepts an uploaded, already edited background.
        sur = canvas_surrogate(flag.image, background, value.get("layers") or [], res)
    return _finish(studio, session, flag, sur)


def upload(studio, session: Session, path):
    """An uploaded, already edited image as the active flag's surrogate, after the checks every
    image input gets (format, pixel cap, readable, square); a refused file changes nothing."""
    from core.images import ensure_rgb, open_checked

    flag = session.require_flag()
    if not path:
        return gr.skip(), gr.skip(), gr.skip(), session
    with user_errors("Upload"):
        image = ensure_rgb(open_checked(path, "the uploaded image"))
        if image.width != image.height:
            raise ValueError(f"the uploaded image is {image.width}x{image.height}; the model works on square "
                             "images: crop it to a square first")
        image = to_model_size(image, studio.model.info.resolution)
    return _finish(studio, session, flag, Surrogate(image, {"kind": "paint", "uploaded": True}))


def sdedit(studio, session: Session, strength, prompt, seed, start_from=SDEDIT_FROM[0]):
    flag = session.require_flag()
    with user_errors("SDEdit"):
        if start_from not in SDEDIT_FROM:
            raise ValueError(f"start from {start_from!r}: choose {' or '.join(map(repr, SDEDIT_FROM))}")
        source, started = flag.image, {}
        if start_from == SDEDIT_FROM[1]:
            current = session.surrogates.get(flag.id)
            if current is None:
                raise ValueError(f"{flag.id} has no surrogate to start from yet: paint the change roughly (Paint "
                                 "tab) and press 'Use painting as surrogate', or start from the flagged image")
            source, started = current["image"], {"started_from": current["info"].get("kind", "?")}
        sur = studio.surrogate("sdedit", source, SDEditParams(
            strength=float(strength), prompt=prompt or "", seed=int(seed or 0), steps=flag.steps,
            guidance=None if flag.guidance is None else float(flag.guidance)))
    return _finish(studio, session, flag, Surrogate(sur.image, {**sur.info, **started}, sur.warnings))


def clip_edit(studio, session: Session, text, weight):
    flag = session.require_flag()
    with user_errors("CLIP-guided edit"):
        if weight is None:
            raise ValueError("choose a CLIP weight")
        sur = studio.surrogate("clip", flag.image, ClipEditParams(text=text or "", clip_weight=float(weight)))
    return _finish(studio, session, flag, sur)


def flip(studio, session: Session):
    flag = session.require_flag()
    with user_errors("Flip"):
        sur = studio.surrogate("flip", flag.image)
    return _finish(studio, session, flag, sur)


def noise(studio, session: Session, sigma, seed):
    flag = session.require_flag()
    with user_errors("Noise"):
        sur = studio.surrogate("noise", flag.image, NoiseParams(sigma=float(sigma), seed=int(seed or 0)))
    return _finish(studio, session, flag, sur)


def other_seed(studio, session: Session, seed):
    flag = session.require_flag()
    with user_errors("Other seed"):
        if seed is None:
            raise ValueError("type the seed whose output should become the surrogate")
        sur = studio.surrogate("other_seed", flag.image, OtherSeedParams(
            seed=int(seed), prompt="" if studio.unconditional else flag.prompt, steps=flag.steps,
            guidance=None if flag.guidance is None else float(flag.guidance)))
    return _finish(studio, session, flag, sur)


def suggest_other_seed(studio, session: Session):
    """'Suggest a seed' (unconditional models): the most ordinary output of a grid of other seeds that is
    no copy of the flagged one and that no other seed there repeats; its seed goes in the box."""
    flag = session.require_flag()
    with user_errors("Suggest a seed"):
        survey = studio.survey_other_seeds(flag.image, SeedSurveyParams(steps=flag.steps))
        if survey.suggested is None:
            raise ValueError(survey.message())
        sur = studio.surrogate("other_seed", flag.image, OtherSeedParams(seed=survey.suggested, steps=flag.steps))
    sur.info["suggested_from"] = survey.span
    return (survey.suggested, *_finish(studio, session, flag, sur, note=survey.message()))


def wire(ui, studio) -> None:
    out = [ui.sur_image, ui.sur_diff, ui.sur_info, ui.session]
    # Progress and a refusal show on the line under the images (and the toast), not as "Error" over the
    # flagged/surrogate pictures, which keep what they showed.
    status = dict(show_progress_on=[ui.sur_info])

    def on_paint(session, canvas):
        return paint(studio, session, canvas)

    def on_sdedit(session, strength, prompt, seed, start_from):
        return sdedit(studio, session, strength, prompt, seed, start_from)

    def on_clip(session, text, clip_weight):
        return clip_edit(studio, session, text, clip_weight)

    def on_flip(session):
        return flip(studio, session)

    def on_noise(session, sigma, seed):
        return noise(studio, session, sigma, seed)

    ui.paint_btn.click(on_paint, [ui.session, ui.editor], out, api_name="paint", **status)

    def on_upload(session, path):
        return upload(studio, session, path)

    ui.sur_upload.upload(on_upload, [ui.session, ui.sur_upload], out, api_name="upload_surrogate", **status)
    # A second listener empties the box at once, whatever the first decides: a refused file must
    # not look accepted, and the box must take the next file (a failed event runs no .then).
    ui.sur_upload.upload(lambda: None, None, [ui.sur_upload], api_name=False, show_progress="hidden")

    def on_clear(session):
        # The canvas's own clear button removes the background too: put the flagged image back.
        from .generate_section import load_canvas

        return load_canvas(studio, session)

    ui.editor.clear(on_clear, [ui.session], [ui.editor, ui.canvas_note], api_name=False, **canvas_output(ui))
    ui.sde_btn.click(on_sdedit, [ui.session, ui.sde_strength, ui.sde_prompt, ui.sde_seed, ui.sde_from], out,
                     api_name="sdedit", **GPU, **status)
    ui.clip_btn.click(on_clip, [ui.session, ui.clip_text, ui.clip_weight], out, api_name="clip_edit", **GPU, **status)
    ui.flip_btn.click(on_flip, [ui.session], out, api_name="flip", **status)
    ui.noise_btn.click(on_noise, [ui.session, ui.noise_sigma, ui.noise_seed], out, api_name="noise", **status)

    def on_other_seed(session, seed):
        return other_seed(studio, session, seed)

    ui.other_seed_btn.click(on_other_seed, [ui.session, ui.other_seed], out, api_name="other_seed", **GPU, **status)

    def on_suggest(session):
        return suggest_other_seed(studio, session)

    ui.other_seed_suggest.click(on_suggest, [ui.session], [ui.other_seed, *out], api_name="suggest_other_seed",
                                **GPU, **status)
