# The two commands a newcomer needs:  `make run` (the main job, offline)  and  `make test`.
SHELL := bash
VENV := .venv
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: setup run test lint synth clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml package.json package-lock.json scripts/setup.sh
	scripts/setup.sh

setup: $(STAMP)

## The main job on the embedded default: train on the vendored real photos, like SageMaker would.
run: $(STAMP)
	$(VENV)/bin/bincount train

## Everything: lint, unit, training, serving, CDK template and state-machine tests.
test: $(STAMP)
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

synth: $(STAMP)
	npx cdk synth --quiet

clean:
	rm -rf cdk.out runs .pytest_cache .ruff_cache
