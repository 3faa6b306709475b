# Each target bootstraps its own virtual environment in .venv.
# torch is pinned here (a CPU build lies on the development machines); pyproject keeps a range.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
# Norse (an NIR importer the export is tested against) without its dependencies: it declares
# torchvision, which would replace the pinned torch; from_nir needs only torch and nir.
NORSE_PIN ?= norse==1.1.0
STAMP := $(VENV)/.installed
# The Braille event file for `make demo` and the tests that need real data: the shared data
# directory beside the checkout when it is there (else the demo downloads into spiketune's
# cache, and those tests skip, saying why). Override: make demo BRAILLE_DATA=/path/to/braille
BRAILLE_DATA ?= $(abspath ../shared/data/braille)
DATA_ENV := $(if $(wildcard $(BRAILLE_DATA)),SPIKETUNE_BRAILLE_DATA=$(BRAILLE_DATA))
# The threshold-1 pool (the published use case's encoding): the demo's data when it is there.
BRAILLE_TH1_DATA ?= $(abspath ../shared/data/braille_th1)
TH1_ENV := $(if $(wildcard $(BRAILLE_TH1_DATA)),SPIKETUNE_BRAILLE_TH1_DATA=$(BRAILLE_TH1_DATA))
DEMO_DATA := $(if $(wildcard $(BRAILLE_TH1_DATA)),$(BRAILLE_TH1_DATA),$(if $(DATA_ENV),$(BRAILLE_DATA)))

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH_PIN)"
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m pip install --no-deps "$(NORSE_PIN)"
	touch $(STAMP)

demo: $(STAMP)
	$(DATA_ENV) $(PY) -m spiketune.demo $(if $(DEMO_DATA),--data $(DEMO_DATA))

test: $(STAMP)
	$(PY) -m ruff check spiketune tests benchmarks examples
	$(DATA_ENV) $(TH1_ENV) $(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check spiketune tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/snn_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
