"""The include grammar (GRAMMAR, rendered on the authors' page), and resolving an include the way pymdownx.snippets
does, keeping snippet line numbers."""
import re
from dataclasses import dataclass
from pathlib import Path

from handbook import SNIPPETS

GRAMMAR = """\
An include is the only line of its fence. The whole file (single or double quotes):

--8<-- "fundamentals/memory/01_copy_bandwidth.py"

The section that the file marks with a comment line "# --8<-- [start:sample]" before it
and a comment line "# --8<-- [end:sample]" after it:

--8<-- "labs/lab2/03_sampler.py:sample"

Paths are relative to snippets/ (the site's base_path); marker lines never reach the page. Line ranges
("file.py:3:9"), which pymdownx.snippets also reads, are refused: they break silently when the file changes, a
section does not. Any other line that starts with the scissors --8<-- is a garbled include, an error naming its
line. On a page, pymdownx.snippets drops every line that holds a section marker and reads a line of bare scissors
as the start of a list of files: write ;--8<-- (its escape) to show either.
"""
# pymdownx.snippets' own patterns for the lines it removes or reads (see GRAMMAR's last sentence).
UNESCAPED_SECTION = re.compile(r"(?<!;)-+8<-+[ \t]+\[[ \t]*(?:start|end)[ \t]*:", re.I)
BARE_SCISSORS = re.compile(r"^[ \t]*-+8<-+[ \t]*$")
SCISSORS = re.compile(r"^\s*-+8<-+")
INCLUDE = re.compile(r"""^\s*-+8<-+\s+(?P<q>["'])(?P<target>[^"']+)(?P=q)\s*$""")
LINE_RANGE = re.compile(r":\d+(?::\d+)?(?:,\d+(?::\d+)?)*$")
MARKER = re.compile(r"^\s*#\s*-{1,}8<-{1,}\s*\[\s*(?P<kind>start|end)\s*:\s*(?P<name>[a-z][-_0-9a-z]*)\s*\]\s*$")


class SnippetError(ValueError):
    """An include that names a missing file or section."""


@dataclass(frozen=True)
class Snippet:
    path: Path  # absolute path of the snippet file
    section: str | None
    first_line: int  # 1-based line in the snippet file of the first included line
    text: str  # what the page shows and the check runs, marker lines removed



def is_include(line: str) -> bool:
    """Any line that starts with the scissors, well-formed or not (include_target says which)."""
    return bool(SCISSORS.match(line))


def include_target(line: str) -> str:
    m = INCLUDE.match(line)
    if not m:
        raise SnippetError(f"garbled include {line.strip()!r}: write --8<-- \"path/to/file.py\" or "
                           f"--8<-- \"path/to/file.py:section\" (paths under snippets/)")
    if LINE_RANGE.search(m["target"]):
        raise SnippetError(f"include {m['target']!r} names lines, which break silently when the file changes: mark a "
                           f"section in the file (# --8<-- [start:NAME] ... [end:NAME]) and include \"path:NAME\"")
    return m["target"]


def resolve(target: str, base: Path = SNIPPETS) -> Snippet:
    rel, _, section = target.partition(":")
    path = (base / rel).resolve()
    if not path.is_file():
        raise SnippetError(f'snippet "{rel}" not found under {base.name}/')
    lines = path.read_text(encoding="utf-8").splitlines()
    if not section:
        # Marker lines are blanked, not dropped, so line numbers in tracebacks stay the file's own.
        kept = ["" if MARKER.match(line) else line for line in lines]
        return Snippet(path, None, 1, "\n".join(kept) + "\n")
    start = end = None
    for number, line in enumerate(lines, 1):
        m = MARKER.match(line)
        if m and m["name"] == section:
            if m["kind"] == "start" and start is None:
                start = number
            elif m["kind"] == "end" and start is not None:
                end = number
                break
    if start is None or end is None:
        raise SnippetError(f'section "{section}" of "{rel}" needs "# --8<-- [start:{section}]" and "[end:{section}]"')
    body = [line for line in lines[start:end - 1] if not MARKER.match(line)]
    return Snippet(path, section, start + 1, "\n".join(body) + "\n")
