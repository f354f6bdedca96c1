# Two commands a new user needs: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export WANDB_MODE ?= offline

.PHONY: demo test lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m asc_kd.pipeline

test: $(VENV)/.installed
	$(PY) -m pytest -n auto --dist loadgroup tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check asc_kd tests
	$(VENV)/bin/ruff format --check asc_kd tests

clean:
	rm -rf outputs .pytest_cache
