# The two commands of the README:
#   make run    set up what running needs (setup-run), then ComfyUI with the pack on http://$(HOST):$(PORT)
#   make test   set up what testing needs too (setup: test tools, browser), then lint and every test tier
# COMFYUI_PATH=/path/to/ComfyUI points both at an existing ComfyUI checkout instead of the cached 0.30.0.

HOST ?= 127.0.0.1
PORT ?= 8188
PYTEST_ARGS ?=
# pytest-xdist workers for make test: the core tier is spread over them, the host and browser tiers share one
# worker and its one ComfyUI server (tests/conftest.py). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
# Forced CPU code paths for make test-parity (scripts/parity_matrix.py: CAPABILITY:THREADS ...).
PARITY_CONFIGS ?= default:1
VENV := .venv
PY := $(VENV)/bin/python
COMFY = $(shell cat .cache/comfyui_path)

.PHONY: setup setup-run setup-compat run test test-core test-host test-e2e test-parity lint bench clean-fixtures models

# What the tests need: setup-run's part plus the test tools and a browser (LLMGA_SKIP_BROWSER=1 skips it).
setup:
	@bash scripts/setup_host.sh test

# What `make run` needs: venv, ComfyUI host, ComfyUI's and the pack's requirements, the custom_nodes link.
setup-run:
	@bash scripts/setup_host.sh run

run: setup-run
	cd "$(COMFY)" && exec "$(CURDIR)/$(PY)" main.py --listen $(HOST) --port $(PORT) \
		$$("$(CURDIR)/$(PY)" -c 'import torch; print("" if torch.cuda.is_available() else "--cpu")') $(COMFY_ARGS)

# The older ComfyUIs (0.16.3, 0.18.2) and the newest frontend the compatibility tests run against.
setup-compat: setup
	@bash scripts/setup_compat.sh

lint: setup
	$(VENV)/bin/ruff check .

# Ends with a time-per-tier table and the 20 slowest tests.
test: lint setup-compat
	$(PY) -m pytest tests -n $(TEST_WORKERS) --durations=20 $(PYTEST_ARGS)

test-core: setup
	$(PY) -m pytest tests/core $(PYTEST_ARGS)

test-host: setup setup-compat
	$(PY) -m pytest tests/host $(PYTEST_ARGS)

test-e2e: setup setup-compat
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# The numeric parity tests (pytest -m parity) under forced SIMD paths, with a deviation/bound table.
test-parity: setup
	$(PY) scripts/parity_matrix.py $(PARITY_CONFIGS)

# The CPU benchmark set (ratios side by side; results in bench/results/*.json, figures in BENCHMARKS.md).
bench: setup
	$(PY) bench/lpw_encode.py
	$(PY) bench/graphs.py
	$(PY) bench/inpaint_sampler.py
	$(PY) bench/edit.py --steps 50 --repeats 3
	$(PY) bench/diffrir_tiling.py deviation
	$(PY) bench/mllm_decode.py
	$(PY) bench/remote_mllm.py

clean-fixtures:
	rm -rf .cache/fixtures

# Fetch LLMGA weights into the host's models folder: make models NAMES="llmga-Qwen2-0.5B-full-finetune"
models: setup-run
	$(PY) -m llmga_core.download --models-dir "$(COMFY)/models" $(NAMES)
