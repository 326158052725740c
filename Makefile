# The two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# make run PORT=8001: the port the site is served on.
PORT ?= 8000

.PHONY: run test lint format install migrate bench bench-smoke clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements/base.txt requirements/dev.txt
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

## make run: install, migrate, seed the demo data, start and supervise Redis + daphne + Celery worker + beat.
## runplatform prints the demo logins once the site answers.
run: migrate
	$(BIN)/python manage.py seed_demo --verbosity 0
	$(BIN)/python manage.py runplatform --port $(PORT)

## make test: install and run the whole test suite (SQLite + embedded Redis unless told otherwise).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make bench: the benchmark suite on the real stack: baselines and the platform at 1,000 and 3,000 sockets,
## 10,000 idle sockets, issue 7's targets; under 15 minutes on 2 cores (a --budget; docs/benchmarks.md). Not in `make test`.
BENCH_ARGS ?= --write-docs
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

## make bench-smoke: every benchmark scenario with 50 sockets, under a minute (tests/bench/test_smoke.py runs it in `make test`).
bench-smoke: install
	$(BIN)/python -m bench --smoke

clean:
	rm -rf var test-artifacts
