#!/usr/bin/env bash
# Start the full Langflow server with the langflow-cms plugin loaded (`make langflow`).
#
# Full Langflow (~1.9 GB) lives in its own venv, .venv-server, so the project venv stays lfx-only and the
# unit tests keep proving the plugin works without Langflow. `uv sync` installs the langflow-cms package
# into .venv-server, as a user's `pip install langflow-cms` would: its nodes come from the package's
# `langflow.extensions` entry point (bundle cms_monitor, no LANGFLOW_COMPONENTS_PATH needed) and its tracing
# service from its `lfx.services` entry point.
#
# Unless LANGFLOW_CMS_ENDPOINT is set, a local CMS emulator is started next to the server and the plugin
# reports to it in development mode. Environment knobs:
#   LANGFLOW_PORT (7860)  LANGFLOW_HOST (127.0.0.1)  LANGFLOW_CONFIG_DIR (<repo>/.langflow)
#   LANGFLOW_CMS_EMULATOR_PORT (8765)  LANGFLOW_CMS_ENDPOINT (set: use it, start no emulator)
# `scripts/langflow.sh --install` only creates/updates .venv-server and exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-server"
UV="$(command -v uv || echo "$ROOT/.tools/bin/uv")"

# Bootstrap the server venv on first use (and whenever the lock changed since the last sync).
# --inexact keeps what the browser test adds on top (playwright, see scripts/ensure_browser.sh).
# pyproject.toml too: entry points are written at install time.
if [[ ! -x "$VENV/bin/langflow" || "$ROOT/uv.lock" -nt "$VENV/.synced" || "$ROOT/pyproject.toml" -nt "$VENV/.synced" ]]; then
    if [[ ! -x "$UV" ]]; then
        "${PYTHON:-python3}" -m venv "$ROOT/.tools"
        "$ROOT/.tools/bin/pip" install --quiet uv
    fi
    echo "langflow.sh: installing full Langflow into $VENV (first run takes a few minutes)" >&2
    (cd "$ROOT" && UV_PROJECT_ENVIRONMENT="$VENV" "$UV" sync --frozen --inexact --extra server --all-groups)
    touch "$VENV/.synced"
fi
[[ "${1:-}" == "--install" ]] && exit 0

export LANGFLOW_CONFIG_DIR="${LANGFLOW_CONFIG_DIR:-$ROOT/.langflow}"
export LANGFLOW_SAVE_DB_IN_CONFIG_DIR="${LANGFLOW_SAVE_DB_IN_CONFIG_DIR:-true}"  # else it lands in site-packages
export LANGFLOW_AUTO_LOGIN=true LANGFLOW_SKIP_AUTH_AUTO_LOGIN=true LANGFLOW_DO_NOT_TRACK=true
mkdir -p "$LANGFLOW_CONFIG_DIR"

run_langflow=("$VENV/bin/langflow" run --host "${LANGFLOW_HOST:-127.0.0.1}" --port "${LANGFLOW_PORT:-7860}")

if [[ -n "${LANGFLOW_CMS_ENDPOINT:-}" ]]; then
    # The caller chose the CMS endpoint (real CMS, or an emulator it runs itself): nothing to supervise.
    exec "${run_langflow[@]}"
fi

emulator_port="${LANGFLOW_CMS_EMULATOR_PORT:-8765}"
"$VENV/bin/python" -m langflow_cms.emulator --port "$emulator_port" &
emulator_pid=$!
export LANGFLOW_CMS_DEV=1 LANGFLOW_CMS_ENDPOINT="http://127.0.0.1:$emulator_port"

# Langflow runs in the background so this shell can forward Ctrl-C/SIGTERM to it (a foreground child would
# defer the trap until it exits) and stop the emulator only after Langflow had its chance to flush.
"${run_langflow[@]}" &
langflow_pid=$!
stop() { kill -TERM "$langflow_pid" 2>/dev/null || true; }
trap stop INT TERM
status=0
wait "$langflow_pid" || status=$?
if kill -0 "$langflow_pid" 2>/dev/null; then  # the wait above was interrupted by the trap
    wait "$langflow_pid" || status=$?
fi
kill -TERM "$emulator_pid" 2>/dev/null || true
wait "$emulator_pid" 2>/dev/null || true
exit "$status"
