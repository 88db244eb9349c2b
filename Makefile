# django-flexcharge: `make demo` runs the example site with the local emulator;
# `make test` runs the whole suite. Both build .venv from python3 on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/pytest
TEST_PG_URL ?= postgres://postgres@127.0.0.1:5432/flexcharge_test

.PHONY: demo test test-unit test-example test-postgres test-browser test-reliability test-engines \
        lint coverage migrations-check format typecheck matrix bench wheel-check readme-trial docs \
        clean venv

venv: $(STAMP)

# The app and the emulator (a distribution of its own, emulator/), both editable.
$(STAMP): pyproject.toml emulator/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q -e . -e ./emulator --group test --group lint --group browser
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python example_project/demo.py

# The whole suite on SQLite: package tests (unit, webhook, end-to-end over real
# HTTP, reliability) and the example project's tests. RQ and Celery on a real
# redis-server are `make test-engines`.
# Coverage: `make test` measures the SQLite run and reports it; `make
# test-postgres` adds the PostgreSQL run's lines (SKIP LOCKED claims, the
# one-statement webhook); `make coverage` applies the floor to both together
# (.ci/run does all three).
test: $(STAMP)
	$(PYTEST) -q -m "not browser and not engines" --cov --cov-report=term --cov-fail-under=0
	$(PYTEST) -q --ds=tests.example_settings tests/example -p no:randomly

# With a second FlexCharge account declared beside the default one (the SQLite
# run has one): the whole suite must pass both ways (tests/settings.py).
test-postgres: $(STAMP)
	FLEXCHARGE_TEST_SECOND_ACCOUNT=1 FLEXCHARGE_TEST_DATABASE_URL=$(TEST_PG_URL) \
	  $(PYTEST) -q -m "not browser and not engines" --cov --cov-append --cov-report= --cov-fail-under=0
	FLEXCHARGE_TEST_DATABASE_URL=$(TEST_PG_URL) $(PYTEST) -q --ds=tests.example_settings tests/example

# The branch-coverage floor (pyproject: fail_under) on the SQLite and
# PostgreSQL runs together; exits non-zero below it.
coverage: $(STAMP)
	$(BIN)/coverage report

test-browser: $(STAMP)
	$(PYTEST) -q -m browser tests/browser

test-reliability: $(STAMP)
	$(PYTEST) -q -m reliability

# RQ and Celery workers on a real redis-server (apt-get install redis-server):
# the e2e suite and the fault tests on SQLite, the fault tests again on PostgreSQL.
test-engines: $(STAMP)
	$(PYTEST) -q -m engines
	FLEXCHARGE_TEST_DATABASE_URL=$(TEST_PG_URL) $(PYTEST) -q -m engines tests/engines/test_engine_faults.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy django_flexcharge emulator/flexcharge_emulator
	$(MAKE) migrations-check

# The app's models and its migrations agree (no model change without a migration).
migrations-check: $(STAMP)
	PYTHONPATH=. $(BIN)/django-admin makemigrations django_flexcharge --check --dry-run --settings=tests.settings

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Python 3.12-3.13 x Django 5.2/6.0/6.1 (Django 6 needs Python >= 3.12); 3.11 x 5.2 is `make test`.
# The two Pythons' sessions run side by side (one per core), each on its own database file.
matrix: $(STAMP)
	$(BIN)/python -m pip install -q nox
	export PYENV_VERSION=3.11.7:3.12.1:3.13.0; \
	FLEXCHARGE_TEST_DATABASE_URL=sqlite:////tmp/fc-matrix-312.db \
	  $(BIN)/nox --no-error-on-missing-interpreters -s tests -p 3.12 > .nox-3.12.log 2>&1 & p312=$$!; \
	FLEXCHARGE_TEST_DATABASE_URL=sqlite:////tmp/fc-matrix-313.db \
	  $(BIN)/nox --no-error-on-missing-interpreters -s tests -p 3.13 > .nox-3.13.log 2>&1; r313=$$?; \
	wait $$p312; r312=$$?; cat .nox-3.12.log .nox-3.13.log; \
	test $$r312 -eq 0 -a $$r313 -eq 0

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Build both wheels (the app's and the emulator's), install the app's alone into a
# fresh virtualenv next to a new `django-admin startproject` site, and run migrate,
# check and test there; then add the emulator's and run flexcharge_emulator --help.
wheel-check: $(STAMP)
	bash .ci/wheel-check.sh

# README.md's "Try it locally in five minutes", step by step, against the built
# wheel in a new directory; prints how long it took. Needs ports 8000 and 8765.
readme-trial: $(STAMP)
	$(BIN)/python .ci/readme_trial.py

# The documentation site (MkDocs + Material + mkdocstrings), warnings as errors.
docs: $(STAMP)
	$(BIN)/python -m pip install -q --group docs
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build dist *.egg-info .nox .mypy_cache .ruff_cache site
