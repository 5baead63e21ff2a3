# The two commands: `make demo` runs a whole year on the embedded defaults, `make test` the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test stop install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/spotcheck demo

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

stop:
	-@test -f .data/worker.pid && kill $$(cat .data/worker.pid) 2>/dev/null; rm -f .data/worker.pid
	-@$(BIN)/python -c "from pathlib import Path; from runtime.server import stop_server; stop_server(Path('.data'))"

clean: stop
	rm -rf .data
