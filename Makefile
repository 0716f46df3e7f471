PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo test lint format up down worker clean

install: $(INSTALLED)

# Re-install whenever the pinned dependencies change.
$(INSTALLED): pyproject.toml
	@echo "creating $(VENV) and installing casework with its pinned dependencies (about a minute the first time) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	@echo "installed into $(VENV)"
	touch $@

demo: install
	@echo "== starting the embedded stack (Temporal dev server, sandbox, worker, review queue) =="
	$(BIN)/casework up
	@echo "== running the demo cases =="
	$(BIN)/casework demo

# The suite starts hundreds of Python processes (CLIs, workers, the sandbox). Compiling the
# project once here lets each of them load bytecode even where PYTHONDONTWRITEBYTECODE is set.
test: install lint
	$(BIN)/python -m compileall -q casework workflows activities policies workers sandbox demos evals reliability bench tests >/dev/null
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

up: install
	$(BIN)/casework up

down: install
	$(BIN)/casework down

worker: install
	$(BIN)/casework worker

clean:
	-$(BIN)/casework down
	rm -rf $(VENV) .casework

# Benchmarks (bench/README.md): not part of `make test`. Each run starts its own dev server.
.PHONY: bench bench-quick
# BENCH_ARGS, e.g. "--work-dir /dev/shm": see `python -m bench --help`.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: install
	$(BIN)/python -m bench --quick

# Reliability (docs/reliability.md): faults, bad input, restarts. The CI size of the fault
# suite and the bad-input matrix run inside `make test`; these are the full sizes.
.PHONY: reliability reliability-load
reliability: install
	$(BIN)/python -m reliability all --size full

reliability-load: install
	$(BIN)/python -m reliability faults --size load
	$(BIN)/python -m reliability waiting --cases 10000
