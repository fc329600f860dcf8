# Two commands on a fresh clone, with only python3 (>= 3.11) and make:
#   make demo   run the default plan on the virtual vehicle and print where the report is
#   make test   run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_PLAN ?= test_plans/heihe_cold_soak_start.yaml

.PHONY: demo test test-socketcan test-socketcan-vm nightly lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "bench needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py $(DEMO_PLAN)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

test-socketcan: $(STAMP)
	$(BIN)/python -m pytest -q -m socketcan tests

# The socketcan tests in a throw-away VM with a real Linux CAN stack (../shared/tools/README.md).
VCANVM ?= ../shared/tools/run-in-vcan-vm.sh
VCANVM_BACKEND ?= uml

test-socketcan-vm: $(STAMP)
	VCANVM_BACKEND=$(VCANVM_BACKEND) VCANVM_IFACES="vcan0 vcan1" VCANVM_TIMEOUT=3600 \
		$(VCANVM) $(BIN)/python -m pytest -q -p no:cacheprovider -m socketcan tests

nightly: $(STAMP)
	scripts/nightly.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
