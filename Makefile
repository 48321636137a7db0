# riskfusion: `make demo` runs the product, `make test` runs every check (see README).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PORT ?= 8501
BIN := $(VENV)/bin

.PHONY: demo serve test bench lint format clean-artifacts

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned, so nothing later pulls a CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e . "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]" "$(TORCH_SPEC)"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/riskfusion demo --port $(PORT)

serve: $(VENV)/.installed
	$(BIN)/riskfusion serve --port $(PORT)

bench: $(VENV)/.installed
	$(BIN)/riskfusion bench

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(VENV)/.installed-dev
	bash .ci/ensure-services
	$(MAKE) lint
	$(BIN)/pytest

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-artifacts:
	rm -rf artifacts
