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

.PHONY: install data demo test test-fast bench clean html-check

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

test: install
	$(WITH_POSTGRES) $(PY) -m pytest -q -p no:cacheprovider

test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not ray"

# Judge the HTML reports in a real browser (headless Chromium from Debian; not needed by `make test`, whose browser
# tests skip without it).
html-check: install
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	$(PY) scripts/check_html_reports.py --demo

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
