"""Resolve ``--8<-- "path[:section]"`` the way pymdownx.snippets does, keeping snippet line numbers.

Sections are marked in a snippet with ``# --8<-- [start:name]`` / ``# --8<-- [end:name]``; marker lines never
reach the page. Paths are relative to snippets/ (the site's `base_path`).
"""
import re
from dataclasses import dataclass
from pathlib import Path

from . import SNIPPETS

INCLUDE = re.compile(r'^\s*-{1,}8<-{1,}\s+"(?P<target>[^"]+)"\s*$')
MARKER = re.compile(r"^\s*#\s*-{1,}8<-{1,}\s*\[\s*(?P<kind>start|end)\s*:\s*(?P<name>[a-z][-_0-9a-z]*)\s*\]\s*$")


class SnippetError(ValueError):
    """An include that names a missing file or section."""


@dataclass(frozen=True)
class Snippet:
    path: Path  # absolute path of the snippet file
    section: str | None
    first_line: int  # 1-based line in the snippet file of the first included line
    text: str  # what the page shows and the check runs, marker lines removed



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
