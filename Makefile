# Each target bootstraps its own virtual environment in .venv.
# torch is pinned here (a CPU build lies on the development machines); pyproject keeps a range.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH_PIN)"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m spiketune.demo

test: $(STAMP)
	$(PY) -m ruff check spiketune tests benchmarks examples
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check spiketune tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/snn_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
