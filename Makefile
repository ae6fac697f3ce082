# Two commands (see README):  make reproduce   |   make test
# Both create .venv if missing and install everything into it; only python3 and pip are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.isg-installed
# torch/torchvision pinned to the builds this project is tested with (installed from local wheels here)
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install samples cohort reproduce test test-fast notebooks clean-data

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (isg)" >/dev/null
	@touch $(STAMP)

install: $(STAMP)

samples: install
	$(BIN)/isg fetch-samples

cohort: samples
	$(BIN)/isg simulate --profile $(or $(PROFILE),quick)

# The paper's pipeline end to end on the embedded (simulated) cohort, at the quick profile.
reproduce: cohort
	$(BIN)/isg reproduce --profile quick

# Lint (ruff, settings in pyproject.toml), unit tests, every notebook under nbval at smoke, then every
# notebook end to end with papermill at smoke (as `make reproduce` runs them), into a temporary folder.
test: samples
	$(BIN)/ruff check .
	$(BIN)/isg simulate --profile smoke
	ISG_PROFILE=smoke $(BIN)/python -m pytest -q tests --nbval-lax notebooks
	d=$$(mktemp -d) && $(BIN)/isg reproduce --profile smoke --out $$d; rc=$$?; rm -rf $$d; exit $$rc

# Unit tests only (no notebooks).
test-fast: samples
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests -m "not slow"

# Maintainers: re-execute the notebooks at quick and store their outputs in notebooks/.
notebooks: cohort
	$(BIN)/isg reproduce --profile quick --in-place

clean-data:
	rm -rf data/cohorts data/work results/notebooks
