# The two things anyone does with this repository. Both work on a fresh Debian machine with Python 3.11.
#   make serve   build the site and serve it on http://127.0.0.1:8000 (the main job)
#   make check   install everything the checks need and run all of them (what CI runs, via .ci/run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.PHONY: serve check site-deps test-deps system-deps

serve: site-deps
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(PORT)

check: test-deps system-deps
	$(BIN)/python -m pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

site-deps: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .

# checks/constraints.txt pins the CPU wheel of torch that CI uses (an unpinned torch is a multi-GB CUDA build).
test-deps: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -c checks/constraints.txt -e '.[test]'

# Debian packages the checks start for real: Prometheus + promtool (Lab 1), Chromium (browser checks).
system-deps:
	@bash checks/install-system-deps.sh
