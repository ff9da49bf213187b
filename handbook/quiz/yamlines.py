"""Load YAML keeping each value's line number and refusing duplicate keys, so errors can say `file:LINE:`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import QuizError


@dataclass
class Node:
    """A loaded value (dict of Node, list of Node, or a scalar) and the 1-based line it starts on."""
    value: Any
    line: int
    key_lines: dict | None = None  # a mapping's keys -> the line each key is on

    def plain(self) -> Any:
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def _convert(node: yaml.Node, name: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Node] = {}
        key_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, name).value
            if isinstance(key, (dict, list)):
                raise QuizError(f"{name}:{key_node.start_mark.line + 1}: a key must be a plain word, not a list or mapping")
            if key in out:
                raise QuizError(f"{name}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                                f"(first on line {out[key].line}); keep one")
            out[key] = _convert(value_node, name)
            key_lines[key] = key_node.start_mark.line + 1
        return Node(out, line, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(v, name) for v in node.value], line)
    # Scalars resolve as safe_load would resolve them (int, float, bool, null, timestamps, str).
    return Node(yaml.SafeLoader("").construct_object(node), line)


def load(path: Path, name: str | None = None) -> Node:
    """The document at PATH as a Node tree; a missing, unreadable or malformed file raises QuizError."""
    name = name or path.name
    if not path.is_file():
        raise QuizError(f"{name}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise QuizError(f"{name}: cannot read it as UTF-8 text ({err.__class__.__name__})") from None
    return loads(text, name)


def loads(text: str, name: str) -> Node:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise QuizError(f"{where}: not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise QuizError(f"{name}: not valid YAML: {str(err).splitlines()[0]}") from None
    if root is None:
        return Node(None, 1)
    return _convert(root, name)
