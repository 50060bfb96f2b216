# Tasks for working on prismer-rt. Run them from the repository root, in the virtual environment
# where `pip install -e '.[dev]'` ran (or say which interpreter: make check PYTHON=.venv/bin/python).
# CI runs the README's test command instead (.ci/run): `pip install -e '.[dev]' && pytest`, which
# runs the same gates as tests (tests/test_quality.py), with a coverage summary.

PYTHON ?= python
PYTEST_ARGS ?=

.PHONY: help check lint test fmt docs docs-check bench bench-quick soak soak-quick coverage clean

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

check: lint ## everything CI checks: lint, format, mypy, then the tests
	$(PYTHON) -m pytest --deselect tests/test_quality.py::test_quality_gate $(PYTEST_ARGS)

lint: ## ruff check, ruff format --check and mypy --strict (package, tests, bench, tools)
	$(PYTHON) -m tools.check

test: ## the test suite, quality gates included (PYTEST_ARGS="-x -k send" to narrow it)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

fmt: ## format the code and apply the lint fixes ruff can make by itself
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

docs: ## regenerate the man page and the shell completions from the app
	$(PYTHON) -m tools.docgen

docs-check: ## list the generated files that are stale (exit 1 if any)
	$(PYTHON) -m tools.docgen --check

bench: ## the full benchmark (about 4 minutes; see bench/README.md)
	$(PYTHON) bench/run.py

bench-quick: ## a short benchmark run, to see that it works
	$(PYTHON) bench/run.py --quick

soak: ## the soak test: 10 minutes of traffic under faults, counted (bench/README.md)
	$(PYTHON) bench/soak.py

soak-quick: ## the soak test for 60 seconds
	$(PYTHON) bench/soak.py --quick

coverage: ## the tests with coverage, subprocesses included: missed lines, and htmlcov/index.html
	$(PYTHON) -m pytest --cov --cov-report=term-missing --cov-report=html $(PYTEST_ARGS)

clean: ## remove caches and coverage data
	rm -rf .mypy_cache .ruff_cache .pytest_cache htmlcov .coverage .coverage.*
