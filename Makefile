# The two commands a fresh machine needs: `make run` and `make test`.
# `make run ARGS="--port 8001"` passes options to `spool dev`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint format typecheck check bench clean browser-deps

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Spool needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e clients/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/spool dev $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Debian's Chromium for the browser test (Playwright drives it; no browser download).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# mypy cannot follow setuptools' editable finder, so it reads the `spool` package through a
# tree of symlinks that mirrors the package-dir mapping in pyproject.toml.
TYPECHECK_DIRS := api worker shared cli
typecheck: $(STAMP)
	@mkdir -p .typecheck/spool
	@for d in $(TYPECHECK_DIRS); do ln -sfn ../../$$d .typecheck/spool/$$d; done
	MYPYPATH=.typecheck:clients/python $(VENV)/bin/mypy -p spool -p spool_client

check: lint typecheck test

# The benchmark (docs/benchmarks.md): spawns an embedded Redis, an API, a worker and the
# direct baseline on free ports. BENCH_ARGS adds or overrides options, e.g. --clients 2000.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e clients/python -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(VENV)/bin/spool bench --spawn $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .spool .typecheck .mypy_cache .ruff_cache .pytest_cache *.egg-info
