# Two commands set up a fresh machine: `make serve` runs the registry, `make test` runs every test.
# `make bench` compares Dockyard with CNCF Distribution side by side (bench/, under 10 minutes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: serve test lint bench peers clean

serve: $(VENV)/.installed
	$(BIN)/dockyard serve $(ARGS)

test: peers $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench

bench: peers $(VENV)/.installed
	$(BIN)/python -m bench $(ARGS)

peers:
	bash .ci/install-peers.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
