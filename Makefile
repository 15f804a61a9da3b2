# Two commands on a fresh machine (Python 3.11; Java 17 for the HermiT ontology test):
#   make demo   set up .venv and run the reasoner on the shipped examples
#   make test   set up .venv and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AS_OF ?= 2026-06-01

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/b12kg recommend examples/*.ttl --as-of $(AS_OF)

test: install
	$(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
