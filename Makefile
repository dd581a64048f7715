# skiff: `make demo` and `make test` each do all set-up on a fresh Debian/Ubuntu machine (root).
VENV ?= /opt/skiff/venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)

.PHONY: install demo test lint unit integration e2e bench bench-quick crash load clean

install:
	@scripts/install.sh

demo: install
	@scripts/demo.sh

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: install
	@scripts/test.sh

unit: install
	$(PY) -m pytest tests/unit -q

integration: install
	$(PY) -m pytest tests/integration -q

e2e: install
	$(PY) -m pytest tests/e2e -q

bench: install
	$(PY) bench/run

bench-quick: install
	$(PY) bench/run --quick

# 50 rounds of kill -9 of skiffd during load/build/run/rm, each checked for leaks and partial state
crash: install
	$(PY) bench/crash/run --rounds $${ROUNDS:-50}

# concurrent clients creating/starting/exec-ing/removing containers; then a leak check
load: install
	$(PY) bench/load/run

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
