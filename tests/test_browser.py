"""The studio page in a real headless browser (Playwright driving the system Chromium), on a tiny
random SD3: what gradio_client cannot see (the canvas, the charts, the layout, Stop from the page).

Run by default. Skips, saying why, where Playwright or Chromium is missing (`pip install
playwright`, `apt-get install chromium`; STUDIO_CHROMIUM points at another binary; .ci/run installs
both where it may); UNLEARN_BROWSER_TESTS=0 skips them on purpose. With STUDIO_SCREENSHOT=path the
click-through saves the page there (scripts/screenshot.py makes docs/screenshot.png this way).
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import running_studio

CHROMIUM = (os.environ.get("STUDIO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
VIEW = {"width": 1400, "height": 900}
WAIT_MS = 240_000  # generous: CI machines are shared and a tiny model still draws on the CPU
FIX_MS = 480_000  # a whole fix (remember set, steps, monitor, what else moved) on a loaded 2-core machine
PROMPT = "ireland flag"

if os.environ.get("UNLEARN_BROWSER_TESTS", "1") == "0":
    pytest.skip("browser tests switched off (UNLEARN_BROWSER_TESTS=0)", allow_module_level=True)
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
    try:
        page.wait_for_function("([id, p]) => new RegExp(p).test((document.getElementById(id) || {innerText: ''})"
                               ".innerText)", arg=[elem_id, pattern], timeout=timeout)
    except sync_api.TimeoutError:
        toasts = page.evaluate("() => [...document.querySelectorAll('.toast-body')].map(e => e.innerText)")
        raise AssertionError(f"#{elem_id} never matched {pattern!r} in {timeout / 1000:.0f} s; it reads "
                             f"{page.inner_text('#' + elem_id)!r}; toasts: {toasts}") from None


def generate(page, count: int = 8) -> None:
    """Seeds 0..count-1 of the prompt."""
    page.fill("#prompt textarea", PROMPT)
    set_number(page, "seed-count", count)
    page.click("#generate-btn")
    page.wait_for_function("n => document.querySelectorAll('#gallery img').length >= n", arg=count)


def canvas_shot(page) -> bytes:
    return page.locator("#paint-canvas canvas").first.screenshot()


def settled(page, before: bytes, what: str, timeout_s: float = 60) -> bytes:
    """Wait until the canvas shows something other than `before` and stays so for half a second
    (the editor draws a new background, or a stroke, asynchronously); returns what it shows."""
    deadline, last = time.monotonic() + timeout_s, before
    while time.monotonic() < deadline:
        time.sleep(0.5)
        shot = canvas_shot(page)
        if shot != before and shot == last:
            return shot
        last = shot
    raise AssertionError(f"the canvas did not change within {timeout_s:.0f} s: {what}")


def flag(page, index: int, seed: int) -> None:
    """Click the index-th output (1-based) and wait until it is the active flag, drawn on the canvas."""
    page.wait_for_selector("#paint-canvas canvas")
    before = canvas_shot(page)
    page.click(f"#gallery button[aria-label^='Thumbnail {index} ']")
    wait_text(page, "flag-info", f"seed {seed} ")
    # The canvas gets the flagged image in the event after the flag, with the line under it.
    wait_text(page, "canvas-note", f"\\(seed {seed}\\)")
    settled(page, before, f"seed {seed} never appeared on it")


def stroke(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag the mouse over the paint canvas between fractions of its width and height, and wait
    until the stroke shows (the editor draws it asynchronously)."""
    box = page.locator("#paint-canvas canvas").first.bounding_box()
    before = canvas_shot(page)
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y0)
    page.mouse.down()
    for i in range(1, 9):
        page.mouse.move(box["x"] + box["width"] * (x0 + (x1 - x0) * i / 8),
                        box["y"] + box["height"] * (y0 + (y1 - y0) * i / 8))
    page.mouse.up()
    settled(page, before, "the stroke did not show")


def paint(page, flag_id: str, x0=0.3, y0=0.5, x1=0.7, y1=0.5) -> None:
    stroke(page, x0, y0, x1, y1)
    page.click("#paint-btn")
    # The rendered text (no markdown); "No surrogate for flag1 yet." and an earlier surrogate of another
    # kind (Other seed) must not count.
    wait_text(page, "surrogate-info", f"paint surrogate for {flag_id} \\(seed [0-9]+\\)[^]*pixels changed")


def canvas_busy(page) -> str:
    return page.evaluate("() => [...document.querySelectorAll('#paint-canvas .progress-text, #paint-canvas "
                         ".eta-bar')].map(e => e.innerText.trim()).filter(Boolean).join(' | ')")


def set_number(page, elem_id: str, value) -> None:
    """Type `value` into a number box and wait until the box holds it: a box drawn moments ago can
    redraw over what was typed (seen on a loaded machine: the Other-seed box went back to its default)."""
    box = page.locator(f"#{elem_id} input")
    if not box.is_visible():  # the less-used settings live in the closed "More settings" accordion
        page.get_by_text("More settings", exact=True).first.click()
    for _ in range(3):
        box.fill(str(value))
        box.press("Tab")
        try:
            page.wait_for_function("([id, v]) => document.querySelector('#' + id + ' input').value === v",
                                   arg=[elem_id, str(value)], timeout=10_000)
            return
        except sync_api.TimeoutError:
            continue
    raise AssertionError(f"#{elem_id} did not keep the value {value} after three tries")


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
    set_number(page, "cfg-remember_set_size", 2)
    start_fix(page, 3)
    wait_text(page, "unlearn-status", ": done", timeout=FIX_MS)
    assert "saved" in text(page, "unlearn-result")
    wait_text(page, "studio-header", f"fixes loaded: {n_fixes + 1}")
    page.wait_for_function("document.querySelectorAll('#moved img').length > 0")  # what else moved
    shot = os.environ.get("STUDIO_SCREENSHOT")
    if shot:
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")  # the whole workspace as a laptop screen shows it
        time.sleep(0.5)
        page.screenshot(path=shot)
    page.click("#tab-compare-button")
    assert page.input_value("#cmp-seeds textarea") == "0-7"  # Compare follows the generated seeds
    page.click("#compare-btn")
    wait_text(page, "compare-summary", "seeds changed")
    assert len(studio.list_fixes()) == n_fixes + 1
    print(f"page height at 1400x900: {height_before} px")


def test_a_fix_that_does_not_forget_is_trained_again_and_the_page_lists_the_discarded_try(server, page):
    """retry_seeds 1 with a bar no fix reaches (forget threshold 1): the fix is trained twice, the second
    try is the one saved (switched off), and the result names the try that was thrown away."""
    studio, _ = server
    n_fixes = len(studio.list_fixes())
    generate(page)
    flag(page, 2, 1)
    paint(page, "flag1")
    set_number(page, "cfg-remember_set_size", 2)
    set_number(page, "cfg-retry_seeds", 1)
    set_number(page, "cfg-forget_threshold", 1)
    start_fix(page, 3)
    wait_text(page, "unlearn-status", ": done", timeout=FIX_MS)
    result = text(page, "unlearn-result")
    assert "switched off" in result and "discarded before this one, not forgotten: training seed 0" in result
    assert len(studio.list_fixes()) == n_fixes + 1  # the discarded try is not among the fixes


def test_painting_then_flagging_another_output_leaves_the_canvas_usable(page):
    generate(page, 4)
    flag(page, 1, 0)
    paint(page, "flag1")
    flag(page, 3, 2)
    seen = []
    for _ in range(6):  # before the fix: a "processing" overlay from the flag on, for minutes
        time.sleep(0.7)
        seen.append(canvas_busy(page))
    assert not any(seen), f"the canvas kept a progress overlay: {seen}"
    paint(page, "flag2", 0.5, 0.2, 0.5, 0.7)
    assert "pixels changed" in text(page, "surrogate-info")


def test_bad_uploads_are_refused_and_the_surrogate_stays(page, tmp_path):
    generate(page, 2)
    flag(page, 1, 0)
    paint(page, "flag1")
    good = page.get_attribute("#surrogate-image img", "src")
    wide, huge, junk = tmp_path / "wide.png", tmp_path / "huge.png", tmp_path / "notes.png"
    Image.new("RGB", (300, 120), (0, 0, 0)).save(wide)
    # The canvas takes no uploads (the browser would fit any file into it unseen): a file given to
    # its hidden file input changes nothing. The upload box takes files through the image checks.
    canvas_file = page.locator("#paint-canvas input[type=file]")
    if canvas_file.count():
        shown = canvas_shot(page)
        canvas_file.first.set_input_files(str(wide))
        time.sleep(2)
        assert canvas_shot(page) == shown, "an upload reached the canvas"
    Image.new("1", (12000, 12000)).save(huge)  # 144 Mpx, a few kB on disk
    junk.write_text("<html>not an image</html>")
    for path, words in [(wide, "square"), (huge, "over the limit"), (junk, "not an image")]:
        page.locator("#surrogate-upload input[type=file]").set_input_files(str(path))
        toast = page.locator(".toast-body").filter(has_text=words).first
        toast.wait_for(timeout=60_000)
        assert "Upload: not possible" in toast.inner_text()  # titled, not a bare "Error"
        assert page.get_attribute("#surrogate-image img", "src") == good
    assert "paint surrogate for flag1" in text(page, "surrogate-info")
    # The canvas's own clear button leaves the flagged image where it is.
    clear = page.locator("#paint-canvas button[aria-label='Clear canvas'], #paint-canvas button[title='Clear canvas']")
    if clear.count():
        clear.first.click()
        wait_text(page, "canvas-note", "flag1")
    assert page.locator("#flag-image img").count() == 1


def test_live_plot_during_a_long_fix_then_stop_saves_nothing(server, page):
    """A long fix, stopped mid-run: nothing saved, a status line that says so, and the loss plot of
    the steps it ran with numeric axes and drawn lines."""
    studio, _ = server
    n_fixes = len(studio.list_fixes())
    generate(page, 2)
    flag(page, 2, 1)
    paint(page, "flag1")
    set_number(page, "cfg-remember_set_size", 2)
    page.locator("#cfg-stop_when_fixed input").uncheck()  # run on past the monitor at step 10
    # The browser tests' model is tiny (~0.01-0.02 s a step): 5000 steps run about a minute, so Stop,
    # pressed as soon as the page shows a step, lands mid-run on any machine.
    start_fix(page, 5000)
    wait_text(page, "unlearn-status", r"step ([2-9]\d|\d{3,4})/5000", timeout=FIX_MS)  # >= 20 steps to plot
    page.click("#stop-btn")
    wait_text(page, "unlearn-status", ": stopped", timeout=120_000)
    # The stopped run's plots stay on the page (redrawn at most every 2 s while it ran).
    deadline, state = time.monotonic() + 30, None
    while time.monotonic() < deadline and not (state and len(state["lines"]) == 2 and min(state["lines"]) > 20):
        time.sleep(0.5)
        state = plot_state(page, "loss-plot")
    status = text(page, "unlearn-status")
    assert "nothing was saved" in status and "stopping" not in status.lower(), status
    assert len(studio.list_fixes()) == n_fixes
    assert not list(studio.store.root.glob(".partial-*"))
    assert state is not None, "no chart while the fix ran"
    axes = " / ".join(state["axes"])
    assert "discrete" not in axes and axes.count("linear") >= 2, axes
    assert len(state["lines"]) == 2 and min(state["lines"]) > 20, state  # both series drawn as lines


@pytest.fixture(scope="module")
def faces_server(tmp_path_factory):
    """The studio on the shipped faces world (a 32x32 DDPM: seeds only, no prompt)."""
    from core.models.loading import FACES_DIR

    if not (FACES_DIR / "model_index.json").exists():
        pytest.skip("assets/faces-ddpm not built (python scripts/build_faces_model.py)")
    with running_studio("faces", tmp_path_factory.mktemp("browser-faces")) as (studio, _, url, _, _):
        yield studio, url


def test_faces_world_flow_is_seed_only_flag_paint_unlearn_compare(faces_server, browser):
    """No prompt anywhere: generate by seed, flag the card's first copy of face 3 (seed 21) by a
    click, paint a band over the eyes, unlearn, compare the same seeds."""
    studio, url = faces_server
    n_fixes = len(studio.list_fixes())
    pg = browser.new_page(viewport=VIEW)
    pg.set_default_timeout(WAIT_MS)
    try:
        pg.goto(url)
        pg.wait_for_selector("#generate-btn")
        assert "unconditional" in text(pg, "studio-header")
        assert not pg.locator("#prompt textarea").is_visible()
        set_number(pg, "seed-count", 32)
        pg.click("#generate-btn")
        pg.wait_for_function("n => document.querySelectorAll('#gallery img').length >= n", arg=32)
        # Small thumbnails of small images: 8 or more in view without scrolling (Gradio's own 100 px minimum
        # shows 4 of the 32 whole, in the gallery's 210 px).
        whole = pg.evaluate("""() => { const g = document.querySelector('#gallery').getBoundingClientRect();
            return [...document.querySelectorAll('#gallery .gallery-item')].filter(e => {
                const r = e.getBoundingClientRect(); return r.top >= g.top && r.bottom <= g.bottom; }).length; }""")
        assert whole >= 8, whole
        flag(pg, 22, 21)
        # Another memorised face as the surrogate: taken, with a warning that the fix would swap faces.
        from core.generate import generate
        from core.world import faces as W

        shown = [W.verdict(g.image)["flag"] for g in generate(studio.model, "", list(range(32)))]
        other = next(s for s, f in enumerate(shown) if f.startswith("face") and f != shown[21])
        pg.get_by_role("tab", name="Other seed").click()
        pg.locator("#other-seed input").wait_for(state="visible")  # the tab's content renders after the click
        set_number(pg, "other-seed", other)  # waits until the box holds it
        pg.click("#other-seed-btn")
        wait_text(pg, "surrogate-info", f"seed={other}[^]*seed {other} draws a picture the model repeats")
        # "Suggest a seed": the studio looks through a grid of seeds and puts the one it takes in the box
        pg.click("#other-seed-suggest")
        wait_text(pg, "surrogate-info", r"seed \d+: the most ordinary of the \d+ outputs of 128 \(seeds 5000-5127\)")
        suggested = re.search(r"seed (\d+): the most ordinary", text(pg, "surrogate-info")).group(1)
        assert pg.locator("#other-seed input").input_value() == suggested
        assert "draws a picture the model repeats" not in text(pg, "surrogate-info")
        pg.get_by_role("tab", name="Paint", exact=True).click()
        paint(pg, "flag1", 0.3, 0.42, 0.7, 0.42)  # a band over the eyes (clear of the canvas toolbar)
        # still the same face to the judge's descriptor: the page says so under the surrogate, and trains anyway
        assert "still a near copy of the flagged image" in text(pg, "surrogate-info")
        # ...so SDEdit redraws the painting (stroke-guided SDEdit), and that is what the fix trains toward
        pg.get_by_role("tab", name="SDEdit", exact=True).click()
        pg.locator("#sde-from").get_by_label("the current surrogate", exact=True).check()
        pg.get_by_role("button", name="Make SDEdit surrogate").click()
        wait_text(pg, "surrogate-info", "sdedit surrogate for flag1 \\(seed 21\\)[^]*started_from=paint")
        set_number(pg, "cfg-remember_set_size", 4)
        start_fix(pg, 6)
        wait_text(pg, "unlearn-status", ": done", timeout=FIX_MS)
        assert "Fixing flag1 (seed 21) with the sdedit surrogate" in text(pg, "unlearn-status")  # no prompt to name
        assert "saved" in text(pg, "unlearn-result")
        assert re.search(r"faces-world checker \(evaluation only\) on the flagged seed now: \w+ \(", text(pg, "unlearn-result"))
        wait_text(pg, "studio-header", f"fixes loaded: {n_fixes + 1}")
        pg.click("#tab-compare-button")
        assert not pg.locator("#cmp-prompt textarea").is_visible()
        pg.click("#compare-btn")
        wait_text(pg, "compare-summary", "seeds changed")
        # the faces the model repeats, and how many seeds draw each with the fix on
        assert re.search(r"picture of seed \d+ \(drawn by several seeds\): \d+ → \d+ seeds", text(pg, "compare-summary"))
        assert len(studio.list_fixes()) == n_fixes + 1
    finally:
        pg.close()


def test_the_model_picker_switches_worlds_and_what_depends_on_them(faces_server, browser):
    """Faces -> embedded -> faces from the picker: the prompt box, the paint hint for memorised faces and
    the Other-seed hint follow the loaded model."""
    studio, url = faces_server
    pg = browser.new_page(viewport=VIEW)
    pg.set_default_timeout(WAIT_MS)
    try:
        pg.goto(url)
        pg.wait_for_selector("#generate-btn")
        assert not pg.locator("#prompt textarea").is_visible()
        assert "another face" in text(pg, "paint-hint")
        for name, conditional in (("embedded", True), ("faces", False)):
            pg.click("#model-pick input")
            pg.fill("#model-pick input", name)
            pg.keyboard.press("Enter")
            pg.click("#model-load")
            wait_text(pg, "studio-header", "guidance" if conditional else "unconditional")
            assert pg.locator("#prompt textarea").is_visible() == conditional
            assert pg.locator("#paint-hint").is_visible() == (not conditional)
            pg.get_by_role("tab", name="Other seed").click()
            assert ("flagged one should look" in text(pg, "other-seed-hint")) == conditional
            assert pg.locator("#other-seed-suggest").is_visible() == (not conditional)
            pg.get_by_role("tab", name="Paint", exact=True).click()
        assert studio.unconditional
    finally:
        pg.close()
        if not studio.unconditional:  # leave the module's server on the faces world
            studio.switch_model("faces")
