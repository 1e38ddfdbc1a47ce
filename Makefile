# x15g: `make run` serves a folder, `make test` runs the whole suite. Both bootstrap .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROOT ?=
BIND ?= 127.0.0.1:8000
ARGS ?=

.PHONY: run test venv demo-root loadtest loadtest-ui bench clean

venv: $(STAMP)

# Reinstall when the project metadata changes; editable install so the checkout is what runs.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo-root:
	test -d demo-root || $(PY) tools/make_demo_root.py demo-root

run: venv
ifeq ($(ROOT),)
	$(MAKE) --no-print-directory demo-root
	$(VENV)/bin/x15g --root demo-root --bind $(BIND) $(ARGS)
else
	$(VENV)/bin/x15g --root $(ROOT) --bind $(BIND) $(ARGS)
endif

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) tools/bench.py $(ARGS)

clean:
	rm -rf $(VENV) demo-root build *.egg-info .pytest_cache

# SPECweb99-like locust suite (x15g-loadtest, loadtests/): a short headless run against a fresh x15g
# and a tiny generated file set, printing the summary; `make loadtest-ui` serves locust's web UI
# (with its SPECweb99 tab) on 127.0.0.1:8089.
LOADTEST_ARGS ?= --users 20 --dirs 3 --warmup 10 --measure 30 --rampdown 5
loadtest: venv
	$(VENV)/bin/x15g-loadtest $(LOADTEST_ARGS) $(ARGS)

loadtest-ui: venv
	$(VENV)/bin/x15g-loadtest --ui $(LOADTEST_ARGS) --measure 120 $(ARGS)
