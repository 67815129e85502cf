#!/usr/bin/env bash
# One entry point for people and CI:
#   bash scripts/dev.sh studio [launch.py flags]   install if needed, then start the studio
#   bash scripts/dev.sh test   [pytest flags]       install if needed, then run the tests
#   bash scripts/dev.sh env                         install if needed, print the python to use
# The environment lives in $UNLEARN_VENV (default: .venv in the repo). It is rebuilt only when
# the dependency spec (pyproject.toml) changes, so CI can keep one outside the clone.
# UNLEARN_TORCH=cpu installs torch from PyTorch's CPU wheel index first (about 200 MB instead of
# the several-GB CUDA build a plain `pip install torch` takes on Linux x86_64).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${UNLEARN_VENV:-.venv}"
PY="$VENV/bin/python"
spec_hash=$( (cat pyproject.toml; echo "${UNLEARN_TORCH:-}") | sha256sum | cut -c1-16)

if [ ! -x "$PY" ] || [ "$(cat "$VENV/.spec-hash" 2>/dev/null)" != "$spec_hash" ]; then
    echo "[dev] building the environment in $VENV (first run takes a few minutes)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip >&2 || true
    if [ "${UNLEARN_TORCH:-}" = "cpu" ]; then
        "$PY" -m pip install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu >&2
    fi
    # Dependencies only (from pyproject), so the environment can be shared between clones.
    "$PY" - <<'PYEOF' > "$VENV/requirements.txt"
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"]))
PYEOF
    "$PY" -m pip install -q -r "$VENV/requirements.txt" >&2
    echo "$spec_hash" > "$VENV/.spec-hash"
fi
# The project itself: editable and without dependencies, cheap, re-done for each clone.
"$PY" -m pip install -q --no-deps --no-build-isolation -e . >&2 2>/dev/null || "$PY" -m pip install -q --no-deps -e . >&2

cmd="${1:-env}"; shift || true
case "$cmd" in
    studio) exec "$PY" launch.py "$@" ;;
    test)   exec "$PY" -m pytest "$@" ;;
    env)    echo "$PY" ;;
    *) echo "usage: bash scripts/dev.sh studio|test|env [args]" >&2; exit 2 ;;
esac
