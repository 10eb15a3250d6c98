# Two commands do everything on a fresh machine with Python 3.11:
#   make run    install, migrate, create the demo tenant, serve http://127.0.0.1:8000
#   make test   install and run the whole test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export PORTAL_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test install lint benchmarks wheel

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py serve

test: install node_modules/.installed
	scripts/run-tests

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run

benchmarks: install
	$(PY) benchmarks/agent_vs_restic.py
