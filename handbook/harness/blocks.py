"""The code blocks of a handbook page: where each one is, what it needs, and what it runs.

A python fence is checked unless it says `notest`; a console/bash/sh fence runs when it says `run` (see
shell_blocks.py). Every fence option is described once, in fence_options.py; a word that is not an option of its
fence is an error naming page:line (a misspelt option must never silently change what runs). An include line
follows the grammar in includes.py, and a garbled one is an error naming its line.
"""
import functools
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

from handbook import DOCS, INSTRUCTOR, SNIPPETS
from handbook.harness import containers, fence_options, requirements, includes
from handbook.harness.fence_options import PYTHON, SHELL


class BlockError(ValueError):
    """A fence the harness refuses; str() is `docs/page.md:LINE: what to fix`."""

    def __init__(self, page: Path, line: int, message: str):
        self.page, self.line = page, line
        super().__init__(f"{rel(page)}:{line}: {message}")


def rel(path: Path) -> str:
    """A path as authors write it: relative to the working directory when inside it (docs/x.md)."""
    return _rel(str(path), os.getcwd())


@functools.lru_cache(maxsize=4096)
def _rel(path: str, cwd: str) -> str:
    try:
        return Path(path).resolve().relative_to(Path(cwd)).as_posix()
    except ValueError:
        return path


class PageParser(MarkdownIt):
    """CommonMark, after flattening Material's containers; pytest-markdown-docs gets it through its hook."""

    def __init__(self):
        super().__init__("commonmark")

    def parse(self, src, env=None):
        if env is not None:
            return super().parse(containers.flatten(src), env)
        return list(_tokens(src))  # a build and a collection read each page several times: parse it once


_COMMONMARK = MarkdownIt("commonmark")


@functools.lru_cache(maxsize=256)
def _tokens(src: str) -> tuple:
    return tuple(_COMMONMARK.parse(containers.flatten(src)))


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    end_line: int  # 1-based line after the closing fence (where output may be inserted)
    lang: str
    options: dict = field(default_factory=dict)
    requires: requirements.Requirements | None = None
    timeout: int | None = None
    snippet: includes.Snippet | None = None
    code: str = ""  # the fence's own text (the include line for snippet blocks)

    @property
    def checked(self) -> bool:
        return self.lang in PYTHON and "notest" not in self.options

    @property
    def recorded(self) -> bool:
        return "record" in self.options

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"

    @property
    def runs(self) -> str:
        """The code the check executes: the included snippet, or the fence's own text."""
        return self.snippet.text if self.snippet else self.code


def split_info(info: str) -> tuple[str, list[str]]:
    """`python title="a b" record` -> ("python", ['title=a b', 'record']); brace syntax {.python ...} too."""
    info = info.strip()
    if info.startswith("{") and info.endswith("}"):
        words = shlex.split(info[1:-1])
        lang = next((w[1:] for w in words if w.startswith(".")), "")
        return lang, [w for w in words if not w.startswith(".")]
    words = shlex.split(info)
    return (words[0], words[1:]) if words else ("", [])


def parse_options(page: Path, line: int, lang: str, words: list[str]) -> dict:
    options: dict = {}
    allowed = {o.name: o for o in fence_options.allowed(lang)}
    for word in words:
        key, eq, value = word.partition("=")
        if key.startswith("fixture:") and key != "fixture:" and not eq and "fixture" in allowed:
            options.setdefault("fixtures", []).append(key.removeprefix("fixture:"))
            continue
        option = allowed.get(key)
        if option is None or option.name == "fixture" or option.value != bool(eq):
            raise BlockError(page, line, fence_options.unknown_message(word, lang))
        if key in options:
            raise BlockError(page, line, f"fence option {key!r} is given twice: keep one")
        options[key] = value if eq else True
    if lang in SHELL and "run" not in options:
        given = sorted(set(options) & {"requires", "timeout", "sim"})
        if given:
            raise BlockError(page, line, f"{', '.join(given)} on a {lang} block only mean something with `run`: "
                                         f"write ```{lang} run {' '.join(words)}, or drop {', '.join(given)}")
    return options


def parse_block(page: Path, token, snippet_dir: Path = SNIPPETS) -> Block:
    line = token.map[0] + 1
    try:
        lang, words = split_info(token.info)
    except ValueError as err:  # unbalanced quotes
        raise BlockError(page, line, f"cannot read fence options {token.info!r}: {err}") from None
    options = parse_options(page, line, lang, words)
    req = timeout = None
    if "requires" in options:
        try:
            req = requirements.parse(options["requires"])
        except requirements.RequirementError as err:
            raise BlockError(page, line, str(err)) from None
    if "timeout" in options:
        if not re.fullmatch(r"[0-9]+", options["timeout"]) or int(options["timeout"]) == 0:
            raise BlockError(page, line, f"timeout={options['timeout']!r} must be a whole number of seconds > 0")
        timeout = int(options["timeout"])
    snippet = None
    found = [(n, ln) for n, ln in enumerate(token.content.splitlines(), line + 1) if includes.is_include(ln)]
    if found:
        if len(found) > 1 or token.content.strip() != found[0][1].strip():
            raise BlockError(page, line, "a block that includes a snippet holds exactly one --8<-- line and nothing else")
        number, text = found[0]
        try:
            snippet = includes.resolve(includes.include_target(text), snippet_dir)
        except includes.SnippetError as err:
            raise BlockError(page, number, str(err)) from None
    block = Block(page, line, token.map[1], lang, options, req, timeout, snippet, token.content)
    if block.checked and "continuation" in options and snippet:
        raise BlockError(page, line, "a snippet block cannot be a continuation: snippets are whole programs")
    if block.recorded and not (block.checked and snippet):
        raise BlockError(page, line, "record needs a checked python block that includes a snippet (recordings live beside it)")
    return block


def parse_page(page: Path, snippet_dir: Path = SNIPPETS) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [parse_block(page, t, snippet_dir) for t in PageParser().parse(text) if t.type == "fence" and t.map]


def pages(docs: Path) -> list[Path]:
    return sorted(docs.rglob("*.md"))


def checked_pages() -> list[Path]:
    """Every page whose blocks the checks run and whose includes count: docs/, and instructor/ (lab solutions)."""
    return pages(DOCS) + pages(INSTRUCTOR)
