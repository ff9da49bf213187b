"""Snippets are the learner's programs: each is shown by a page, run by a check, and standalone."""
import ast
from pathlib import Path

import pytest

from handbook import DOCS, ROOT, SNIPPETS
from handbook.harness import blocks
from handbook.site import crawl

CHECKS = Path(__file__).resolve().parent
RECORDING_SUFFIXES = (".rec.json", ".rec.failed.json")


def snippet_files() -> list[Path]:
    return sorted(p for p in SNIPPETS.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and not p.name.endswith(RECORDING_SUFFIXES))


def all_blocks() -> list[blocks.Block]:
    return [b for page in blocks.checked_pages() for b in blocks.parse_page(page)]  # instructor/ too


def test_every_snippet_is_shown_by_a_page():
    included = {b.snippet.path for b in all_blocks() if b.snippet}
    orphans = [p.relative_to(ROOT).as_posix() for p in snippet_files() if p not in included]
    assert not orphans, f"snippets no page includes (include them with --8<-- or delete them): {orphans}"


def test_every_python_snippet_runs_in_some_check():
    run_by_blocks = {b.snippet.path for b in all_blocks() if b.snippet and b.checked}
    check_sources = "\n".join(p.read_text() for p in CHECKS.rglob("*.py"))
    unrun = [p.relative_to(ROOT).as_posix() for p in snippet_files() if p.suffix == ".py"
             and p not in run_by_blocks and p.relative_to(SNIPPETS).as_posix() not in check_sources]
    assert not unrun, f"python snippets only in notest blocks and named by no test under checks/: {unrun}"


@pytest.mark.parametrize("snippet", [p for p in snippet_files() if p.suffix == ".py"],
                         ids=lambda p: p.relative_to(SNIPPETS).as_posix())
def test_snippets_are_standalone(snippet):
    tree = ast.parse(snippet.read_text(), filename=str(snippet))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "handbook" not in imported, f"{snippet.relative_to(ROOT)} imports the handbook's machinery; snippets must stand alone"


def test_snippet_folders_mirror_pages():
    pages = {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*") if p.suffix in (".md", ".ipynb")}
    strays = sorted({f.parent.relative_to(SNIPPETS).as_posix() for f in snippet_files()} - pages)
    assert not strays, f"snippets/<section>/<page>/ folders with no docs/<section>/<page>.md: {strays}"


def test_every_page_is_in_the_nav():
    listed = set(crawl.nav_pages(crawl.load_mkdocs_yml(ROOT).get("nav", [])))
    missing = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*")
                     if p.suffix in (".md", ".ipynb") and p.relative_to(DOCS).as_posix() not in listed)
    assert not missing, f"pages missing from mkdocs.yml nav: {missing}"
