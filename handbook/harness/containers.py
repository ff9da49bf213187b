"""Flatten admonitions, details and content tabs so a CommonMark parser sees the fences inside them.

Material's containers (`!!! note`, `??? tip`, `=== "Tab"`) indent their body by four spaces, which CommonMark
reads as an indented code block. Flattening replaces each container's opening line by a blank line and removes
the container's indentation from its body, keeping the line count, so every line number stays the page's own.
"""
import re

OPENER = re.compile(r"^(?P<indent> *)(?:!!!|\?\?\?\+?|===)\s")


def flatten(text: str) -> str:
    body_indents: list[int] = []  # indentation of each open container's body, innermost last
    out = []
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if line.strip():
            while body_indents and indent < body_indents[-1]:
                body_indents.pop()
        if OPENER.match(line):
            out.append("")
            body_indents.append(indent + 4)
            continue
        shift = body_indents[-1] if body_indents and line.strip() else 0
        out.append(line[shift:])
    return "\n".join(out) + "\n"
