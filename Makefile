# Slipstream: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := ffmpeg chromium
STAGE ?= prod

.PHONY: demo test deps system-deps lint unit functional integration bench deploy destroy clean

## demo: install what is missing, start the emulated AWS stack, deploy, run a live channel, print the player URL
demo: deps
	$(BIN)/python -m devtools.demo

## test: install what is missing and run the whole suite (lint, types, unit, functional, integration, browser)
test: deps
	$(BIN)/ruff check .
	$(BIN)/mypy chalicelib devtools slipstream_cli bench infra layers app.py
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

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
integration: deps
	$(BIN)/python -m pytest tests/integration

## bench: speed/memory ratios against same-run baselines
bench: deps
	$(BIN)/python -m bench

deploy: deps
	STAGE=$(STAGE) bash infra/deploy.sh
destroy: $(STAMP)
	STAGE=$(STAGE) bash infra/destroy.sh

clean:
	rm -rf $(VENV) web/node_modules .demo .localaws layers/ffmpeg/build
