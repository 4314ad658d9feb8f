# Two commands from a fresh clone: `make up` runs the hub, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := tests/js/node_modules/.installed-stamp

.PHONY: up test test-faults test-embedded lint typecheck bench clean setup chromium

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("herald needs Python 3.11 or newer, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(NODE_STAMP): tests/js/package.json tests/js/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20 is needed for the interop tests: install it first"; exit 1; }
	cd tests/js && npm ci --silent --no-audit --no-fund
	@touch $@

up: $(STAMP)
	$(BIN)/herald up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: setup chromium lint typecheck
	$(BIN)/pytest -q -m "not faults and not soak"

# The console's browser test needs Chromium: installed from Debian's packages when we may, else named.
chromium:
	@command -v chromium >/dev/null || [ -n "$$CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium; \
	  else \
	    echo "The console browser test needs Chromium: install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chrome"; exit 1; \
	  fi; }

# The part of the suite that must also pass on the embedded PostgreSQL and Redis (a CI step).
test-embedded: setup
	HERALD_TEST_SERVICES=embedded $(BIN)/pytest -q -m embedded

clean:
	rm -rf $(VENV) tests/js/node_modules tests/browser/node_modules .mypy_cache .ruff_cache .pytest_cache

# Benchmarks of the chat side (bench/): Herald against the Node.js Socket.IO reference, figures
# with the machine and date in docs/benchmarks.md.  Not part of `make test` (its smoke size is).
BENCH_NODE_STAMP := bench/node_modules/.installed-stamp

.PHONY: bench-fanout bench-persisted bench-idle bench-inbound

# The smoke test of the harness (tests/bench) needs the generator's Node packages too.
setup: $(BENCH_NODE_STAMP)

$(BENCH_NODE_STAMP): bench/package.json bench/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20 is needed for the benchmarks: install it first"; exit 1; }
	cd bench && npm ci --silent --no-audit --no-fund
	@touch $@

bench: $(STAMP) $(BENCH_NODE_STAMP)
	$(BIN)/python -m bench.run all
	$(BIN)/python -m bench.push_run all
	$(BIN)/python -m bench.inbound

# Inbound websocket parsing alone, Herald's parser against wsproto's (section 6 of docs/benchmarks.md).
bench-inbound: $(STAMP)
	$(BIN)/python -m bench.inbound

bench-fanout: $(STAMP) $(BENCH_NODE_STAMP)
	$(BIN)/python -m bench.run fanout

bench-persisted: $(STAMP) $(BENCH_NODE_STAMP)
	$(BIN)/python -m bench.run persisted

bench-idle: $(STAMP) $(BENCH_NODE_STAMP)
	$(BIN)/python -m bench.run idle

# The console's browser test (tests/console/test_console_browser.py): Playwright from npm drives the
# system Chromium (Debian: `apt-get install -y chromium`; .ci/run installs it under CI=true).
BROWSER_NODE_STAMP := tests/browser/node_modules/.installed-stamp

setup: $(BROWSER_NODE_STAMP)

$(BROWSER_NODE_STAMP): tests/browser/package.json tests/browser/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20 is needed for the browser test: install it first"; exit 1; }
	cd tests/browser && npm ci --silent --no-audit --no-fund
	@command -v chromium >/dev/null || echo "note: the console browser test needs Chromium: apt-get install -y chromium"
	@touch $@

# Benchmarks of the push side (bench/push_run.py): a real `herald worker` against the fake APNs and
# FCM in their own processes (20 ms per answer), and a campaign to a million generated users
# (bench/gen_users.py; kept between runs with BENCH_KEEP_DATA=1). Figures in docs/benchmarks.md.
.PHONY: bench-push bench-campaign

bench-push: $(STAMP)
	$(BIN)/python -m bench.push_run push

bench-campaign: $(STAMP)
	$(BIN)/python -m bench.push_run campaign $(if $(BENCH_KEEP_DATA),--keep-data)

# Every fault test (docs/reliability.md), whatever its marker: the small runs `make test` has too, the
# larger runs (marker faults), the soak (marker soak), the worker and campaign crashes, the cross-node
# group commits.
FAULT_TESTS := tests/faults tests/workers/test_crash.py tests/campaigns/test_campaign_crash.py \
	tests/hub/test_commit_deadlock.py
test-faults: $(STAMP)
	$(BIN)/pytest -q -s $(FAULT_TESTS)
