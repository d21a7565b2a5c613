# One-command entry points. Everything installs from this project's own files.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
EXTRAS ?= aws,azure,gcp,test

.PHONY: install run test lint unit bench clean

install: .make/installed

# Re-install only when the packaging files change.
.make/installed: setup.py package.json package-lock.json
	$(PIP) install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	npm ci --no-audit --no-fund --silent
	@mkdir -p .make && touch $@

run: install
	$(PYTHON) -m pipelines.run

lint: install
	$(PYTHON) -m ruff check .

test: install lint
	$(PYTHON) -m pytest -q

unit: install
	$(PYTHON) -m pytest -q tests/unit

bench: install
	$(PIP) install --quiet -e '.[bench]'
	$(PYTHON) -m benchmarks.throughput

clean:
	rm -rf output .make bench_data .pytest_cache
