# Two commands for a fresh machine: `make demo` and `make test`. `make ui` opens the web UI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)

.PHONY: demo test test-slow test-all ui install clean-data scale-test

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m synapflow_assets demo --animals 2 --sessions 3

test: $(VENV)/.installed
	$(VENV)/bin/ruff check synapflow_assets synapflow_assets_tests bench
	$(VENV)/bin/ruff format --check synapflow_assets synapflow_assets_tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 -m "not slow" --durations=10

# The slow tests (marked in synapflow_assets_tests/conftest.py: whole labs through Dagster, servers, a browser);
# .ci/run runs them after `make test`.
test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 -m slow --durations=10

test-all: test test-slow

# PostgreSQL, a Dask scheduler and 2 workers, an S3 server and an MLflow server on 127.0.0.1 (deploy/services);
# a lab through them, compared
# row for row with the embedded run; every service is stopped afterwards.
scale-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,scale]'
	$(PY) bench/scale.py --animals 2 --sessions 3 --workers 2

ui: $(VENV)/.installed
	mkdir -p .nux && printf 'seen: 1\n' > .nux/nux.yaml  # no newsletter pop-up over a new user's first pages
	$(VENV)/bin/dg dev -w workspace.yaml

mlflow-ui: $(VENV)/.installed
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///data/mlflow/mlflow.db \
		--default-artifact-root data/mlflow/artifacts

clean-data:
	rm -rf data/dagster data/volumes data/landing/*/ history storage logs schedules
