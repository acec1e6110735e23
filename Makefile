# make run   -- create .venv, install sinkdns, serve on the built-in defaults (ARGS="..." adds flags)
# make test  -- same set-up, then the whole test suite
# make fuzz  -- same set-up plus atheris, then the long fuzz run (2,000,000 inputs per entry point; FUZZ_INPUTS=N)
# make soak  -- same set-up, then 60 s of dnsperf at its maximum plus a malformed-packet flood, and 3 x 60 s of a paced load through policy reloads (needs dnsperf, nsd)
# make bench -- same set-up, then sinkdns beside unbound/dnsmasq under dnsperf (needs dnsperf, nsd; ARGS="--help")

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test fuzz bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP) ## serve DNS on 127.0.0.1:1053
	$(VENV)/bin/sinkdns serve $(ARGS)

test: $(STAMP) ## run the whole suite
	$(PY) -m pytest $(PYTEST_ARGS)

fuzz: $(STAMP) ## long fuzz run outside make test (atheris, installed by this target only)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,fuzz]'
	$(PY) -m tests.fuzz.run --inputs $${FUZZ_INPUTS:-2000000}

bench: $(STAMP) ## dnsperf benchmark: sinkdns beside unbound and dnsmasq (tests/bench/README.md)
	$(PY) tests/bench/bench.py $(ARGS)

soak: $(STAMP) ## load and fault soak outside make test (ARGS="--duration 20")
	$(PY) -m tests.soak.run $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
