# Two commands for a new user:  `make app` (set up, then run the Space locally)  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# A pinned torch first: an open range would pull a multi-GB CUDA build where the CPU one suffices.
TORCH ?= torch==2.13.0

.PHONY: setup app test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

app: setup
	$(PY) app.py

test: setup
	LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache tests/artifacts
