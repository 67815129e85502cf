"""The model picker: the shipped worlds by name, or a diffusers folder / hub id typed in.

Switching loads the model in core (`Studio.switch_model`), starts a fresh session (flags belong to
a model), and shows or hides what depends on the model: for an unconditional model (a DDPM) the
prompt boxes are hidden and the flow is seed-only.
"""

import gradio as gr

from .common import GPU, Session, user_errors
from .surrogate_section import other_seed_hint
from .unlearn_section import fix_name_example


def build(ui, studio) -> None:
    from core.models.loading import SHIPPED_NAMES

    with gr.Column(scale=0, min_width=260):
        with gr.Row():
            ui.model_pick = gr.Dropdown(label="Model", choices=list(SHIPPED_NAMES), value=studio.model.source,
                                        allow_custom_value=True, elem_id="model-pick", min_width=160,
                                        info="a shipped world, or a diffusers folder / hub id")
            ui.model_btn = gr.Button("Load", elem_id="model-load", min_width=60, scale=0)


def model_outputs(ui) -> list:
    """The widgets whose value or visibility depends on the loaded model (order of `model_widgets`)."""
    return [ui.model_pick, ui.prompt, ui.gen_steps, ui.gen_guidance, ui.cmp_prompt, ui.cmp_other, ui.cmp_steps,
            ui.cmp_guidance, ui.sde_prompt, ui.paint_hint, ui.other_seed_hint, ui.other_seed_suggest, ui.fix_name]


def model_widgets(studio) -> tuple:
    info, conditional = studio.model.info, not studio.unconditional
    return (gr.update(value=studio.model.source), gr.update(visible=conditional), gr.update(value=info.default_steps),
            gr.update(value=info.default_guidance, visible=conditional), gr.update(visible=conditional),
            gr.update(visible=conditional), gr.update(value=info.default_steps),
            gr.update(value=info.default_guidance, visible=conditional), gr.update(visible=conditional),
            gr.update(visible=not conditional), gr.update(value=other_seed_hint(not conditional)),
            gr.update(visible=not conditional), gr.update(placeholder=fix_name_example(not conditional)))


def switch(studio, name, progress=gr.Progress()):
    with user_errors("Load model"):
        progress(0, desc=f"loading {name}")
        studio.switch_model(name)
    return Session(), [], "", None, gr.update(choices=[], value=None)


def wire(ui, studio, header_text) -> None:
    from . import fixes_section

    def on_switch(name, progress=gr.Progress()):
        cleared = switch(studio, name, progress)
        return (*cleared, header_text(studio), *model_widgets(studio), *fixes_section.fix_widgets(studio))

    ui.model_btn.click(on_switch, [ui.model_pick],
                       [ui.session, ui.gallery, ui.gen_status, ui.flag_image, ui.flag_dd, ui.header,
                        *model_outputs(ui), ui.fix_table, ui.fix_pick, ui.cmp_fixes, ui.fix_config, ui.fix_on],
                       api_name="load_model", **GPU)
