# Slipstream: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := ffmpeg chromium
STAGE ?= prod

.PHONY: demo test deps system-deps lint unit functional integration localstack localstack-venv bench deploy destroy clean

# LocalStack on the host (no Docker): localstack-core in its own Python 3.13 venv with the project's
# Lambda executor plugin (devtools/localstack_executor). LOCALSTACK_PY: pyenv's 3.13.0, else a python3.13
# on PATH that runs (a pyenv shim for a version not selected does not).
LOCALSTACK_VERSION := 2026.3.0
LOCALSTACK_VENV ?= .venv-localstack
ifndef LOCALSTACK_PY
LOCALSTACK_PY := $(shell for p in $(HOME)/.pyenv/versions/3.13.0/bin/python python3.13; do \
  "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { command -v "$$p"; break; }; done)
endif
LOCALSTACK_STAMP := $(LOCALSTACK_VENV)/.installed
# The LocalStack CI stage: these files run again with SLIPSTREAM_AWS=localstack after the main suite.
LOCALSTACK_TESTS := tests/integration/localaws/test_localstack.py tests/integration/localaws/test_localaws_project.py \
	tests/integration/localaws/test_localaws_skeleton.py tests/integration/test_lifecycle_e2e.py \
	tests/integration/pipeline/test_pipeline_live.py tests/integration/deploy/test_deploy_localstack.py

## demo: install what is missing, start the emulated AWS stack, deploy, run a live channel, print the player URL
demo: deps
	$(BIN)/python -m devtools.demo

## test: install what is missing and run the whole suite (lint, types, unit, functional, integration, browser)
test: deps
	$(BIN)/ruff check .
	$(BIN)/mypy chalicelib devtools slipstream_cli bench infra layers app.py
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15 -m "not realtime" tests
	@# Real-time tests (live pipeline, players, the fault soak) alone: they must not share the CPU.
	start=$$(date +%s) && $(BIN)/python -m pytest -p no:xdist --durations=25 --durations-min=5 -m realtime tests && \
	  echo "real-time stage: finished in $$(( $$(date +%s) - start )) s"
	$(MAKE) --no-print-directory localstack

deps: system-deps $(STAMP) web/node_modules/.installed

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages:$$missing -- run: sudo apt-get install -y$$missing" >&2; exit 1; fi; fi

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

web/node_modules/.installed: web/package.json
	cd web && npm install --no-audit --no-fund --loglevel=error
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/mypy chalicelib devtools slipstream_cli bench infra layers app.py

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit
functional: $(STAMP)
	$(BIN)/python -m pytest tests/functional
## integration: the integration suite on the built-in emulator; SLIPSTREAM_AWS=localstack runs it on LocalStack
integration: deps $(if $(and $(filter localstack,$(SLIPSTREAM_AWS)),$(LOCALSTACK_PY)),$(LOCALSTACK_STAMP))
	$(BIN)/python -m pytest tests/integration

## localstack: the LocalStack stage of `make test` (skips, saying why, only when Python 3.13 is missing)
localstack: deps
	@if [ -z "$(LOCALSTACK_PY)" ]; then \
	  echo "LocalStack stage skipped: Python 3.13 not found (looked for $(HOME)/.pyenv/versions/3.13.0/bin/python and a working python3.13 on PATH); localstack-core $(LOCALSTACK_VERSION) needs it"; \
	else \
	  $(MAKE) --no-print-directory $(LOCALSTACK_STAMP) && \
	  start=$$(date +%s) && SLIPSTREAM_AWS=localstack $(BIN)/python -m pytest -p no:xdist --durations=15 --durations-min=5 $(LOCALSTACK_TESTS) && \
	  echo "LocalStack stage: finished in $$(( $$(date +%s) - start )) s"; \
	fi

localstack-venv: $(LOCALSTACK_STAMP)
$(LOCALSTACK_STAMP): devtools/localstack_executor/pyproject.toml devtools/localstack_executor/constraints.txt
	@test -n "$(LOCALSTACK_PY)" || { echo "Python 3.13 not found: install it (pyenv install 3.13.0) or set LOCALSTACK_PY" >&2; exit 1; }
	test -x $(LOCALSTACK_VENV)/bin/python || $(LOCALSTACK_PY) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install -q --disable-pip-version-check -c devtools/localstack_executor/constraints.txt ./devtools/localstack_executor
	$(LOCALSTACK_VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps ./devtools/localstack_executor
	@# The plugin's code is the repo's devtools package: put the repo on LocalStack's path (appended, after site-packages).
	echo "$(CURDIR)" > "$$($(LOCALSTACK_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/slipstream-repo.pth"
	rm -rf devtools/localstack_executor/build devtools/localstack_executor/*.egg-info
	touch $@

## bench: speed/memory ratios against same-run baselines
bench: deps
	$(BIN)/python -m bench

## deploy: STAGE=dev|prod into AWS; STAGE=lsdeploy into LocalStack at AWS_ENDPOINT_URL (docs/deploy.md)
# Only the venv (chalice, cfn-lint): deploying needs neither ffmpeg, Chromium nor node.
deploy: $(STAMP)
	STAGE=$(STAGE) bash infra/deploy.sh
destroy: $(STAMP)
	STAGE=$(STAGE) bash infra/destroy.sh

clean:
	rm -rf $(VENV) $(LOCALSTACK_VENV) web/node_modules .demo .localaws .localstack layers/ffmpeg/build
