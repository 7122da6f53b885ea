# makegood — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help demo test unit faults setup stack down status bench wheel clean browser

help:  ## this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: setup  ## the main job: local stack up, topics, workers, the reference incident end to end, report
	$(BIN)/makegood demo

test: setup  ## everything from scratch: venv, packages, Kafka jars, Redis, broker, schema registry, topics + schemas, then all tests
	$(BIN)/makegood dev up
	$(BIN)/makegood topics create
	$(BIN)/python -m pytest tests -q

unit: setup  ## unit tests only (no Kafka, no Redis)
	$(BIN)/python -m pytest tests/unit -q

faults: setup  ## the whole fault suite (kills, pauses, broker and Redis restarts, rebuild, fuzz), one line per run
	$(BIN)/makegood dev up
	$(BIN)/python -m pytest tests/faults --faults -q

bench: setup  ## benchmarks under bench/ on the local stack, Kafka Streams peer included (builds bench/kstreams with Maven; long)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/makegood dev up
	$(BIN)/python -m bench

wheel: setup  ## dist/makegood-<version>-py3-none-any.whl: the code plus schemas, topics, policies (README "Install")
	rm -rf build dist
	$(BIN)/pip wheel --no-deps -q -w dist .
	@ls dist/*.whl

browser:  ## Debian's headless Chromium, for the HTML report's layout test at 700 and 1400 px (skipped without it)
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

setup: $(STAMP)  ## venv with makegood and its dev dependencies

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python >= 3.11) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

stack: setup  ## start Kafka, Redis and the schema registry (idempotent; builds the registry on first run)
	$(BIN)/makegood dev up

down: setup  ## stop what `make stack` started
	$(BIN)/makegood dev down

status: setup  ## show the local stack
	$(BIN)/makegood dev status

clean:  ## stop the stack and remove its data (keeps the venv and jars)
	-$(BIN)/makegood dev down
	rm -rf .stack
