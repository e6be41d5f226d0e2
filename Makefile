# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# uv is bootstrapped into .tools/ with pip when it is not on PATH; the project venv is .venv/.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: all venv demo docs-images test test-fast test-deps bench lint emulator langflow screenshots clean

all: test

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups
	touch $@

venv: $(VENV)/.synced

# The chart goes to build/ (ignored): `make demo` leaves the checkout as it found it.
demo: venv
	$(PY) -m langflow_cms.ops.demo --chart build/latency.png

# Refreshes the demo chart the README shows (a tracked file: commit it when it changed on purpose).
docs-images: venv
	$(PY) -m langflow_cms.ops.demo --chart docs/images/latency.png

# The whole suite, as CI runs it: the tests spread over TEST_WORKERS pytest-xdist workers (those sharing the
# Langflow server or the wheel build stay in one worker: their xdist_group, set in tests/conftest.py), then
# the `serial` tests (exit and signal timing under load) alone. Both parts always run; either failing fails.
TEST_WORKERS ?= 3
PARALLEL_TESTS := -m "not serial" -n $(TEST_WORKERS) --dist loadgroup
SERIAL_TESTS := -m serial
# What the real-server tests need, made before the xdist workers start, so that two workers never run
# apt-get or create .venv-server at the same time (each script returns at once when its part is there).
test-deps: venv
	scripts/langflow.sh --install
	scripts/ensure_browser.sh
	scripts/ensure_postgres.sh

test: venv lint test-deps
	status=0; \
	$(PY) -m pytest -q --durations=20 $(PARALLEL_TESTS) || status=$$?; \
	$(PY) -m pytest -q --durations=5 $(SERIAL_TESTS) || status=$$?; \
	exit $$status

# The inner loop: every in-process test (no Langflow server, browser, wheel build or minute wait), minutes.
# A test that needs more is marked `slow` (or `server`/`wheel`, which imply it): see tests/conftest.py.
test-fast: venv
	status=0; \
	$(PY) -m pytest -q --durations=10 -m "not slow and not serial" -n $(TEST_WORKERS) || status=$$?; \
	$(PY) -m pytest -q --durations=5 -m "serial and not slow" || status=$$?; \
	exit $$status

bench: venv
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

emulator: venv
	$(VENV)/bin/langflow-cms emulator --port $${LANGFLOW_CMS_EMULATOR_PORT:-8765}

langflow: venv
	scripts/langflow.sh

# The browser test (real Langflow 1.13 + Chromium) keeps its screenshots in docs/images only when asked.
screenshots: venv
	LANGFLOW_CMS_SCREENSHOTS=$(CURDIR)/docs/images $(PY) -m pytest -q -p no:cacheprovider tests/test_browser.py tests/test_browser_runtime.py tests/test_guard_server.py

clean:
	rm -rf $(VENV) .venv-server .langflow .tools .pytest_cache
