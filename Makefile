# The two Quickstart targets. Each creates the virtual environment it needs, so
# both work on a fresh clone: `make demo` (core install with the report extra, for report.html) and
# `make test` (test extras).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= build/demo

.PHONY: demo test quick lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[report]'
	touch $@

# torch is pinned in the extra so pip takes the CPU wheel on disk, not a CUDA build.
$(VENV)/.test: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/fpgac inspect examples/digits_cnn.onnx
	$(BIN)/fpgac build examples/digits_cnn.onnx --board zcu104 --out $(OUT) --calib examples/digits_batch.npy --io stream
	$(BIN)/fpgac sim $(OUT) --input examples/digits_batch.npy --output build/demo_logits.npy --overflow-report

lint: $(VENV)/.test
	$(BIN)/ruff check fpgac tests bench examples
	$(BIN)/ruff format --check fpgac tests bench examples
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile

# The check to run while editing (about 2.5 minutes on 2 cores): ruff, then the unit and golden tests
# not marked slow, without test_build_errors.py (a fresh fpgac process per test).
quick: lint
	$(BIN)/pytest -q -m "not slow" tests/unit tests/golden --ignore=tests/unit/test_build_errors.py
