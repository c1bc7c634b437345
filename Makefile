# Statelock. `make run` starts the sidecar on its embedded defaults; `make test`
# installs everything the tests need and runs lint, type checks and the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := $(CURDIR)/.tools/bin
OPA_VERSION := v1.22.2
OPA    := $(TOOLS)/opa
CONFIG ?= config/dev.yaml

.PHONY: install install-test run test lint unit opa clean bench

# NOTE: scripts/install.sh is also what the Dockerfile runs: one install path.
$(VENV)/.installed: pyproject.toml scripts/install.sh scripts/system-deps.sh
	PYTHON=$(PYTHON) ./scripts/install.sh --editable $(VENV)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	./scripts/system-deps.sh test
	$(BIN)/pip install -q -e '.[libvirt,xenapi,test]'
	touch $@

## install: create .venv with Statelock and its runtime dependencies (idempotent)
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test opa

## opa: build OPA $(OPA_VERSION) into .tools/bin once (cached between runs); the embedded
## engine compiles the bundle with it, so `make run` needs it too
opa: $(OPA)
$(OPA):
	@mkdir -p $(TOOLS)
	@if command -v opa >/dev/null 2>&1 && opa version | grep -q "^Version: $(OPA_VERSION:v%=%)$$"; then \
	  ln -sf "$$(command -v opa)" $(OPA); \
	else \
	  ./scripts/build-opa.sh $(OPA_VERSION) $(TOOLS); \
	fi

## run: start Statelock on $(CONFIG) (STATELOCK_LISTEN overrides the address)
run: install opa
	PATH="$(TOOLS):$$PATH" $(BIN)/statelock serve --config $(CONFIG)

## lint: ruff and mypy --strict over sidecar/, drivers/, tests/
lint: $(VENV)/.installed-test
	$(BIN)/ruff check sidecar drivers tests
	$(BIN)/mypy

## test: lint, policy checks, and the whole test suite
test: install-test lint
	PATH="$(TOOLS):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider

unit: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q tests/unit

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache

## bench: measure added latency and throughput (writes bench/results/)
bench: install-test
	PATH="$(TOOLS):$$PATH" $(BIN)/python -m bench
