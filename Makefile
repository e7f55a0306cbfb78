# One command sets everything up and runs the main job; one sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint check bench test-slow gui clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/station demo --out demo-out/$$(date +%Y%m%d-%H%M%S)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# cellpy's fastest engine (cellpycore) needs Python >= 3.13: its own venv (benchmarks/peers.md).
PEER_PYTHON ?= $(lastword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python))
PEER_VENV := benchmarks/.peer-venv

$(PEER_VENV)/.installed:
	@if [ -n "$(PEER_PYTHON)" ]; then \
		$(PEER_PYTHON) -m venv $(PEER_VENV) && \
		$(PEER_VENV)/bin/python -m pip install --quiet cellpycore && touch $@; \
	else echo "bench: no Python 3.13 for the cellpy peer; see benchmarks/peers.md"; fi

bench: $(STAMP) $(PEER_VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m benchmarks.run_all

test-slow: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m slow

gui: $(STAMP)
	$(BIN)/station gui --sim

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
