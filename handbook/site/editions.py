"""The instructor edition's MkDocs hook: adds instructor/ (quiz key, lab solutions, notes) to the learner site.

mkdocs.yml builds the learner edition, which never loads this hook; mkdocs.instructor.yml inherits mkdocs.yml and
adds it. instructor/ lies outside docs/, so no learner build can copy any of it (checks/test_editions.py).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from handbook import ROOT

INSTRUCTOR = ROOT / "instructor"
PREFIX = "instructor"  # the instructor pages' folder in the built site
DOWNLOADS = ("quiz/key.yaml",)
KEY_MARKER = "<!-- quiz: key -->"  # instructor files published as downloads beside the pages


def pages() -> list[Path]:
    """Every instructor page, the landing page first."""
    found = sorted(INSTRUCTOR.rglob("*.md"))
    return sorted(found, key=lambda p: (p.name != "index.md" or p.parent != INSTRUCTOR, p.as_posix()))


def title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return re.sub(r"\s*\{.*\}\s*$", "", line[2:]).strip()
    return page.stem


def on_config(config):
    # `mkdocs build -f mkdocs.instructor.yml` leaves the path relative; the other hooks resolve snippets from it.
    config.config_file_path = os.path.abspath(config.config_file_path)
    entries = []
    for page in pages():
        uri = f"{PREFIX}/{page.relative_to(INSTRUCTOR).as_posix()}"
        entries.append(uri if page == INSTRUCTOR / "index.md" else {title(page): uri})
    config.nav = [*(config.nav or []), {"Instructor edition": entries}]
    config.site_name = f"{config.site_name} · instructor edition"
    return config


def on_page_markdown(markdown, page, config, files):
    """The key, rendered into instructor/assessment.md from instructor/quiz/key.yaml."""
    if page.file.src_uri != f"{PREFIX}/assessment.md":
        return markdown
    from mkdocs.exceptions import PluginError

    from handbook.course.quiz import QuizError, bank, key, render

    try:
        questions = bank.load()
        return markdown.replace(KEY_MARKER, render.key_markdown(questions, key.load(questions)))
    except QuizError as err:
        raise PluginError(f"quiz: {err}") from None


def on_files(files, config):
    from mkdocs.structure.files import File

    for page in pages():
        rel = page.relative_to(INSTRUCTOR).as_posix()
        files.append(File.generated(config, f"{PREFIX}/{rel}", abs_src_path=str(page)))
    for rel in (r for r in DOWNLOADS if (INSTRUCTOR / r).is_file()):
        files.append(File.generated(config, f"{PREFIX}/{rel}", abs_src_path=str(INSTRUCTOR / rel)))
    return files
