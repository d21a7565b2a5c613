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
