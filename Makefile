# Two commands do everything: `make run` (the product, with a demo district) and `make test`
# (every check). See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: help run test lint typecheck pytest bench services-check browser clean

help:
	@echo "make run    - install, migrate, load the demo district, start web + worker + beat"
	@echo "make test   - install dev tools, then ruff, mypy and the whole pytest suite"
	@echo "make bench  - benchmarks (see docs/benchmarks.md)"

# The virtualenv is rebuilt only when the requirements change.
$(VENV)/.python:
	@python_bin=$$(scripts/find-python.sh) || exit 1; \
	echo "Creating $(VENV) with $$python_bin"; \
	"$$python_bin" -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip && touch $@

$(VENV)/.installed: requirements.txt $(VENV)/.python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) scripts/devstack.py

services-check: $(VENV)/.installed-dev
	$(PY) scripts/check_services.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy .

# Browser tests drive Debian's Chromium through Playwright; a browser is never downloaded.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	}

pytest: $(VENV)/.installed-dev services-check browser
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# Benchmarks work in a real database (default attendance_bench; TEST_DATABASE_URL overrides).
BENCH_ENV := DJANGO_SETTINGS_MODULE=config.settings.test \
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/attendance_bench}

bench: $(VENV)/.installed-dev
	$(BENCH_ENV) $(PY) scripts/check_services.py --ensure-database
	$(BENCH_ENV) $(PY) manage.py migrate --noinput -v 0
	$(BENCH_ENV) $(PY) manage.py bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var
