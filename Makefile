# Two entry points: `make run` (the app) and `make test` (the suite). Both create .venv on
# first use and install the pinned tree from requirements.lock, so a fresh machine needs only
# Python 3.11+, make and the package index.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.perpscope-installed
ARGS ?=

.PHONY: run test lint bench install clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "perpscope needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/perpscope $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The depth benchmark compares against cryptofeed, which pins its own dependency tree: it runs
# from .venv-bench (created here on first use, gitignored), never from .venv.
BENCH_VENV ?= .venv-bench
bench: $(STAMP)
	@test -x $(BENCH_VENV)/bin/python || ($(PYTHON) -m venv $(BENCH_VENV) && \
		$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check cryptofeed==2.4.1)
	$(PY) -m bench
	CRYPTOFEED_PYTHON=$(BENCH_VENV)/bin/python $(PY) -m bench.depth

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
