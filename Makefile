# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EXTRAS ?= dev,plot,ray,postgres
# The ledger tests run on PostgreSQL as well as SQLite: scripts/with_postgres.sh installs Debian's server when it is
# missing, starts a throwaway cluster (127.0.0.1, a free port), sets OBLIVIO_TEST_PG_URL for the command and stops the
# server at the end, even on failure. `make test WITH_POSTGRES=` runs without it (those tests then skip, saying why).
WITH_POSTGRES ?= scripts/with_postgres.sh

.PHONY: install data demo test test-fast lint wheel-smoke bench clean html-check

LINT_PATHS := src tests benchmarks scripts

install: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of PyTorch first: an unpinned `torch` would pull several GB of CUDA packages.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $@

data: $(FASHION_MNIST)

$(FASHION_MNIST):
	# Fashion-MNIST (MIT licence) from Debian's dataset-fashion-mnist package.
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist
	test -f $@

demo: install
	$(VENV)/bin/oblivio demo

# CI runs this: the lint and the type check first (seconds), then the built wheel in a fresh venv, then the suite.
test: install lint wheel-smoke
	$(WITH_POSTGRES) $(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not ray"

# ruff (lint + format check) and mypy (scripts/check_types.py: no error outside scripts/mypy_pending.txt).
lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(PY) scripts/check_types.py

# Build the sdist and the wheel (setuptools deprecations are errors), install the wheel into a fresh venv outside the
# tree and smoke-test it there.
wheel-smoke: install
	bash scripts/smoke_wheel.sh $(PY)

# Headless Chromium (Debian's package) for the browser tests of the HTML reports, installed when missing, like the
# dataset. `make test` needs it: with OBLIVIO_REQUIRE_BROWSER=1 a missing browser fails those tests instead of
# skipping them (run pytest directly to skip them with the reason). Measured: the install takes about 40 s.
BROWSER_PKGS := chromium fonts-dejavu-core

.PHONY: browser
browser:
	@command -v chromium >/dev/null || { t0=$$(date +%s); $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(BROWSER_PKGS) >/dev/null && \
		echo "installed $(BROWSER_PKGS) in $$(( $$(date +%s) - t0 )) s"; }
	@echo "browser for the report tests: $$(chromium --version 2>/dev/null)"

test: browser
test: export OBLIVIO_REQUIRE_BROWSER := 1

# Judge every kind of HTML report in the browser and keep the screenshots to look at (screenshots/).
html-check: install browser
	$(PY) scripts/check_html_reports.py --demo --keep screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
