# MailMerger — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: help install run run-split test check lint typecheck imports unit unit-fast fmt bench deploy-files clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install uv (if missing) and the locked dependencies
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

.env:
	cp .env.example .env

run: install .env ## start the whole system on 127.0.0.1:8080 (migrates first; MM_HTTP_PORT moves it)
	$(UV) run mailmerger migrate all
	$(UV) run mailmerger run

run-split: install ## the compose topology as separate processes behind nginx on 127.0.0.1:8080 (migrates first)
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null))
	$(UV) run mailmerger run-split

test: check ## everything CI checks: lint, types, import boundaries, the full test suite

check: install lint typecheck imports unit

lint: ## ruff lint and format check
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: ## mypy --strict over every package
	$(UV) run mypy

imports: ## services import only the shared kit, never each other
	$(UV) run lint-imports

unit: ## the test suite against real PostgreSQL, Redis, RabbitMQ
	$(UV) run pytest $(PYTEST_ARGS)

# Compiled bytecode is cached (under .pytest_cache) even where PYTHONDONTWRITEBYTECODE is set: compiling
# every imported module and rewriting every test module's asserts again costs ~8 s CPU a run.
unit-fast: ## the pure tests, in seconds: no database, Redis or broker needed (nor started)
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/.pytest_cache/pycache \
		$(UV) run pytest -m "pure and not slow" -q $(PYTEST_ARGS)

fmt: ## format and autofix
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: install ## benchmarks → bench/report.md and bench/report.json
	@# wrk drives the HTTP benchmarks; without it they fall back to an httpx loop that measures itself.
	@command -v wrk >/dev/null 2>&1 || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| echo "wrk is not installed (apt-get install wrk): HTTP benchmarks use the slower httpx loop")
	$(UV) run python bench/run.py

deploy-files: ## regenerate deploy/nginx.conf, deploy/k8s/mailmerger.yaml and docker-compose.yml from the registrations
	$(UV) run mailmerger deploy nginx > deploy/nginx.conf
	$(UV) run mailmerger deploy compose > docker-compose.yml
	$(UV) run mailmerger deploy k8s > deploy/k8s/mailmerger.yaml

clean: ## remove caches
	rm -rf .pytest_cache .mypy_cache .ruff_cache
