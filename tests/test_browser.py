"""The studio page in a real headless browser (Playwright driving the system Chromium), on a tiny
random SD3: what gradio_client cannot see (the canvas, the charts, the layout, Stop from the page).

Opt-in (UNLEARN_BROWSER_TESTS=1). Skips with the reason when Playwright or Chromium is missing (`pip install playwright`,
`apt-get install chromium`; STUDIO_CHROMIUM points at another binary). With STUDIO_SCREENSHOT=path
the click-through saves the page there (scripts/screenshot.py uses this for docs/screenshot.png).
"""

import os
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import running_studio

CHROMIUM = os.environ.get("STUDIO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEW = {"width": 1400, "height": 900}
WAIT_MS = 240_000  # generous: CI machines are shared and a tiny model still draws on the CPU
PROMPT = "ireland flag"

if not os.environ.get("UNLEARN_BROWSER_TESTS"):  # not yet seen passing on a loaded CI machine
    pytest.skip("browser tests are opt-in: set UNLEARN_BROWSER_TESTS=1 (they drive Chromium for several minutes)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set STUDIO_CHROMIUM)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    # STUDIO_BROWSER_MODEL: another model for the screenshot (e.g. "embedded"); tests use the tiny one.
    model = os.environ.get("STUDIO_BROWSER_MODEL") or str(tiny_model_dir)
    with running_studio(model, tmp_path_factory.mktemp("browser-studio")) as (studio, _, url, _, _):
        yield studio, url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(server, browser):
    """A fresh tab (its own studio session) on the page, at a laptop's 1400x900."""
    pg = browser.new_page(viewport=VIEW)
    pg.set_default_timeout(WAIT_MS)
    pg.goto(server[1])
    pg.wait_for_selector("#generate-btn")
    try:
        yield pg
    finally:
        pg.close()


# -- page helpers (Gradio 6 DOM: elem_id sits on the component's wrapper) --------------------------
def text(page, elem_id: str) -> str:
    return page.inner_text(f"#{elem_id}")


def wait_text(page, elem_id: str, pattern: str, timeout: int = WAIT_MS) -> None:
    """Wait until the element's text matches the JS regular expression `pattern`."""
    print(f"[{time.strftime('%H:%M:%S')}] waiting for {elem_id} ~ {pattern}", flush=True)
    page.wait_for_function("([id, p]) => new RegExp(p).test((document.getElementById(id) || {innerText: ''})"
                           ".innerText)", arg=[elem_id, pattern], timeout=timeout)


def generate(page, count: int = 8) -> None:
    """Seeds 0..count-1 of the prompt."""
    page.fill("#prompt textarea", PROMPT)
    set_number(page, "seed-count", count)
    page.click("#generate-btn")
    page.wait_for_function("n => document.querySelectorAll('#gallery img').length >= n", arg=count)


def flag(page, index: int, seed: int) -> None:
    """Click the index-th output (1-based) and wait until it is the active flag with its canvas."""
    page.click(f"#gallery button[aria-label^='Thumbnail {index} ']")
    wait_text(page, "flag-info", f"seed {seed} ")
    page.wait_for_selector("#paint-canvas canvas")
    time.sleep(1.5)  # the canvas gets the flagged image in the event after the flag


def stroke(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag the mouse over the paint canvas between fractions of its width and height."""
    box = page.locator("#paint-canvas canvas").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y0)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(box["x"] + box["width"] * (x0 + (x1 - x0) * i / 20),
                        box["y"] + box["height"] * (y0 + (y1 - y0) * i / 20))
    page.mouse.up()
    time.sleep(1.5)  # the editor exports its layers asynchronously


def paint(page, flag_id: str, x0=0.3, y0=0.5, x1=0.7, y1=0.5) -> None:
    stroke(page, x0, y0, x1, y1)
    page.click("#paint-btn")
    wait_text(page, "surrogate-info", f"surrogate for {flag_id} ")  # the rendered text: no markdown


def canvas_busy(page) -> str:
    return page.evaluate("() => [...document.querySelectorAll('#paint-canvas .progress-text, #paint-canvas "
                         ".eta-bar')].map(e => e.innerText.trim()).filter(Boolean).join(' | ')")


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input")
    if not box.is_visible():  # the less-used settings live in the closed "More settings" accordion
        page.get_by_text("More settings", exact=True).first.click()
    box.fill(str(value))
    box.press("Tab")


def plot_state(page, elem_id: str) -> dict | None:
    """The Vega chart's axes (their ARIA descriptions say 'linear' or 'discrete' scale) and lines."""
    return page.evaluate("""id => { const s = document.querySelector('#' + id + ' svg'); if (!s) return null;
        return {axes: [...s.querySelectorAll('[aria-roledescription=axis]')].map(a => a.getAttribute('aria-label')),
                lines: [...s.querySelectorAll('.mark-line path')].map(p => (p.getAttribute('d') || '').length)}; }""",
                         elem_id)


def start_fix(page, steps: int, remember: int = 4) -> None:
    set_number(page, "cfg-steps", steps)
    page.click("#unlearn-btn")


# -- tests ------------------------------------------------------------------------------------------
def test_click_through_fits_a_laptop_screen(server, page):
    studio, _ = server
    n_fixes = len(studio.list_fixes())
    height_before = page.evaluate("document.documentElement.scrollHeight")
    generate(page)
    flag(page, 2, 1)
    # Generated grid, flagged image, canvas and fix controls are on one 1400x900 screen.
    for sel in ["#gallery", "#flag-image", "#paint-canvas canvas", "#unlearn-btn", "#stop-btn"]:
        box = page.locator(sel).first.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + min(box["height"], 60) <= VIEW["height"], (sel, box)
    paint(page, "flag1")
    set_number(page, "cfg-remember_set_size", 4)
    start_fix(page, 6)
    wait_text(page, "unlearn-status", ": done")
    assert "saved" in text(page, "unlearn-result")
    wait_text(page, "studio-header", f"fixes loaded: {n_fixes + 1}")
    page.wait_for_function("document.querySelectorAll('#moved img').length > 0")  # what else moved
    shot = os.environ.get("STUDIO_SCREENSHOT")
    if shot:
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=shot)
    page.click("#studio-tabs button:has-text('Compare')")
    assert page.input_value("#cmp-seeds textarea") == "0-7"  # Compare follows the generated seeds
    page.click("#compare-btn")
    wait_text(page, "compare-summary", "seeds changed")
    assert len(studio.list_fixes()) == n_fixes + 1
    print(f"page height at 1400x900: {height_before} px")


def test_painting_then_flagging_another_output_leaves_the_canvas_usable(page):
    generate(page, 4)
    flag(page, 1, 0)
    paint(page, "flag1")
    flag(page, 3, 2)
    seen = []
    for _ in range(8):  # before the fix: a "processing" spinner from ~5 s on, for minutes
        time.sleep(1)
        seen.append(canvas_busy(page))
    assert not any(seen), f"the canvas kept a progress overlay: {seen}"
    paint(page, "flag2", 0.5, 0.2, 0.5, 0.7)
    assert "pixels changed" in text(page, "surrogate-info")


def test_stop_mid_fix_saves_nothing(server, page):
    studio, _ = server
    n_fixes = len(studio.list_fixes())
    generate(page, 2)
    flag(page, 2, 1)
    paint(page, "flag1")
    set_number(page, "cfg-remember_set_size", 2)
    start_fix(page, 5000)
    wait_text(page, "unlearn-status", "step [3-9]")
    page.click("#stop-btn")
    wait_text(page, "unlearn-status", ": stopped", timeout=120_000)
    time.sleep(1.5)
    status = text(page, "unlearn-status")
    assert "nothing was saved" in status and "stopping" not in status.lower()
    assert len(studio.list_fixes()) == n_fixes
    assert not list(studio.store.root.glob(".partial-*"))


def test_bad_canvas_upload_is_refused_and_the_surrogate_stays(page, tmp_path):
    generate(page, 2)
    flag(page, 1, 0)
    paint(page, "flag1")
    good = page.get_attribute("#surrogate-image img", "src")
    bad = tmp_path / "wide.png"
    Image.new("RGB", (300, 120), (0, 0, 0)).save(bad)  # not square: no surrogate can come of it
    page.click("#paint-canvas button[aria-label='Clear canvas'], #paint-canvas button[title='Clear canvas']",
               timeout=5000) if page.locator("#paint-canvas button[aria-label='Clear canvas']").count() else None
    page.locator("#paint-canvas input[type=file]").first.set_input_files(str(bad))
    time.sleep(3)
    page.click("#paint-btn")
    toast = page.locator(".toast-body").filter(has_text="square").first
    toast.wait_for(timeout=60_000)
    assert "square" in toast.inner_text()
    time.sleep(1)
    assert page.get_attribute("#surrogate-image img", "src") == good


def test_loss_plot_draws_numeric_axes_and_a_line_during_a_fix(server, page):
    generate(page, 2)
    flag(page, 2, 1)
    paint(page, "flag1")
    set_number(page, "cfg-remember_set_size", 2)
    start_fix(page, 100)
    wait_text(page, "unlearn-status", "step (1[1-9]|[2-9][0-9])/100")
    time.sleep(1.5)
    state = plot_state(page, "loss-plot")
    page.click("#stop-btn")
    wait_text(page, "unlearn-status", ": (stopped|done)", timeout=120_000)
    assert state is not None, "no chart while the fix ran"
    axes = " / ".join(state["axes"])
    assert "discrete" not in axes and axes.count("linear") >= 2, axes
    assert len(state["lines"]) == 2 and min(state["lines"]) > 20, state  # both series drawn as lines
