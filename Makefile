# One entry point for every check: CI calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# What `make install` adds to the server: dev tools; CI adds the ray extra (its tests).
EXTRAS ?= dev
LINT_PATHS := src tests $(wildcard bench) $(wildcard examples)

.PHONY: install serve test check lint format typecheck bench clean cluster

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/qruntime serve $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)

format: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Two servers on one PostgreSQL and a two-node Ray cluster, on 127.0.0.1 (root; see README).
cluster: $(STAMP)
	$(BIN)/python deploy/cluster.py $(if $(CMD),--cmd "$(CMD)",)

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY),)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
