# Two commands for a fresh machine with python3 and pip: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: a looser requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m cadenza demo --run-dir runs/demo

test: $(STAMP)
	$(PY) -m pytest -q tests

# The loop while changing code: every test but those marked slow (each over about 5 s).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# What the build and the tests made; never runs/, where users keep their trained models.
clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
	find . -path ./runs -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
