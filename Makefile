# pcm-sim: one-command setup, tests, demo, benchmark, lint.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.setup-done
APT_PKGS := libopenblas-dev dataset-fashion-mnist

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "apt: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	fi
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q scikit-build pybind11 cmake ninja mypy setuptools wheel
	$(BIN)/python -c "import aihwkit" 2>/dev/null || PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pip install -q --no-build-isolation aihwkit==1.2.0
	$(BIN)/pip install -q --no-build-isolation -e ".[dev,snn]"
	@touch $(STAMP)

test: setup
	$(BIN)/ruff check pcm_sim tests scripts
	$(BIN)/ruff format --check pcm_sim tests scripts
	$(BIN)/mypy
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check pcm_sim tests scripts
	$(BIN)/ruff format --check pcm_sim tests scripts
	$(BIN)/mypy

demo: setup
	$(BIN)/pcm-sim demo --out runs/demo

bench: setup
	$(BIN)/pcm-sim bench --json runs/bench.json

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
