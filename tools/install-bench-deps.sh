#!/usr/bin/env bash
# Install what tools/bench needs: wrk (load generator), nginx (the reference server), curl, and
# optionally the Python peers granian, gunicorn, waitress and bjoern (and Flask for the flask
# scenario) into the project's .venv. bjoern is C and builds against libev (apt-get libev-dev).
# Idempotent: anything already present is skipped. Needs root for apt-get.
#   tools/install-bench-deps.sh            # system tools + Python peers
#   tools/install-bench-deps.sh --no-pip   # system tools only
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY=".venv/bin/python"

missing=()
for tool in wrk nginx curl taskset; do
    if command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ]; then
        echo "present: $tool"
    else
        case "$tool" in
            taskset) missing+=(util-linux) ;;
            *) missing+=("$tool") ;;
        esac
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing with apt-get: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
    # The Debian nginx package may start a system nginx on port 80; the benchmark never uses it.
fi

if [ "${1:-}" = "--no-pip" ]; then
    exit 0
fi
if [ ! -x "$VENV_PY" ]; then
    echo "no $VENV_PY: run 'make venv' first to install the Python peers" >&2
    exit 0
fi
for pkg in granian gunicorn waitress flask; do
    if "$VENV_PY" -c "import $pkg" 2>/dev/null; then
        echo "present in .venv: $pkg"
    else
        echo "installing into .venv: $pkg"
        "$VENV_PY" -m pip install --quiet "$pkg" || echo "could not install $pkg (optional peer, skipped)" >&2
    fi
done
if "$VENV_PY" -c "import bjoern" 2>/dev/null; then
    echo "present in .venv: bjoern"
else
    if [ ! -e /usr/include/ev.h ]; then
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y libev-dev || echo "no libev-dev: bjoern will not build" >&2
    fi
    "$VENV_PY" -m pip install --quiet bjoern || echo "could not build bjoern (optional peer, skipped)" >&2
fi
