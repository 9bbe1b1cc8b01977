# The two Quickstart targets. Each creates the virtual environment it needs, so
# both work on a fresh clone: `make demo` (core install) and `make test` (test extras).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= build/demo

.PHONY: demo test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# torch is pinned in the extra so pip takes the CPU wheel on disk, not a CUDA build.
$(VENV)/.test: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	mkdir -p $(OUT)
	$(BIN)/fpgac inspect examples/digits_cnn.onnx
	$(BIN)/fpgac sim examples/digits_cnn.onnx --input examples/digits_batch.npy --output $(OUT)/logits.npy

lint: $(VENV)/.test
	$(BIN)/ruff check fpgac tests examples
	$(BIN)/ruff format --check fpgac tests examples

test: lint
	$(BIN)/pytest -q
