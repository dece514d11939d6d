# keras-zoo: `make demo` and `make test` set everything up, then run. Both are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Python 3.11 first, else the newest supported 3.10-3.12 found.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.10 python3; do \
	  v=$$($$p -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue; \
	  case $$v in (3.10|3.11|3.12) echo $$p; exit 0;; esac; done)

.PHONY: setup demo test docs data clean

setup: $(STAMP) data

$(STAMP): setup.cfg pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.10-3.12 found (tried python3.11, python3.12, python3.10, python3)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Real Fashion-MNIST from Debian, when we are root with apt; otherwise loaders fall back to TFDS.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } || \
	  echo "note: could not install dataset-fashion-mnist; loaders will fall back to TFDS"; \
	else echo "note: not root or no apt; Fashion-MNIST loaders will fall back to TFDS"; fi

demo: setup
	$(PY) -m zoo.demo

test: setup
	$(PY) -m pytest -q -n auto --durations=15 tests --doctest-modules zoo training export

# The model table: measured cards shipped in the package, then docs/models.md from them; docs/pretrained.md
# from the shipped weights' metadata (zoo/weights/*.json).
docs: $(STAMP)
	$(PY) -c "from zoo._registry import write_cards; print(write_cards())"
	$(PY) -m zoo.cli docs --out docs/models.md
	$(PY) -m zoo.cli docs --page pretrained --out docs/pretrained.md

clean:
	rm -rf $(VENV) build *.egg-info
