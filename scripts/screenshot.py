"""Browser check of the studio page: start it, drive one flag-and-fix in headless Chromium, screenshot.

    python scripts/screenshot.py                      # tiny random model (or the embedded one if built)
    python scripts/screenshot.py --model embedded --out docs/screenshot.png

Starts the studio on 127.0.0.1 and a free port with a temp data dir, opens the page in headless
Chromium (Debian: `apt-get install chromium`), and through the DevTools protocol (over
--remote-debugging-pipe, no extra packages) types a prompt, generates, clicks an output to flag
it, paints a stroke on the canvas (falls back to Flip), runs a short unlearn and a comparison, then
saves a full-page PNG. Exits non-zero when a step does not show up on the page.
"""

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Chromium:
    """Minimal DevTools client over --remote-debugging-pipe (NUL-separated JSON on fds 3/4)."""

    def __init__(self, binary: str, width: int, height: int):
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="studio-chromium-")

        def child_fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={self.profile}", "--remote-debugging-pipe", f"--window-size={width},{height}",
             "about:blank"],
            preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf, self._id, self.session = b"", 0, None

    def call(self, method: str, session: bool = True, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", session=False, url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", session=False, targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails'].get('text')} in {expression[:80]}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(f"!!({expression})")
            if value:
                return value
            time.sleep(0.3)
        raise TimeoutError(f"the page never showed {what}")

    def mouse(self, kind: str, x: float, y: float, buttons: int = 1) -> None:
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=buttons, clickCount=1)

    def screenshot(self, path: Path, width: int) -> None:
        height = int(self.js("Math.ceil(document.documentElement.scrollHeight)"))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        time.sleep(1.0)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        finally:
            import shutil

            for fd in (self._r, self._w):
                os.close(fd)
            shutil.rmtree(self.profile, ignore_errors=True)


# -- page helpers (Gradio 6 DOM: elem_id on the component's wrapper) ------------------------------
def set_value(chrome: Chromium, elem_id: str, value) -> None:
    chrome.js(f"""(() => {{
        const el = document.querySelector('#{elem_id} textarea, #{elem_id} input');
        el.value = {json.dumps(str(value))};
        el.dispatchEvent(new Event('input', {{bubbles: true}}));
        el.dispatchEvent(new Event('change', {{bubbles: true}}));
        el.dispatchEvent(new Event('blur', {{bubbles: true}}));
        return true; }})()""")


def click(chrome: Chromium, selector: str) -> None:
    if not chrome.js(f"(() => {{ const b = document.querySelector({json.dumps(selector)}); "
                     "if (!b) return false; b.scrollIntoView({block: 'center'}); b.click(); return true; })()"):
        raise RuntimeError(f"nothing to click at {selector}")


def text_of(elem_id: str) -> str:
    return f"(document.querySelector('#{elem_id}') || {{innerText: ''}}).innerText"


def paint_stroke(chrome: Chromium) -> bool:
    """Drag the mouse across the middle of the paint canvas; True if the page took it."""
    rect = chrome.js("""(() => { const c = document.querySelector('#paint-canvas canvas');
        if (!c) return null; c.scrollIntoView({block: 'center'}); const r = c.getBoundingClientRect();
        return [r.left, r.top, r.width, r.height]; })()""")
    if not rect or rect[2] < 20:
        return False
    x0, y0, w, h = rect
    chrome.mouse("mouseMoved", x0 + w * 0.3, y0 + h * 0.5, buttons=0)
    chrome.mouse("mousePressed", x0 + w * 0.3, y0 + h * 0.5)
    for i in range(1, 21):
        chrome.mouse("mouseMoved", x0 + w * (0.3 + 0.4 * i / 20), y0 + h * (0.5 + 0.1 * (i % 2)))
    chrome.mouse("mouseReleased", x0 + w * 0.7, y0 + h * 0.5, buttons=0)
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_studio(model: str | None, work: Path):
    from core.models import load_model
    from core.models.loading import EMBEDDED_DIR
    from core.studio import Studio
    from gui.app import build_app, launch_kwargs

    if model is None:  # the embedded model once its build has finished (info file written last)
        model = "embedded" if (EMBEDDED_DIR / "unlearn_studio.json").exists() else "tiny"
    if model == "tiny":
        from core.models.tiny import save_tiny_model

        model = str(save_tiny_model(work / "tiny-model"))
    os.environ["GRADIO_TEMP_DIR"] = str(work / "data" / "tmp")
    studio = Studio(load_model(model), work / "data")
    demo = build_app(studio)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True,
                            **launch_kwargs(studio))
    return studio, demo, url


def pick_demo_seed(studio, prompt: str) -> tuple[int, bool]:
    """With a flag checker: the first of seeds 0-31 showing the planted error (True); else seed 1."""
    if studio.has_checker:
        for g in studio.generate(prompt, range(32), save=False):
            if studio.check(prompt, g.image)["verdict"] == "planted_error":
                return g.seed, True
    return 1, False


def fill_surrogate(chrome: Chromium, clip_text: str | None) -> None:
    """A CLIP-guided edit towards `clip_text` if given, else a painted stroke (Flip as fallback)."""
    if clip_text:
        click(chrome, "button[role='tab']:nth-of-type(3)")
        time.sleep(0.5)
        set_value(chrome, "clip-text", clip_text)
        click(chrome, "#clip-weight input[value='16']")
        click(chrome, "#clip-btn")
        chrome.wait_for(f"{text_of('surrogate-info')}.includes('pixels changed')", "a surrogate", 300)
        return
    time.sleep(3.0)  # let the paint canvas load the flagged image before drawing on it
    painted = paint_stroke(chrome)
    time.sleep(2.5)  # the editor exports its layers asynchronously after the stroke
    click(chrome, "#paint-btn")
    if painted:
        try:
            chrome.wait_for(f"{text_of('surrogate-info')}.includes('pixels changed')", "a surrogate", 20)
            return
        except TimeoutError:  # the stroke did not land: use Flip
            print("paint stroke not taken; using Flip", file=sys.stderr)
    click(chrome, "button[role='tab']:nth-of-type(4)")
    time.sleep(0.5)
    click(chrome, "#flip-btn")
    chrome.wait_for(f"{text_of('surrogate-info')}.includes('pixels changed')", "a surrogate", 30)


def drive(chrome: Chromium, prompt: str, seed: int, clip_text: str | None, steps: int, remember: int) -> None:
    start = max(0, seed - 1)
    chrome.wait_for("document.querySelector('#generate-btn')", "the Generate button", 60)
    set_value(chrome, "prompt", prompt)
    set_value(chrome, "seed-list", f"{start}-{start + 7}")
    click(chrome, "#generate-btn")
    chrome.wait_for("document.querySelectorAll('#gallery img').length >= 8", "generated images")
    click(chrome, f"#gallery button[aria-label^='Thumbnail {seed - start + 1} ']")
    chrome.wait_for("document.querySelector('#flag-image img')", "the flagged image")
    fill_surrogate(chrome, clip_text)
    set_value(chrome, "cfg-steps", steps)
    set_value(chrome, "cfg-remember_set_size", remember)
    time.sleep(0.3)
    click(chrome, "#unlearn-btn")
    chrome.wait_for(f"{text_of('unlearn-status')}.includes('done')", "the finished unlearn run", 600)
    click(chrome, "#compare-btn")
    chrome.wait_for(f"{text_of('compare-summary')}.includes('seeds changed')", "the comparison", 300)
    chrome.js("window.scrollTo(0, 0)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="'tiny' (random 16 px model), 'embedded', or a model folder "
                   "(default: embedded if fully built, else tiny)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--prompt", default=None, help="default: japan flag (has planted errors) with a checker, "
                   "else ireland flag")
    p.add_argument("--steps", type=int, default=None, help="unlearn steps (default: 40 with a checker, else 10)")
    p.add_argument("--remember", type=int, default=None, help="remember-set size (default: 32 / 8)")
    p.add_argument("--width", type=int, default=1400)
    args = p.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"no Chromium at {args.chromium}: apt-get install chromium", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="studio-shot-"))
    studio, demo, url = start_studio(args.model, work)
    print(f"studio at {url} (model {studio.model.info.name})")
    chrome = Chromium(args.chromium, args.width, 3000)
    try:
        chrome.open(url)
        prompt = args.prompt or ("japan flag" if studio.has_checker else "ireland flag")
        seed, planted = pick_demo_seed(studio, prompt)
        clip_text = prompt if planted else None
        steps = args.steps or (40 if studio.has_checker else 10)
        remember = args.remember or (32 if studio.has_checker else 8)
        print(f"flagging seed {seed} ({'planted error, CLIP-guided surrogate' if planted else 'paint surrogate'})")
        try:
            drive(chrome, prompt, seed, clip_text, steps, remember)
        except Exception:
            failed = args.out.with_name(args.out.stem + "-failed.png")
            chrome.screenshot(failed, args.width)
            print(f"page at the failure: {failed}", file=sys.stderr)
            raise
        chrome.screenshot(args.out, args.width)
        print(f"saved {args.out}")
    finally:
        chrome.close()
        demo.close()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
