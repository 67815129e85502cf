"""Section 5: before/after from the same seeds, for the flagged prompt and for other prompts.

Before = base model, after = the chosen fixes; the same initial noise for both (core.compare), so
every difference is the fix's doing. The flagged seed is framed in red in the figures.
"""

import json

import gradio as gr
import pandas as pd

from core.compare import stacked_comparison_figure

from .common import GPU, MAX_SEEDS, Session, checked, fmt, serve_copy, user_errors

TABLE_COLUMNS = ["prompt", "seed", "flagged", "mean_abs_diff", "ssim", "psnr", "lpips", "checker_before",
                 "checker_after"]


def build(ui, studio) -> None:
    info = studio.model.info
    gr.Markdown("### 5 · Compare: same seeds, before and after", elem_classes=["section-title"])
    with gr.Row():
        with gr.Column(scale=1):
            ui.cmp_prompt = gr.Textbox(label="Flagged prompt", visible=not studio.unconditional,
                                       info="filled in when you flag; the flagged seed is framed")
            ui.cmp_other = gr.Textbox(label="Other prompts (integrity check), one per line", lines=3,
                                      visible=not studio.unconditional)
            with gr.Row():
                ui.cmp_seeds = gr.Textbox(label="Seeds", value="0-7", elem_id="cmp-seeds",
                                          info="the generated seeds; e.g. 0-7 or 0,3,5")
                ui.cmp_steps = gr.Number(label="Steps", value=info.default_steps, precision=0, minimum=1, maximum=1000)
                ui.cmp_guidance = gr.Number(label="Guidance", value=info.default_guidance, minimum=0, maximum=30)
            ui.cmp_fixes = gr.CheckboxGroup(label="Fixes to compare (none ticked = all switched-on fixes)", choices=[])
            ui.cmp_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
            ui.cmp_file = gr.File(label="metrics.json (per seed, all prompts)", interactive=False, height=90)
        with gr.Column(scale=2):
            ui.cmp_summary = gr.Markdown("Compare runs the same seeds without and with the fixes.",
                                         elem_id="compare-summary")
            ui.cmp_figure = gr.Image(label="before / after / |after - before| per prompt; flagged seed framed red",
                                     type="pil", format="png", interactive=False, elem_id="compare-figure",
                                     buttons=["download", "fullscreen"])
    ui.cmp_table = gr.Dataframe(headers=TABLE_COLUMNS, label="Per-seed metrics", interactive=False, wrap=True,
                                max_height=360)


def lpips_note(report: dict) -> str:
    """One line on LPIPS for the summary; core computed the values (metrics.json "lpips")."""
    lp = report.get("lpips")
    if isinstance(lp, dict) and lp:
        return "LPIPS: AlexNet backbone (images under 64 px are upsampled first)"
    return lp if isinstance(lp, str) else "LPIPS: unavailable"


def table(cmps, highlight: dict) -> pd.DataFrame:
    rows = []
    for c in cmps:
        for seed in c.seeds:
            r = c.per_seed[seed]
            rows.append([c.prompt, seed, "yes" if highlight.get(c.prompt) == seed else "",
                         r.get("mean_abs_diff"), r.get("ssim"), r.get("psnr"),
                         r.get("lpips", "unavailable"),
                         checked(r.get("before")) or "no checker", checked(r.get("after")) or "no checker"])
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    df["psnr"] = df["psnr"].map(lambda v: "inf (identical)" if v == float("inf") else round(float(v), 2))
    return df


def summary_text(cmps, highlight: dict, names: list[str], lp_note: str) -> str:
    lines = [f"Fixes: {', '.join(names)}"]
    for c in cmps:
        s = c.summary
        lead = f"**{c.prompt}**: " if c.prompt else ""  # an unconditional model's seeds have no prompt
        parts = [f"{lead}{s.get('changed_seeds')}/{s.get('seeds')} seeds changed",
                 f"mean |diff| {fmt(s.get('mean_abs_diff_mean'))}", f"SSIM {fmt(s.get('ssim_mean'))}",
                 f"PSNR {fmt(s.get('psnr_mean'))}"]
        if c.prompt in highlight and highlight[c.prompt] in c.per_seed:
            parts.append(f"flagged seed {highlight[c.prompt]}: |diff| "
                         f"{fmt(c.per_seed[highlight[c.prompt]]['mean_abs_diff'])}")
        for r in s.get("repeated_pictures") or []:
            parts.append(f"picture of seed {r['first_seed']} (drawn by several seeds): {len(r['seeds_before'])} → "
                         f"{len(r['seeds_after'])} seeds")
        if "before_rates" in s:
            b, a = s["before_rates"], s["after_rates"]
            parts.append(f"correct {b['correct']:.0%} → {a['correct']:.0%}, "
                         f"planted error {b['planted_error']:.0%} → {a['planted_error']:.0%}")
        lines.append(" · ".join(parts))
    lines.append(lp_note)
    return "  \n".join(lines)


def compare(studio, session: Session, prompt, other, seeds, steps, guidance, fixes, progress=gr.Progress()):
    from core.limits import check_guidance, check_steps, parse_seeds

    with user_errors("Compare"):
        flag = session.flag()
        prompt = (prompt or "").strip() or (flag.prompt if flag else "")
        prompts = [p for p in dict.fromkeys([prompt] + [l.strip() for l in (other or "").splitlines()]) if p]
        if studio.unconditional:
            prompts = [""]  # no prompts: the same seeds before and after
        if not prompts:
            raise ValueError("no prompt to compare: flag an output or type a prompt")
        seed_list = parse_seeds(seeds or "", MAX_SEEDS, field="Seeds")
        names = list(fixes or []) or [f.run_id for f in studio.list_fixes() if f.enabled]
        if not names:
            raise ValueError("no fix is switched on: unlearn first, or tick a fix to compare")
        highlight = {flag.prompt: flag.seed} if flag else {}
        progress(0, desc=f"drawing {len(prompts)} prompt(s) x {len(seed_list)} seeds, fixes off and on "
                         f"({2 * len(prompts) * len(seed_list)} images), then measuring")
        cmps, out = studio.compare(prompts, seed_list, names, check_steps(steps) if steps else None,
                                   None if guidance is None else check_guidance(guidance), highlight=highlight,
                                   progress=lambda frac, msg: progress(frac, desc=msg))
    lp_note = lpips_note(json.loads((out / "metrics.json").read_text()))
    return (stacked_comparison_figure(cmps, highlight, top=30), table(cmps, highlight),
            summary_text(cmps, highlight, names, lp_note), serve_copy(out / "metrics.json"))


def wire(ui, studio) -> None:
    def on_compare(session, prompt, other, seeds, steps, guidance, fixes, progress=gr.Progress()):
        return compare(studio, session, prompt, other, seeds, steps, guidance, fixes, progress)

    ui.cmp_btn.click(on_compare, [ui.session, ui.cmp_prompt, ui.cmp_other, ui.cmp_seeds, ui.cmp_steps, ui.cmp_guidance,
                                  ui.cmp_fixes], [ui.cmp_figure, ui.cmp_table, ui.cmp_summary, ui.cmp_file],
                     api_name="compare", **GPU)
