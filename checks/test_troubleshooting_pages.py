"""The troubleshooting chapter's runbooks share one structure, and each links its check, its drill and its page."""
import re
from pathlib import Path

import pytest

from handbook.course import drills
from troubleshooting_matrix import CHECKS, RUNBOOK

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "docs" / "troubleshooting"
STRUCTURE = ["Symptom", "Is it real?", "Severity", "Triage commands", "Likely causes", "Fix", "Verify", "Prevent",
             "Escalate"]
# Runbooks whose check is another runbook's (RUNBOOK maps each check to its main page): page -> its checks.
MORE_RUNBOOKS = {"oom.md": ["memory"], "gsp.md": ["bus", "xid"], "nvlink.md": ["links"],
                 "container-toolkit.md": ["driver"], "power-oob.md": ["clocks"]}
NOT_RUNBOOKS = {"index.md", "drills.md", "evidence.md", "symptoms.md"}
RUNBOOKS = sorted(set(RUNBOOK.values()) | set(MORE_RUNBOOKS))
# New runbooks waiting for a drill of their own (the drill runner is being reworked; handbook/course/practice_drills.toml).
NO_DRILL_YET = {"fabric-manager.md", "gsp.md", "mig-drift.md", "power-oob.md"}
# New runbooks that share a drill with the runbook it belongs to: page -> that drill.
SHARED_DRILL = {"container-toolkit.md": "drill-container-lost-nvml", "nvlink.md": "drill-nvlink-down"}


def checks_of(page):
    return [c for c in CHECKS if RUNBOOK[c] == page] + MORE_RUNBOOKS.get(page, [])


def test_every_page_of_the_chapter_is_a_runbook_or_listed():
    pages = {p.name for p in CHAPTER.glob("*.md")}
    assert pages - NOT_RUNBOOKS == set(RUNBOOKS), f"pages neither runbooks nor listed: {pages - NOT_RUNBOOKS - set(RUNBOOKS)}"


@pytest.mark.parametrize("page", RUNBOOKS)
def test_runbook_follows_the_structure(page):
    text = (CHAPTER / page).read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:len(STRUCTURE)] == STRUCTURE, f"{page}: sections {headings}, want {STRUCTURE} first"


@pytest.mark.parametrize("page", RUNBOOKS)
def test_runbook_starts_from_its_check_and_names_its_drills(page):
    text = (CHAPTER / page).read_text(encoding="utf-8")
    first = text.split("## Is it real?")[1].split("\n## ")[0]
    header = text.split("\n## ")[0]
    assert re.search(r'!!! info "Checks? `', header), f"{page}: the header does not start with its check"
    for check in checks_of(page):
        assert f"--check {check}" in first, f"{page}: 'Is it real?' does not run `--check {check}`"
        assert f"`{check}`" in header, f"{page}: the header does not name check {check}"
    own = [d.id for d in drills.load().values() if d.runbook == page]
    if page in SHARED_DRILL:
        own = [SHARED_DRILL[page]]
        assert own[0] in drills.load(), f"{page}: {own[0]} is not a drill"
    if page in NO_DRILL_YET:
        assert not own and "no drill yet" in header, f"{page}: a drill exists now; name it and drop NO_DRILL_YET"
        return
    assert own, f"{page}: no drill trains this runbook (handbook/course/practice_drills.toml)"
    for drill_id in own:
        assert f"`{drill_id}`" in header, f"{page}: the header does not name {drill_id}"


def test_the_symptom_index_sends_every_runbook_somewhere():
    text = (CHAPTER / "symptoms.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| You see")]
    linked = {m for row in rows for m in re.findall(r"\]\(([a-z-]+\.md)\)", row.split(" | ")[-1])}
    assert set(RUNBOOKS) <= linked, f"runbooks no symptom leads to: {set(RUNBOOKS) - linked}"
    assert all(len(row.split(" | ")) == 3 for row in rows), "every row: symptom | first command | runbook"


def test_every_check_has_a_runbook_and_every_runbook_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in RUNBOOKS + sorted(NOT_RUNBOOKS):
        assert (CHAPTER / page).is_file(), page
        assert f"troubleshooting/{page}" in nav, f"{page} is not in mkdocs.yml's nav"


def test_drills_page_lists_every_drill_without_its_answer():
    text = (CHAPTER / "drills.md").read_text(encoding="utf-8")
    key = drills.load()
    assert len(key) >= 10
    for drill in key.values():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{drill.id}` |")), None)
        assert row, f"drills.md does not list {drill.id}"
        assert drill.page in row and f"({drill.runbook})" in row, f"{drill.id}: prompt or runbook differs: {row}"
        assert drill.why not in text, f"drills.md publishes the answer to {drill.id}"
    listed = re.findall(r"^\| `(drill-[a-z0-9-]+)` \|", text, re.M)
    assert sorted(listed) == sorted(key), "drills.md lists drills the key does not have"


def test_recorded_figures_are_references_to_the_recordings():
    # The runbooks state what the H200 measured only through {{ rec:... }} references to their own snippets.
    for page, snippet in (("oom.md", "01_oom_analysis"), ("throttling.md", "01_clock_reasons"),
                          ("index.md", "02_health_recording")):
        text = (CHAPTER / page).read_text(encoding="utf-8")
        refs = re.findall(r"\{\{ rec:([^:}]+):", text)
        assert refs and set(refs) == {snippet}, f"{page}: references {set(refs)}"
        assert 'requires="gpu" record' in text, f"{page}: no recorded block"
