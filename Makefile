# Every target runs inside .venv, created on first use from pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test unit lint format typecheck check demo bench bench-export bench-user-export bench-scheduler bench-consume bench-api bench-events api openapi worker worker-events worker-user-exports beat up down constraints clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: install
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

demo: install
	$(BIN)/python -m workers.demo

bench: bench-export bench-scheduler bench-consume bench-api

bench-export: install
	$(BIN)/python bench/export.py

bench-scheduler: install
	$(BIN)/python bench/scheduler.py

bench-consume: install
	$(BIN)/python bench/consume.py

bench-api: install
	$(BIN)/python bench/api.py

api: install
	$(BIN)/portability api

# The API's contract, checked in; tests/unit/test_openapi_document.py fails when it is stale.
openapi: install
	$(BIN)/python -m portability.api.openapi > docs/openapi.json.new
	mv docs/openapi.json.new docs/openapi.json

bench-user-export: install
	$(BIN)/python bench/user_export.py

bench-events: install
	$(BIN)/python bench/events.py

worker: install
	MALLOC_ARENA_MAX=2 $(BIN)/celery -A workers worker --loglevel=INFO --concurrency=2

worker-events: install
	$(BIN)/celery -A workers worker -Q portability.events --loglevel=INFO --concurrency=4

# Users' own archives ("download your data"), on their own queue.
worker-user-exports: install
	MALLOC_ARENA_MAX=2 $(BIN)/celery -A workers worker -Q portability.user_exports --loglevel=INFO --concurrency=1

beat: install
	$(BIN)/celery -A workers beat --loglevel=INFO

# The compose stack on this host (needs Docker and the secrets docker-compose.yml lists).
up:
	docker compose up -d --build

down:
	docker compose down

# Pin every runtime package for the image: pip freeze of a clean venv after `pip install .`.
constraints:
	rm -rf .constraints-venv && $(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install -q .
	{ echo "# Every runtime package pinned, for reproducible images: pip freeze of a clean Python 3.11 venv"; \
	  echo "# after \`pip install .\` (regenerate with \`make constraints\` whenever pyproject.toml changes)."; \
	  .constraints-venv/bin/pip freeze --exclude portability; } > constraints.txt
	rm -rf .constraints-venv

clean:
	rm -rf $(VENV) .portability .pytest_cache .mypy_cache .ruff_cache
