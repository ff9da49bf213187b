# The two things anyone does with this repository. Both work on a fresh Debian machine with Python 3.11.
#   make serve   build the site and serve it on http://127.0.0.1:8000 (the main job)
#   make check   install everything the checks need and run all of them (what CI runs, via .ci/run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

# Material for MkDocs prints an end-of-life banner on every start; this is its documented switch. The build's own
# warnings are untouched (mkdocs.yml has strict: true).
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve check system-deps learner-repo

# mkdocs.yml `watch:` adds snippets/ (programs and their recordings) to what live-reload follows.
serve: $(VENV)/.site-installed
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(PORT)

check: $(VENV)/.test-installed system-deps
	$(BIN)/python -m pytest --durations=15

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Each install runs again only when what it reads changed (a stamp file per set, newer than its inputs).
$(VENV)/.site-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

# checks/constraints.txt pins the CPU wheel of torch that CI uses (an unpinned torch is a multi-GB CUDA build).
$(VENV)/.test-installed: pyproject.toml checks/constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -c checks/constraints.txt -e '.[test]'
	@touch $@ $(VENV)/.site-installed

# Debian packages the checks start for real: Prometheus + promtool (Lab 1), Chromium (browser checks).
system-deps:
	@bash checks/install-system-deps.sh

# The learner repository (handbook/site/learner_repo): what learners clone, generated from the committed tree with a
# history of its own; OUT is a new folder, or an earlier learner repository to add a commit to.
learner-repo: $(VENV)/.site-installed
	@test -n "$(OUT)" || { echo "make learner-repo: name its folder, e.g. make learner-repo OUT=../mod107-learner" >&2; exit 2; }
	$(BIN)/python -m handbook.site.learner_repo "$(OUT)"
