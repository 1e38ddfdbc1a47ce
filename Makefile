# x15g: `make run` serves a folder, `make test` runs the whole suite. Both bootstrap .venv first:
# `run` installs what serving needs, `test` adds the test extra (pytest, hypothesis, locust, flask, mypy).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
ROOT ?=
BIND ?= 127.0.0.1:8000
ARGS ?=

.PHONY: run test test-fast typecheck venv venv-test demo-root loadtest loadtest-ui bench docs clean

venv: $(STAMP)
venv-test: $(TEST_STAMP)

# Reinstall when the project metadata changes; editable install so the checkout is what runs.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

demo-root: venv
	test -d demo-root || $(PY) tools/make_demo_root.py demo-root

run: venv
ifeq ($(ROOT),)
	$(MAKE) --no-print-directory demo-root
	$(VENV)/bin/x15g --root demo-root --bind $(BIND) $(ARGS)
else
	$(VENV)/bin/x15g --root $(ROOT) --bind $(BIND) $(ARGS)
endif

# The whole suite; tests/test_types.py runs mypy over x15g/ as one of its tests.
test: venv-test
	$(PY) -m pytest $(PYTEST_ARGS)

# Pure-code tests only (no server process, no subprocess): under a minute.
test-fast: venv-test
	$(PY) -m pytest -m "not process" -q $(PYTEST_ARGS)

typecheck: venv-test
	$(PY) -m mypy

# Regenerate the option table in README.md, config/x15g.conf and docs/x15g.1 from the registry.
docs: venv
	$(PY) tools/gen_docs.py

bench: venv
	$(PY) -m tools.bench $(ARGS)

clean:
	rm -rf $(VENV) demo-root build *.egg-info .pytest_cache .mypy_cache

# SPECweb99-like locust suite (x15g-loadtest, loadtests/): a short headless run against a fresh x15g
# and a tiny generated file set, printing the summary; `make loadtest-ui` serves locust's web UI
# (with its SPECweb99 tab) on 127.0.0.1:8089.
LOADTEST_ARGS ?= --users 20 --dirs 3 --warmup 10 --measure 30 --rampdown 5
loadtest: venv-test
	$(VENV)/bin/x15g-loadtest $(LOADTEST_ARGS) $(ARGS)

loadtest-ui: venv-test
	$(VENV)/bin/x15g-loadtest --ui $(LOADTEST_ARGS) --measure 120 $(ARGS)
