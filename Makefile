# Two commands on a fresh machine (Python 3.11; Java 17 for the HermiT ontology test):
#   make demo   set up .venv and run the reasoner on the shipped examples
#   make test   set up .venv and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AS_OF ?= 2026-06-01

.PHONY: demo test bench load install system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/b12kg recommend examples/*.ttl --as-of $(AS_OF)

# Headless Chromium renders the HTML report in the tests (Debian package; skipped if unavailable).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: chromium not installed; the HTML rendering test will be skipped"

test: install system-deps
	$(BIN)/python -m pytest -n 2

# Benchmark (not part of the tests): cohorts of 1,000 and 10,000 patients; SIZES=1000,10000,100000 for linearity.
SIZES ?= 1000,10000
bench: install
	$(BIN)/python bench/run.py --sizes $(SIZES)

# Endpoint load run (not part of the tests): 16 clients and 2 attackers for 60 s against b12kg serve.
load: install
	$(BIN)/python bench/load.py --clients 16 --seconds 60

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
