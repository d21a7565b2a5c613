# One-command entry points. Everything installs from this project's own files.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
EXTRAS ?= aws,azure,gcp,test

BEAM_VERSION := $(shell sed -n 's/^BEAM_VERSION = "\(.*\)"/\1/p' setup.py)

# Prism, Beam's portable local runner (a Go binary), pinned to the Beam release of setup.py and
# built into a git-ignored cache that runners/prism.py reads. SKIP_PRISM=1 installs without it.
PRISM_VERSION := v$(BEAM_VERSION)
PRISM_CACHE := .cache/runners
PRISM_BIN := $(PRISM_CACHE)/bin/prism
PRISM_STAMP := $(PRISM_CACHE)/prism.version
PRISM_PACKAGE := github.com/apache/beam/sdks/v2/go/cmd/prism
SKIP_PRISM ?=

.PHONY: install run test lint unit bench clean prism FORCE

install: .make/installed $(if $(SKIP_PRISM),,prism)

# Re-install only when the packaging files change.
.make/installed: setup.py package.json package-lock.json
	$(PIP) install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	npm ci --no-audit --no-fund --silent
	@mkdir -p .make && touch $@

prism: $(PRISM_STAMP)

# Rebuild only when the binary is missing or the stamp names another version than the pin.
$(PRISM_STAMP): $(if $(and $(wildcard $(PRISM_BIN)),$(filter $(PRISM_VERSION),$(shell cat $(PRISM_STAMP) 2>/dev/null))),,FORCE)
	@command -v go >/dev/null 2>&1 || { \
	  echo "error: Prism (--runner PrismRunner) is built with Go, and \`go\` is not on PATH: install Go 1.26 or newer" \
	    "(https://go.dev/doc/install) and run \`make install\` again, or \`make install SKIP_PRISM=1\` to go" \
	    "without PrismRunner (its tests then fail, naming this)." >&2; exit 1; }
	@echo "Installing Prism $(PRISM_VERSION) into $(PRISM_CACHE)/bin (go install, about a minute)"
	@mkdir -p $(PRISM_CACHE)/bin && rm -f $@
	GOBIN=$(abspath $(PRISM_CACHE))/bin go install $(PRISM_PACKAGE)@$(PRISM_VERSION)
	@echo $(PRISM_VERSION) > $@

FORCE:

# The demo job, then a query of what it wrote, ready to paste (docs/query.md).
run: install
	$(PYTHON) -m pipelines.run
	@echo
	@echo 'Query the results (SQL over the views aggregates and latest; --plot METRIC draws a chart):'
	@echo '  $(PYTHON) -m pipelines.query ./output "select region, sum(count) as events, max(p99) as worst_p99 from latest group by region order by events desc"'

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

# Dataflow flex template: print (RUN=1: also run) the image build/push for one region,
# and the gcloud command that builds a template spec outside Terraform.
FLEX_REGION ?= europe-west1
FLEX_TAG ?= $(shell $(PYTHON) -c "import re; print(re.search(r'BEAM_VERSION = \"([^\"]+)\"', open('setup.py').read()).group(1))")-0.1.0

.PHONY: flex-template
flex-template:
	@repo=$$(terraform -chdir=infra/gcp output -json repositories | $(PYTHON) -c "import json, sys; print(json.load(sys.stdin)['$(FLEX_REGION)'])"); \
	image=$$repo/analytics:$(FLEX_TAG); \
	echo "docker build -f runners/dataflow/Dockerfile -t $$image . && docker push $$image"; \
	echo "gcloud dataflow flex-template build gs://BUCKET/templates/analytics-$(FLEX_TAG).json --image $$image --sdk-language PYTHON --metadata-file runners/dataflow/metadata.json"; \
	if [ "$(RUN)" = "1" ]; then docker build -f runners/dataflow/Dockerfile -t $$image . && docker push $$image; fi
