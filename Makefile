# Hitmetrix: `make run` starts it with a self-recording demo site; `make test` runs every test.
# Both install what they need on a fresh Debian machine (Python venv, npm packages, Chromium).

VENV      ?= .venv
DATA_DIR  ?= ./data
HOST      ?= 127.0.0.1
PORT      ?= 8000
PY        := $(VENV)/bin/python
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TRACKER   := hitmetrix/web/static/hm.js
DASHBOARD := hitmetrix/web/static/dashboard/replay.js

.PHONY: run test lint bench bench-analytics fidelity scenarios install tracker dashboard system-deps chromium clean

run: install
	$(VENV)/bin/hitmetrix serve --demo --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

test: install chromium lint
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check hitmetrix tests bench
	$(VENV)/bin/mypy hitmetrix
	cd tracker && npm run --silent typecheck
	cd dashboard && npm run --silent typecheck

# Session list sizes: make bench BENCH_SESSIONS=1000000,10000000 (10 M takes a few minutes to build).
BENCH_SESSIONS ?= 100000

bench: install chromium
	@command -v wrk >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y wrk)
	$(PY) -m bench.run --sessions $(BENCH_SESSIONS) $(BENCH_ARGS)
	$(MAKE) bench-analytics

# Analytics views at 10 M synthetic events (100 M: ANALYTICS_EVENTS=10000000,100000000; a quick check:
# ANALYTICS_ARGS=--quick); loader throughput against the release before: ANALYTICS_ARGS="--loader-before DIR".
ANALYTICS_EVENTS ?= 10000000

bench-analytics: install
	@command -v wrk >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y wrk)
	$(PY) -m bench.analytics --events $(ANALYTICS_EVENTS) $(ANALYTICS_ARGS)

# Replay fidelity: corpus pages recorded in Chromium, replayed, live and replay screenshots compared (SSIM);
# a table, bench/results/fidelity.json and test-artifacts/fidelity/. One page: make fidelity FIDELITY_ARGS="--pages tall"
fidelity: install chromium
	$(PY) -m bench.fidelity $(FIDELITY_ARGS)

# Labelled attack and benign scenarios against the demo site: per detector detected / missed / false alerts and
# time to alert; bench/results/scenarios.json. The fast subset: make scenarios SCENARIOS_ARGS=--quick
scenarios: install
	$(PY) -m bench.scenarios $(SCENARIOS_ARGS)

install: $(VENV)/.installed $(TRACKER) $(DASHBOARD)

tracker: $(TRACKER)

dashboard: $(DASHBOARD)

# Debian packages the build needs, installed only when missing.
system-deps:
	@command -v python3 >/dev/null && python3 -m venv --help >/dev/null 2>&1 || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y python3 python3-venv python3-dev)
	@command -v npm >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs npm)

chromium:
	@[ -x /usr/bin/chromium ] || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

$(VENV)/.installed: requirements.lock pyproject.toml | system-deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

tracker/node_modules/.installed: tracker/package.json tracker/package-lock.json | system-deps
	cd tracker && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(TRACKER): tracker/node_modules/.installed tracker/build.mjs $(wildcard tracker/src/*.ts)
	cd tracker && npm run --silent build

dashboard/node_modules/.installed: dashboard/package.json dashboard/package-lock.json | system-deps
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(DASHBOARD): dashboard/node_modules/.installed dashboard/build.mjs $(wildcard dashboard/src/*.ts) $(wildcard dashboard/src/*.css)
	cd dashboard && npm run --silent build

clean:
	rm -rf $(VENV) tracker/node_modules tracker/dist $(TRACKER) dashboard/node_modules hitmetrix/web/static/dashboard
