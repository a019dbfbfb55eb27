# make demo — set up and open the TUI against the built-in sandbox server
# make test — set up and run ruff, mypy and the whole test suite
# make lock — rewrite constraints.txt with the newest versions pyproject.toml allows
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions installed for tests and CI (pyproject.toml holds ranges).
CONSTRAINTS := constraints.txt
LOCK_VENV := build/lock-venv

.PHONY: demo test lint typecheck pytest tmux bench clean lock

$(STAMP): pyproject.toml $(CONSTRAINTS) xnat_tui/dicom/_fastlist.c xnat_tui/xnat/_md5lanes.c xnat_tui/xnat/_md5lanes_kernel.h
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xnat-tui --sandbox

# Debian packages the end-to-end tests drive: tmux runs the real TUI, dcmtk
# (storescu, storescp, dcmdump) is the third-party DICOM peer of the sender and receiver.
tmux:
	@missing=""; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	command -v storescp >/dev/null 2>&1 || missing="$$missing dcmtk"; \
	[ -z "$$missing" ] || { \
	  echo "installing$$missing (Debian packages) for the end-to-end tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) tmux
	$(BIN)/pytest -n 2 -q

test: lint typecheck pytest

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

# A scratch venv gets the newest versions the ranges allow; its `pip freeze` (under the
# header comments kept from the old file) becomes the new lock. Run `make test` after it.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(LOCK_VENV)/bin/python -m pip install --quiet '.[test]'
	{ grep '^#' $(CONSTRAINTS); \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude xnat-tui | grep -v '^wheel=='; \
	} > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
