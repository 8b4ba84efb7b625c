# Two commands for a new user: `make run` and `make test`. Everything else is a
# step they depend on.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
VAR    ?= var
PROTOS := $(wildcard protos/lre/v1/*.proto)
GEN    := $(patsubst protos/%.proto,%_pb2.py,$(PROTOS))

.PHONY: run test lint gen system-deps bench clean docs deploy-rules

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The one command that produces the generated protobuf code (never edited).
gen: $(GEN)
$(GEN) &: $(PROTOS) $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. \
	  --grpc_python_out=. --mypy_grpc_out=. $(PROTOS)

system-deps:
	@bash deploy/dev/system-deps.sh

run: system-deps gen
	$(BIN)/lre-signer dev-setup --var $(VAR)
	LRE_CONFIG=$(VAR)/lre.toml $(BIN)/lre-server migrate
	$(BIN)/python -m lre.dev.stack --var $(VAR)

test: gen
	LRE_WITH_TEST_TOOLS=1 bash deploy/dev/system-deps.sh
	$(BIN)/pytest -q -ra --durations=25

lint: gen
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation site (docs/ and the README), built strictly: a broken
# link or a page missing from the navigation fails the build.
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict --site-dir build/site

# The PrometheusRule for Kubernetes is the alert rules file, wrapped.
deploy-rules:
	{ printf '%s\n' '# Generated from deploy/prometheus/lre-rules.yml by `make deploy-rules`;' \
	    '# tests/deploy checks that the two agree. Edit the source, not this file.' \
	    'apiVersion: monitoring.coreos.com/v1' 'kind: PrometheusRule' 'metadata:' \
	    '  name: lre' '  namespace: lre' 'spec:'; \
	  sed -n '/^groups:/,$$p' deploy/prometheus/lre-rules.yml | sed 's/^./  &/'; \
	} > deploy/kubernetes/prometheusrule.yaml

bench: gen
	$(BIN)/python bench/signer_throughput.py

clean:
	rm -rf $(VAR) lre/v1/*_pb2*.py lre/v1/*_pb2*.pyi
