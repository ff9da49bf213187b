"""MkDocs hook: renders the bank into the quiz page and publishes the blank answer file beside it."""
from __future__ import annotations

from mkdocs.exceptions import PluginError

from handbook.course.quiz import BANK, QuizError, bank as bank_module, render

PAGE = "assessment/questions.md"
MARKER = "<!-- quiz: questions -->"
TEMPLATE = "assessment/answers.yaml"


def on_files(files, config):
    from mkdocs.structure.files import File

    try:
        bank = bank_module.load(BANK)
    except QuizError as err:
        raise PluginError(f"quiz: {err}") from None
    files.append(File.generated(config, TEMPLATE, content=render.template(bank)))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"quiz: docs/{PAGE} lost its {MARKER} line, where the questions go")
    try:
        return markdown.replace(MARKER, render.questions_markdown(bank_module.load(BANK)))
    except QuizError as err:
        raise PluginError(f"quiz: {err}") from None
