# codebench: every target sets itself up (a local .venv, the torch build that fits the machine).
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
# torch: TORCH=auto installs the CUDA build when `nvidia-smi` sees a GPU, else the CPU build;
# TORCH=cpu or TORCH=cuda forces one. The CPU build comes from pip's own sources when they
# hold one (a local wheel or index: `torch==2.13.0+cpu`, no network), else from
# TORCH_CPU_INDEX (~200 MB, instead of the multi-GB CUDA build PyPI serves on Linux).
TORCH_VERSION   := 2.13.0
TORCH           ?= auto
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: help setup check-system reproduce grpo test test-slow lab kernel bench lint format clean

help:
	@echo "make setup [TORCH=auto|cpu|cuda]             .venv with the torch build for this machine; checks system packages"
	@echo "make reproduce [PROFILE=params/smoke.yaml]  run every stage, write figures/<profile>/"
	@echo "make grpo                                    GRPO smoke run (params/grpo-smoke.yaml): base / SFT / GRPO on pyfamilies"
	@echo "make test                                    run the test suite (sets up .venv)"
	@echo "make test-slow                               also run tests marked slow"
	@echo "make lab                                     JupyterLab at the project root (runs/, figures/, notebooks/)"
	@echo "make kernel                                  list the codebench kernel in your own Jupyter (ipykernel install --user)"
	@echo "make bench                                   speed comparisons in benchmarks/ (prints ratios)"

setup: $(STAMP) check-system

# Idempotent: reruns only when pyproject.toml or the lock file change.
$(STAMP): pyproject.toml requirements/lock.txt
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "codebench needs Python 3.11+, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@set -e; build="$(TORCH)"; \
	if [ "$$build" = auto ]; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then build=cuda; else build=cpu; fi; \
	fi; \
	if [ "$$build" = cuda ]; then \
	  echo "[setup] NVIDIA GPU: torch==$(TORCH_VERSION) with CUDA, then the pinned environment"; \
	  $(BIN)/python -m pip install -q torch==$(TORCH_VERSION); \
	else \
	  echo "[setup] no NVIDIA GPU: the CPU build of torch==$(TORCH_VERSION), then the pinned environment"; \
	  $(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	  || $(BIN)/python -m pip install -q torch==$(TORCH_VERSION) --index-url $(TORCH_CPU_INDEX); \
	fi
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[dev,codebleu]'
	$(BIN)/python -m ipykernel install --sys-prefix --name codebench --display-name "Python (codebench)" >/dev/null
	@$(BIN)/python -c 'import torch; print("[setup] torch", torch.__version__, "with CUDA" if torch.cuda.is_available() else "(CPU)")'
	@touch $@

# System packages the profile needs: bubblewrap (the sandbox) and the runtimes of the
# languages its benchmarks evaluate. Prints the one apt command that installs what is missing.
check-system:
	@missing=""; found=""; \
	need() { if command -v "$$1" >/dev/null 2>&1; then found="$$found $$1"; else missing="$$missing $$2"; fi; }; \
	need bwrap bubblewrap; \
	for b in $$(sed 's/#.*//' $(PROFILE) | tr -s " ,[]'\"" '\n' | grep '^multiple-'); do \
	  case "$$b" in \
	    multiple-js) need node nodejs ;; \
	    multiple-cpp) need g++ g++ ;; \
	    multiple-java) need javac default-jdk-headless ;; \
	    multiple-sh) need bash bash ;; \
	  esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "[setup] $(PROFILE) needs system packages that are missing:$$missing"; \
	  echo "[setup] install them with:  sudo apt-get install -y$$missing"; \
	else echo "[setup] system packages for $(PROFILE): ok ($$(echo $$found | tr ' ' ' '))"; fi

reproduce: $(STAMP)
	$(BIN)/codebench reproduce $(PROFILE)

# GRPO with sandbox rewards on the tiny model (CPU): base, SFT and GRPO scored on held-out
# pyfamilies (docs/grpo.md). Same as `make reproduce PROFILE=params/grpo-smoke.yaml`.
grpo: $(STAMP)
	$(BIN)/codebench reproduce params/grpo-smoke.yaml

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

# At the project root, so runs/, figures/ and each report open from the file browser; the
# notebooks' defaults read runs/smoke (what `make reproduce` wrote). Works for root too.
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" \
	  --ServerApp.kernel_spec_manager_class=jupyter_client.kernelspec.KernelSpecManager \
	  $(if $(filter 0,$(shell id -u)),--allow-root,)

# The kernel for a Jupyter outside .venv (your own JupyterLab, VS Code): installed for the user
# (~/.local/share/jupyter/kernels/codebench), running .venv's Python. Same as
# `.venv/bin/python -m ipykernel install --user --name codebench --display-name "Python (codebench)"`.
kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name codebench --display-name "Python (codebench)"

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
