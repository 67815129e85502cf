"""Export of one fix: a zip with the LoRA file, the run's records and a one-file HTML report.

The report embeds its PNGs as base64, so it is a single file that opens anywhere: flagged,
surrogate, before/after of the flagged seed, the loss curve, and the newest comparison figures
that included this fix (from Compare), with their metrics, the config and the seeds.
"""

import base64
import html
import io
import json
import zipfile
from pathlib import Path

from PIL import Image

RUN_FILES = ["pytorch_lora_weights.safetensors", "config.json", "metrics.json", "loss_log.csv", "flagged.png",
             "surrogate.png", "before.png", "after.png"]

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
img.px{image-rendering:pixelated;width:160px;height:160px;border:1px solid #ccc}
figure{display:inline-block;margin:0 1em 1em 0;text-align:center}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}"""


def _png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _img_tag(path: Path, cls: str = "", alt: str = "") -> str:
    with Image.open(path) as img:
        data = _png_b64(img.convert("RGB"))
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def loss_plot(run_path: Path) -> Image.Image | None:
    """The run's L_f and L_r per step as a small PNG (matplotlib, Agg)."""
    from core.runs import read_loss_log

    log = run_path / "loss_log.csv"
    if not log.exists():
        return None
    rows = read_loss_log(log)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 2.6), dpi=100)
    ax = fig.add_subplot()
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["L_f"] for r in rows], label="L_f (forget)")
    ax.plot(steps, [r["L_r"] for r in rows], label="L_r (remember)")
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image.open(io.BytesIO(buf.getvalue()))


def latest_comparison(compare_root: Path, run_id: str) -> tuple[Path, dict] | None:
    """The newest Compare folder whose fixes included this run, with its metrics.json."""
    found = []
    for m in Path(compare_root).glob("*/metrics.json"):
        try:
            data = json.loads(m.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if run_id in data.get("fixes", []):
            found.append((m.parent.name, m.parent, data))
    if not found:
        return None
    _, folder, data = max(found, key=lambda t: t[0])
    return folder, data


def _metrics_table(data: dict) -> str:
    out = []
    for prompt, entry in data.get("prompts", {}).items():
        out.append(f"<h3>{html.escape(prompt)}</h3><table><tr><th>seed</th><th>mean |diff|</th><th>SSIM</th>"
                   "<th>PSNR</th><th>checker before</th><th>checker after</th></tr>")
        for seed, r in entry.get("seeds", {}).items():
            cells = [seed, r.get("mean_abs_diff"), r.get("ssim"), r.get("psnr"),
                     (r.get("before") or {}).get("verdict", "-"), (r.get("after") or {}).get("verdict", "-")]
            out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        out.append("</table>")
    return "\n".join(out)


def report_html(run, compare_root: Path) -> str:
    cfg, metrics = run.config, run.metrics()
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Fix {esc(run.run_id)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Unlearn Studio fix {esc(run.run_id)}</h1>",
             (f"<p>Prompt <b>{esc(str(cfg.get('prompt')))}</b>, flagged seed" if cfg.get("prompt")
              else "<p>Flagged seed")  # an unconditional model's output is named by its seed alone
             + f" <b>{esc(str(cfg.get('seed')))}</b>, "
             f"method <b>{esc(str(cfg.get('config', {}).get('method')))}</b>, created {esc(str(cfg.get('created')))}, "
             f"model {esc(str(cfg.get('model', {}).get('name')))} "
             f"(base fingerprint {esc(str(cfg.get('model', {}).get('base_fingerprint')))}).</p>",
             "<h2>Flagged, surrogate, before and after (flagged seed)</h2><div>"]
    for name in ("flagged", "surrogate", "before", "after"):
        p = run.path / f"{name}.png"
        if p.exists():
            parts.append(f"<figure>{_img_tag(p, 'px', name)}<figcaption>{name}</figcaption></figure>")
    parts.append("</div>")
    plot = loss_plot(run.path)
    if plot is not None:
        parts.append(f"<h2>Losses</h2><img alt='loss curve' src='data:image/png;base64,{_png_b64(plot)}'>")
    parts.append("<h2>Same-seed comparison</h2>")
    found = latest_comparison(compare_root, run.run_id)
    if found is None:
        parts.append("<p>No comparison includes this fix yet: run Compare in the studio, then export again.</p>")
    else:
        folder, data = found
        parts.append(f"<p>From comparison {esc(folder.name)} (fixes: {esc(', '.join(data.get('fixes', [])))}).</p>")
        for prompt, entry in data.get("prompts", {}).items():
            fig = folder / entry.get("figure", "")
            if fig.is_file():
                parts.append(f"<figure>{_img_tag(fig, '', prompt)}<figcaption>{esc(prompt)}</figcaption></figure>")
        parts.append(_metrics_table(data))
    parts += ["<h2>Training metrics</h2>", f"<pre>{esc(json.dumps(metrics, indent=2))}</pre>",
              "<h2>Config (config.json: seeds, surrogate, settings, versions)</h2>",
              f"<pre>{esc(json.dumps(cfg, indent=2))}</pre>", "</body></html>"]
    return "\n".join(parts)


def export_zip(run, compare_root: Path, dest: Path) -> Path:
    """Write DEST (a .zip) with the run's files under <run_id>/ and report.html."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in RUN_FILES:
            p = run.path / name
            if p.is_file():
                zf.write(p, f"{run.run_id}/{name}")
        zf.writestr(f"{run.run_id}/report.html", report_html(run, Path(compare_root)))
    return dest
