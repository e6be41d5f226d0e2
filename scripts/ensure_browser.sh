#!/usr/bin/env bash
# Make sure the browser test can run: Debian's Chromium at /usr/bin/chromium and the Playwright Python
# package in .venv-server (the venv that has full Langflow). Idempotent and quick when both are present.
#
# Playwright's own browser download (`playwright install`) cannot work on a machine that only reaches
# package registries, so the test drives the distribution's Chromium instead; the Playwright wheel brings
# the driver it needs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-server"
UV="$(command -v uv || echo "$ROOT/.tools/bin/uv")"

if [[ ! -x /usr/bin/chromium ]]; then
    sudo=""
    [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "ensure_browser.sh: $VENV is missing; scripts/langflow.sh creates it" >&2
    exit 1
fi
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    "$UV" pip install --quiet --python "$VENV/bin/python" playwright
fi
