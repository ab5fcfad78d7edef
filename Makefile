# Two commands: `make demo` renders a video, `make test` runs the mutation check (scripts/check_mutants.py: each
# known one-line bug applied to a copy must make its targeted tests fail), then the whole suite. `make lint`: ruff.
# Both create or reuse .venv/ and, unless COMFYUI_DIR points at an existing ComfyUI, a pinned host in .comfyui/.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup lint test test-core demo bench clean

setup:
	bash scripts/setup_env.sh

lint: setup
	$(PY) -m ruff check .

test: setup
	bash scripts/setup_browser.sh
	bash scripts/setup_api_clients.sh
	bash scripts/setup_tools.sh
	COMFYUI_DIR="$(COMFYUI_DIR)" $(PY) scripts/check_mutants.py
	COMFYUI_DIR="$(COMFYUI_DIR)" $(PY) -m pytest -q $(PYTEST_ARGS)

test-core: setup
	COMFYUI_DIR="$(COMFYUI_DIR)" $(PY) -m pytest -q tests/core $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py $(DEMO_ARGS)

bench: setup
	$(PY) bench/bench_models.py $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-tools .comfyui .pytest_cache .transformers
