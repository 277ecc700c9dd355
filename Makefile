# Two commands set up a fresh machine: `make serve` runs the registry, `make test` runs every test.
# `make lint` runs ruff (lint and format check), mypy and the import contracts; `make test` runs it
# first. `make test-fast` runs the in-process unit tests (under a minute).
# `make bench` compares Dockyard with CNCF Distribution side by side (bench/, under 10 minutes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
# Test processes (pytest-xdist). Each test file stays in one process, so a file's shared servers
# start once; files are handed out longest first (tests/support/file_order.py); `ARGS="-n 0"`
# runs the suite in this process alone.
TEST_WORKERS ?= 3

.PHONY: serve test test-fast lint bench peers image-base image clean

serve: $(VENV)/.installed
	$(BIN)/dockyard serve $(ARGS)

# The tests start hundreds of interpreters (servers, their workers, commands): with bytecode
# written once instead of compiled by each, every start is about 0.1 s shorter.
# The image base (.ci/image-base.sh, a debootstrap) is made in the background while the lint and
# the tests run; the image test waits for it, and `make test` fails when it failed.
test: export PYTHONDONTWRITEBYTECODE :=
test: peers $(VENV)/.installed
	PYTHON=$(BIN)/python bash .ci/image-base.sh --background
	$(MAKE) --no-print-directory lint
	status=0; $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS) || status=$$?; \
	bash .ci/image-base.sh --wait || status=1; exit $$status

# The tests marked `unit` (tests/conftest.py gives the markers): no server, no peer program.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m unit $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

bench: peers $(VENV)/.installed
	$(BIN)/python -m bench $(ARGS)

peers:
	bash .ci/install-peers.sh

# What tests/packaging builds the Containerfile from, without Docker Hub: a Debian base made with
# debootstrap (minutes, once) and the dependencies' wheels, in .ci/cache/image (root).
image-base: $(VENV)/.installed
	PYTHON=$(BIN)/python bash .ci/image-base.sh

# The image from this checkout: the wheels in dist/, then buildah (BASE=... to change the base).
BASE ?= docker.io/library/python:3.11-slim-bookworm
image: $(VENV)/.installed
	$(BIN)/python -m pip wheel --quiet --wheel-dir dist . pip
	buildah build --format docker --build-arg BASE=$(BASE) -t localhost/dockyard:0.1.0 .

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
