"""The troubleshooting chapter's runbooks share one structure, and each links its check, its drill and its page."""
import re
from pathlib import Path

import pytest

from handbook import drills
from troubleshooting_matrix import CHECKS, RUNBOOK

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "docs" / "troubleshooting"
STRUCTURE = ["Symptom", "Is it real?", "Severity", "Triage commands", "Likely causes", "Fix", "Verify", "Prevent",
             "Escalate"]
RUNBOOKS = sorted(set(RUNBOOK.values()))


@pytest.mark.parametrize("page", RUNBOOKS)
def test_runbook_follows_the_structure(page):
    text = (CHAPTER / page).read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:len(STRUCTURE)] == STRUCTURE, f"{page}: sections {headings}, want {STRUCTURE} first"


@pytest.mark.parametrize("page", RUNBOOKS)
def test_runbook_starts_from_its_check_and_names_its_drills(page):
    text = (CHAPTER / page).read_text(encoding="utf-8")
    first = text.split("## Is it real?")[1].split("\n## ")[0]
    for check in [c for c in CHECKS if RUNBOOK[c] == page]:
        assert f"--check {check}" in first, f"{page}: 'Is it real?' does not run `--check {check}`"
        assert f"Check `{check}`" in text.split("\n## ")[0], f"{page}: the header does not name check {check}"
    own = [d.id for d in drills.load().values() if d.runbook == page]
    assert own, f"{page}: no drill trains this runbook (handbook/drills/practice.toml)"
    for drill_id in own:
        assert f"`{drill_id}`" in text.split("\n## ")[0], f"{page}: the header does not name {drill_id}"


def test_every_check_has_a_runbook_and_every_runbook_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in RUNBOOKS + ["index.md", "evidence.md", "drills.md"]:
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
