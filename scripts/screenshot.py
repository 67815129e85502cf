"""The README screenshot: the browser click-through test, saving the page on the way.

    python scripts/screenshot.py                          # tiny random model -> docs/screenshot.png
    python scripts/screenshot.py --model embedded --out /tmp/shot.png

Runs tests/test_browser.py::test_click_through_fits_a_laptop_screen (Playwright driving the system
Chromium at 1400x900: generate, flag by click, paint on the canvas, fix, what else moved, compare)
with STUDIO_SCREENSHOT set, so the picture is of a run that the test checked step by step.
Exits with the test's status (5 when it was skipped, e.g. no Chromium: apt-get install chromium).
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model for the page (default: the tests' tiny random model)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    p.add_argument("--chromium", default=None, help="Chromium binary (default: chromium on PATH)")
    args = p.parse_args(argv)
    env = {**os.environ, "STUDIO_SCREENSHOT": str(args.out.resolve()), "UNLEARN_BROWSER_TESTS": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    if args.model:
        env["STUDIO_BROWSER_MODEL"] = args.model
    if args.chromium:
        env["STUDIO_CHROMIUM"] = args.chromium
    test = "tests/test_browser.py::test_click_through_fits_a_laptop_screen"
    rc = subprocess.call([sys.executable, "-m", "pytest", test, "-q", "-rs", "-s"], cwd=ROOT, env=env)
    if rc == 0:
        print(f"saved {args.out}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
