# Two commands a new user needs: `make demo` and `make test`. Both create .venv when missing,
# installing the exact versions of requirements.lock (with hashes), then asc_kd itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export WANDB_MODE ?= offline

.PHONY: demo test notebook lint lock clean

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $@

demo: $(VENV)/.installed
	$(PY) -m asc_kd.pipeline

# Tests that stop the test cluster's controller or need its timing run alone, after the others.
test: $(VENV)/.installed
	$(PY) -m pytest -n auto --dist loadgroup -m "not cluster_exclusive" tests
	$(PY) -m pytest -m cluster_exclusive tests

# Execute notebooks/results.ipynb top to bottom (nbclient, in a Jupyter kernel) on make demo's
# outputs/pipeline (ASC_KD_RESULTS=DIR or wandb:ENTITY/PROJECT[/GROUP] for others): the executed
# copy is outputs/results.ipynb, the figures go to outputs/figures/.
notebook: $(VENV)/.installed
	mkdir -p outputs
	MPLBACKEND=Agg ASC_KD_FIGURES=$(CURDIR)/outputs/figures $(PY) -c "import nbclient, nbformat; \
		nb = nbformat.read('notebooks/results.ipynb', as_version=4); \
		nbclient.NotebookClient(nb, kernel_name='python3', resources={'metadata': {'path': 'notebooks'}}).execute(); \
		nbformat.write(nb, 'outputs/results.ipynb')"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check asc_kd tests
	$(VENV)/bin/ruff format --check asc_kd tests

# Re-resolve requirements.lock from pyproject.toml (all extras used by `make`), with hashes.
lock: $(VENV)/.installed
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
		--no-emit-find-links --no-emit-index-url --output-file requirements.lock pyproject.toml

clean:
	rm -rf outputs .pytest_cache
