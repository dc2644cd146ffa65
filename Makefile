# The README's two commands: `make demo` and `make test`. Each creates or refreshes .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

# Re-install when the dependency list changes; torch is pinned ==2.13.0 (the CPU wheel on disk).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/beth demo

test: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
