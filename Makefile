# The two commands a newcomer needs:  `make run` (the main job, offline)  and  `make test`.
SHELL := bash
VENV := .venv
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup run test test-fast lint format-check types pr synth deploy destroy clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml package.json package-lock.json scripts/setup.sh
	scripts/setup.sh

setup: $(STAMP)

## The main job on the embedded default: the local twin (data, tuning, training, gate, endpoint, API, web page).
run: $(STAMP)
	$(VENV)/bin/bincount up

## Everything: lint, unit, training, serving, CDK template and state-machine tests.
test: $(STAMP)
	$(VENV)/bin/pytest

## The quick loop: the unit tests (no training, no servers, no CDK synthesis).
test-fast: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

format-check: $(STAMP)
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy

## Lint: ruff (rules and format) and the type checker (mypy, configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

## Before a pull request: format check, lint, types, then every test.
pr: format-check lint types test

synth: $(STAMP)
	npx cdk synth --quiet

deploy: $(STAMP)
	npx cdk deploy

destroy: $(STAMP)
	npx cdk destroy

clean:
	rm -rf cdk.out runs .pytest_cache .ruff_cache
