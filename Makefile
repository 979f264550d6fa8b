# codebench: every target sets itself up (a local .venv, CPU torch pinned first).
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.codebench-installed
PROFILE  ?= params/smoke.yaml
PYTEST_ARGS ?=
# Benchmark data: the profile's data_dir, else $CODEBENCH_DATA, else ../shared/data.
CODEBENCH_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export CODEBENCH_DATA
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup reproduce test test-slow lab bench lint format clean

help:
	@echo "make reproduce [PROFILE=params/smoke.yaml]  run every stage, write figures/<profile>/"
	@echo "make test                                    run the test suite (sets up .venv)"
	@echo "make test-slow                               also run tests marked slow"
	@echo "make lab                                     JupyterLab on notebooks/ with the codebench kernel"
	@echo "make bench                                   speed comparisons in benchmarks/ (prints ratios)"

setup: $(STAMP)

# Idempotent: reruns only when pyproject.toml or the lock file change.
$(STAMP): pyproject.toml requirements/lock.txt
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "codebench needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "[setup] installing torch==2.13.0 (CPU) first, then the pinned environment"
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[dev,codebleu]'
	$(BIN)/python -m ipykernel install --sys-prefix --name codebench --display-name "Python (codebench)" >/dev/null
	@touch $@

reproduce: $(STAMP)
	$(BIN)/codebench reproduce $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

lab: $(STAMP)
	cd notebooks && ../$(BIN)/jupyter lab --ServerApp.kernel_spec_manager_class=jupyter_client.kernelspec.KernelSpecManager

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check lib tests benchmarks
	$(BIN)/ruff format --check lib tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format lib tests benchmarks
	$(BIN)/ruff check --fix lib tests benchmarks

clean:
	rm -rf runs .pytest_cache
