# One command surface. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The ValidateDataset Lambda's layer of compiled parsers: manylinux wheels for the functions' runtime
# and architecture (stacks/parsers_layer.py; a test checks these against the synthesized function).
LAYER_DIR := build/parsers-layer
LAYER_STAMP := build/.parsers-layer.installed
LAMBDA_PYTHON := 3.14
LAMBDA_PLATFORM := manylinux2014_x86_64
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1
CDK := npx --no-install cdk

.PHONY: install synth test lint typecheck unit deploy destroy demo bench clean iam-report iam-snapshot

install: $(STAMP) $(NODE_STAMP) $(LAYER_STAMP)

$(STAMP): requirements.txt requirements-lambda.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing Python packages into $(VENV) (about a minute the first time)..."
	@$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	@$(PY) -m pip install --quiet -r requirements-dev.txt 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	@$(PY) -m pip install --quiet --no-deps -e . 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	@touch $@

# pip --platform picks the Lambda's wheels on any machine, without Docker; --no-compile: the venv's
# Python would write bytecode for its own version, not the runtime's.
$(LAYER_STAMP): requirements-lambda-layer.txt | $(STAMP)
	@echo "Fetching the Lambda layer's parsers (Python $(LAMBDA_PYTHON), $(LAMBDA_PLATFORM)) into $(LAYER_DIR)..."
	@rm -rf $(LAYER_DIR)
	@$(PY) -m pip install --quiet --no-deps --no-compile --require-hashes --only-binary=:all: \
		--implementation cp --python-version $(LAMBDA_PYTHON) --platform $(LAMBDA_PLATFORM) \
		--target $(LAYER_DIR)/python -r requirements-lambda-layer.txt 2>&1 | grep -v "is ignored"; \
		test $${PIPESTATUS[0]} -eq 0
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ with npm is required for the CDK CLI"; exit 1; }
	@echo "Installing the pinned CDK CLI (npm ci)..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

synth: install
	$(CDK) synth --quiet $(CDK_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy app.py stacks lambdas finetune tools

unit: install
	$(VENV)/bin/pytest

test: lint typecheck unit

# Synthesize and write cdk.out/iam-report.md (+ .json) for the account admin's review; takes the same
# CDK_ARGS (-c key=value) as synth and deploy, so it reviews what deploys.
iam-report: install
	$(PY) -m iam_review --json $(CDK_ARGS)

# Rewrite tests/snapshots/iam.json after an intended permission change (review its diff, commit it).
iam-snapshot: install
	$(PY) -m iam_review --snapshot

deploy: install
	$(CDK) deploy $(CDK_ARGS)

destroy: install
	$(CDK) destroy $(CDK_ARGS)

# The real pipeline, offline: synthesize, deploy into the emulation, upload datasets/json-mode, follow.
demo: install
	$(VENV)/bin/finetune local datasets/json-mode

# Four whole-process benchmarks, every figure measured in this run (README, "Benchmarks"):
# cdk synth of the app vs a minimal app (goal <= 1.5x; leaves the app's templates in cdk.out),
# make demo vs the minimal app's cdk synth (goal <= 2.5x; the demo reuses its synthesized template),
# each handler's cold import vs boto3's with an S3 client (goal <= 1.3x), and the validator as a
# whole process vs a json.loads-only process on Claude and Nova files (goal >= 1.0) and its peak RSS
# on a 1 GB file (goal < 256 MB; needs about 1.2 GB of free space in the temporary directory). All four always run; the status is 1 when
# one fails, or (with BENCH_ARGS=--strict) when the synth, import or demo goal is missed.
bench: install
	@status=0; \
	$(PY) bench/synth_bench.py --app-out cdk.out $(BENCH_ARGS) || status=1; \
	$(PY) bench/import_bench.py --cdk-out cdk.out $(BENCH_ARGS) || status=1; \
	$(PY) bench/validator_bench.py || status=1; \
	$(PY) bench/demo_bench.py $(BENCH_ARGS) || status=1; \
	exit $$status

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
