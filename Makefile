# Two commands for a new user: `make run` and `make test`. Everything else is a
# step they depend on.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
VAR    ?= var
PROTOS := $(wildcard protos/lre/v1/*.proto)
GEN    := $(patsubst protos/%.proto,common/%_pb2.py,$(PROTOS))

.PHONY: run test lint gen lock system-deps bench clean docs deploy-rules api-reference

PARTS  := common server signer client
# uv installs the workspace from the one lock file (uv.lock); where it is not
# on PATH it is installed once into .tools/.
UV     ?= $(or $(shell command -v uv 2>/dev/null),$(abspath .tools/bin/uv))
export UV_PYTHON_DOWNLOADS := never

$(abspath .tools/bin/uv):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

$(BIN)/.installed: pyproject.toml uv.lock $(foreach p,$(PARTS),$(p)/pyproject.toml) | $(UV)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

# The lock file, after a change of any part's dependencies.
lock: | $(UV)
	$(UV) lock --python $(PYTHON)

# The one command that produces the generated protobuf code (never edited).
gen: $(GEN)
$(GEN) &: $(PROTOS) $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=common --pyi_out=common \
	  --grpc_python_out=common --mypy_grpc_out=common $(PROTOS)

system-deps:
	@bash deploy/dev/system-deps.sh

run: system-deps gen
	$(BIN)/lre-signer dev-setup --var $(VAR)
	LRE_CONFIG=$(VAR)/lre.toml $(BIN)/lre-server migrate
	$(BIN)/python deploy/dev/stack.py --var $(VAR)

# Parallel workers (pytest-xdist), each with its own signer processes and a
# PostgreSQL database per test: much of the suite waits on processes, so
# more workers than cores pays; idle workers take tests queued on busy
# ones (worksteal), so the long end-to-end tests do not end on one worker.
TEST_WORKERS ?= 3
test: gen
	LRE_WITH_TEST_TOOLS=1 bash deploy/dev/system-deps.sh
	$(BIN)/pytest -q -ra -n $(TEST_WORKERS) --dist worksteal --durations=25

lint: gen
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pylint common/lre server/lre signer/lre client/lre

# The documentation site (docs/ and the README), built strictly: a broken
# link or a page missing from the navigation fails the build.
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict --site-dir build/site

# docs/api-reference.md from the protos and their comments (a test checks it
# is current).
api-reference: $(BIN)/.installed
	$(BIN)/python deploy/dev/api_reference.py

# The PrometheusRule for Kubernetes is the alert rules file, wrapped.
deploy-rules:
	{ printf '%s\n' '# Generated from deploy/prometheus/lre-rules.yml by `make deploy-rules`;' \
	    '# tests/deploy checks that the two agree. Edit the source, not this file.' \
	    'apiVersion: monitoring.coreos.com/v1' 'kind: PrometheusRule' 'metadata:' \
	    '  name: lre' 'spec:'; \
	  sed -n '/^groups:/,$$p' deploy/prometheus/lre-rules.yml | sed 's/^./  &/'; \
	} > deploy/kubernetes/monitoring/prometheusrule.yaml

bench: gen
	$(BIN)/python bench/signer_throughput.py

clean:
	rm -rf $(VAR) common/lre/v1/*_pb2*.py common/lre/v1/*_pb2*.pyi
