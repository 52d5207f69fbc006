# `make demo` (simulated calls through the real controller), `make test` (the whole suite) and
# `make chaos` (faults injected for real into serve and worker processes; CI runs it after the tests).
# Each creates .venv and installs everything from the package registries; nothing is installed system-wide.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test chaos bench clean

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Switchboard needs Python 3.11, found " + sys.version.split()[0]'
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create $(VENV): on Debian run 'apt-get install python3.11-venv' (the venv module is packaged apart)"; exit 2; }
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(BIN)/switchboard --log-level WARNING --log-text demo --config examples/agent.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

chaos: $(STAMP)
	$(BIN)/python -m chaos

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit $$?; done

clean:
	rm -rf $(VENV) build *.egg-info examples/state
