# The two commands of the README. Both work on a fresh machine with python3 and make:
#   make demo   plays the Node SDK's scenarios against the embedded local collector
#   make test   lint, types and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types pytest browser bench tox clean

$(STAMP): pyproject.toml hatch_build.py outlit/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/outlit demo

test: $(STAMP) browser lint types pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy --strict outlit outlit_django outlit_flask outlit_fastapi

# The core's unit tests run twice: with the compiled fast paths (outlit/_speedups.c, built at
# install when a C compiler is present) and without them, as installs without a compiler run.
PURE_PYTHON_TESTS := tests/outlit/test_events.py tests/outlit/test_tracker.py \
	tests/outlit/test_worker.py tests/outlit/test_batch_encoding.py \
	tests/outlit/test_public_api.py tests/outlit/test_speedups.py

pytest: $(STAMP)
	$(BIN)/python -m pytest
	OUTLIT_PURE_PYTHON=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(PURE_PYTHON_TESTS)

# The viewer page test drives Debian's Chromium; install it when missing (as root, like CI).
# If it cannot be installed, that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the viewer page test"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| echo "chromium could not be installed; the browser test will be skipped"; \
		else echo "chromium not installed (needs root and apt-get); the browser test will be skipped"; fi; }

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq wrk >/dev/null) \
		|| echo "wrk not installed: benchmarks/frameworks.py falls back to its Python load generator"; }
	$(BIN)/python benchmarks/track_overhead.py
	$(BIN)/python benchmarks/collector_throughput.py
	@if command -v taskset >/dev/null 2>&1 && [ "$$(nproc)" -ge 2 ]; then \
		$(BIN)/python benchmarks/frameworks.py --pin \
		&& $(BIN)/python benchmarks/frameworks.py --shared --rounds 10 --restarts 2; \
		else $(BIN)/python benchmarks/frameworks.py; fi
	@if command -v valgrind >/dev/null 2>&1; then $(BIN)/python benchmarks/instructions.py --repeat 3 \
		&& $(BIN)/python benchmarks/footprint.py; \
		else echo "valgrind not installed: skipping benchmarks/instructions.py and footprint.py"; fi

# tox finds python3.10 ... python3.13 on PATH; pyenv's installed versions are put there too.
tox: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check tox
	PATH="$$(ls -d $$HOME/.pyenv/versions/3.1[0-3]*/bin 2>/dev/null | tr '\n' ':')$$PATH" $(BIN)/tox run-parallel

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache .outlit
