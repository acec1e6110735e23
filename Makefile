# make run   -- create .venv, install sinkdns, serve on the built-in defaults (ARGS="..." adds flags)
# make test  -- same set-up, then the whole test suite
# make bench -- same set-up, then sinkdns beside unbound/dnsmasq under dnsperf (needs dnsperf, nsd; ARGS="--help")

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP) ## serve DNS on 127.0.0.1:1053
	$(VENV)/bin/sinkdns serve $(ARGS)

test: $(STAMP) ## run the whole suite
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## dnsperf benchmark: sinkdns beside unbound and dnsmasq (tests/bench/README.md)
	$(PY) tests/bench/bench.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
