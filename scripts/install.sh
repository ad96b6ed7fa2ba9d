#!/usr/bin/env bash
# Install restore into a virtual environment (default .venv), in the one order that works:
#   1. torch + torchvision first (pinned: the releases this workplace mirrors; any torch >= 2.1 works),
#   2. basicsr 1.4.2 with --no-build-isolation: its setup.py lists torch in setup_requires, so an isolated
#      build would fetch a second torch (several GB) into the throw-away build environment,
#   3. the project itself (editable), with extras given as the first argument ("dev" for the tests; it also
#      installs playwright and, as root with apt-get, the Debian chromium package for the browser test).
# Re-running is cheap: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
EXTRAS=${1:-}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  echo "[install] $TORCH_SPEC"
  # shellcheck disable=SC2086
  "${pip[@]}" install -q $TORCH_SPEC 2>&1 | quiet
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.version('basicsr')" 2>/dev/null; then
  echo "[install] basicsr (no build isolation, see header)"
  "${pip[@]}" install -q setuptools wheel cython numpy 2>&1 | quiet
  "${pip[@]}" install -q --no-build-isolation "basicsr==1.4.2" 2>&1 | quiet
fi
target="."
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
echo "[install] restore $target"
"${pip[@]}" install -q -e "$target" 2>&1 | quiet
# The dev extra's browser test (tests/test_app_browser.py) drives the system Chromium through Playwright (never
# Playwright's own browser download). Both are best effort: without them that one test skips with a message.
if [[ ",$EXTRAS," == *",dev,"* ]]; then
  "${pip[@]}" install -q playwright 2>&1 | quiet \
    || echo "[install] note: pip could not install playwright; tests/test_app_browser.py will skip"
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "[install] chromium (Debian package, for the browser test)"
      export DEBIAN_FRONTEND=noninteractive
      { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1 \
        || echo "[install] note: apt-get could not install chromium; tests/test_app_browser.py will skip"
    else
      echo "[install] note: no chromium on PATH (as root: apt-get install chromium); tests/test_app_browser.py will skip"
    fi
  fi
fi
"$VENV/bin/python" -c "import restore, restore.compat; restore.compat.check_basicsr(); print('[install] ok: restore', restore.__version__)"
