"""A hardened YAML reader that keeps each value's line, so every error can say `FILE:LINE: what is wrong`.

Learners' answer files are untrusted input. This reader works on PyYAML's event stream (never its recursive
composer or its constructors) and enforces budgets before and while it parses:

- a byte cap before anything is parsed (the file is read through a descriptor opened without following links and
  checked to be a regular file, so a FIFO or a device can never block it);
- UTF-8 only; one document only;
- depth, node-count and scalar-length caps, checked event by event, so a 10 000-deep nesting stops at depth 33;
- anchors and aliases refused (an alias bomb is refused at its first anchor), every explicit tag refused
  (`!!python/object`, `!custom`, even `!!str`), duplicate keys refused, and a key must be a scalar.

Scalars resolve as `yaml.safe_load` resolves them (null, bool, int, float, str); timestamps stay text.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handbook.course.quiz import QuizError


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 256 * 1024
    max_depth: int = 32
    max_nodes: int = 10_000
    max_scalar: int = 8 * 1024


ANSWERS = Limits()  # a learner's answer file: a full paper is a few KiB
TRUSTED = Limits(max_bytes=2 * 1024 * 1024, max_depth=32, max_nodes=200_000, max_scalar=64 * 1024)  # bank, key


@dataclass
class Node:
    """A loaded value (dict of Node, list of Node, or a scalar) and the 1-based line it starts on."""
    value: Any
    line: int
    key_lines: dict | None = field(default=None)  # a mapping's keys -> the line each key is on

    def plain(self) -> Any:
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_SCALARS = {
    "tag:yaml.org,2002:null": _CONSTRUCTOR.construct_yaml_null,
    "tag:yaml.org,2002:bool": _CONSTRUCTOR.construct_yaml_bool,
    "tag:yaml.org,2002:int": _CONSTRUCTOR.construct_yaml_int,
    "tag:yaml.org,2002:float": _CONSTRUCTOR.construct_yaml_float,
}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _scalar(event: yaml.ScalarEvent) -> Any:
    tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
    build = _SCALARS.get(tag)
    if build is None:
        return event.value
    return build(yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark))


def read_bytes(path: Path, name: str, limit: int) -> bytes:
    """PATH's bytes, at most LIMIT of them; a link, a folder, a FIFO, a device or a bigger file is one QuizError."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise QuizError(f"{name}: no such file") from None
    except OSError as err:
        raise QuizError(f"{name}: cannot read it ({err.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise QuizError(f"{name}: a symbolic link; submit the file itself, not a link to it")
    if stat.S_ISDIR(info.st_mode):
        raise QuizError(f"{name}: no such file (it is a folder)")
    if not stat.S_ISREG(info.st_mode):
        raise QuizError(f"{name}: not a regular file (a pipe, socket or device); submit a text file")
    if info.st_size > limit:
        raise QuizError(f"{name}: {info.st_size} bytes; an answer file is at most {limit} bytes")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise QuizError(f"{name}: cannot read it ({err.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped after the lstat
            raise QuizError(f"{name}: not a regular file; submit a text file")
        data = b""
        while len(data) <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise QuizError(f"{name}: more than {limit} bytes; an answer file is at most {limit} bytes")
    return data


def load(path: Path, name: str | None = None, limits: Limits = ANSWERS) -> Node:
    """The document at PATH as a Node tree; a missing, unreadable, oversized or malformed file raises QuizError."""
    name = name or path.name
    data = read_bytes(path, name, limits.max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise QuizError(f"{name}:{line}: not UTF-8 text (byte {data[err.start]:#04x}); save the file as UTF-8") from None
    return loads(text, name, limits)


def loads(text: str, name: str, limits: Limits = ANSWERS) -> Node:
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        raise QuizError(f"{name}: more than {limits.max_bytes} bytes; an answer file is at most {limits.max_bytes} bytes")
    if "\x00" in text:
        raise QuizError(f"{name}: holds NUL characters; it is not a text file")
    try:
        return _build(yaml.parse(text, Loader=_LOADER), name, limits)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = " ".join(str(err.problem or err.context or "malformed").split())
        raise QuizError(f"{where}: not valid YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise QuizError(f"{name}: not valid YAML: {' '.join(str(err).split())[:120]}") from None
    except RecursionError:  # not expected (no recursion here); never a traceback
        raise QuizError(f"{name}: nested too deeply") from None


def _build(events, name: str, limits: Limits) -> Node:
    """Fold the event stream into Nodes with an explicit stack (no recursion), checking every budget on the way."""
    stack: list[list] = []  # [Node, pending key or _NO_KEY, key line]
    root: Node | None = None
    documents = nodes = 0
    no_key = object()

    def where(event) -> str:
        return f"{name}:{event.start_mark.line + 1}"

    def attach(node: Node, event) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        container = parent[0]
        if isinstance(container.value, list):
            container.value.append(node)
            return
        if parent[1] is no_key:  # this node is a key
            if isinstance(node.value, (dict, list)):
                raise QuizError(f"{where(event)}: a key must be a plain word, not a list or mapping")
            key = node.value
            if key in container.value:
                raise QuizError(f"{where(event)}: duplicate key {key!r} (first on line "
                                f"{container.key_lines[key]}); keep one")
            parent[1], parent[2] = key, node.line
            return
        container.value[parent[1]] = node
        container.key_lines[parent[1]] = parent[2]
        parent[1] = no_key

    for event in events:
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise QuizError(f"{where(event)}: a second YAML document (---); one document per file")
            continue
        if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
            continue
        if isinstance(event, yaml.AliasEvent):
            raise QuizError(f"{where(event)}: YAML aliases (*{event.anchor}) are not allowed; write the value out")
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            node = stack.pop()[0]
            attach(node, event)
            continue
        if getattr(event, "anchor", None):
            raise QuizError(f"{where(event)}: YAML anchors (&{event.anchor}) are not allowed; write the value out")
        tag = getattr(event, "tag", None)
        if tag is not None:  # only an explicit tag sets it: !!python/object, !custom, !!str
            raise QuizError(f"{where(event)}: YAML tags ({tag}) are not allowed; write plain values")
        nodes += 1
        if nodes > limits.max_nodes:
            raise QuizError(f"{where(event)}: more than {limits.max_nodes} values; this is not an answer file")
        line = event.start_mark.line + 1
        if isinstance(event, yaml.ScalarEvent):
            if len(event.value) > limits.max_scalar:
                raise QuizError(f"{where(event)}: a value of {len(event.value)} characters; at most {limits.max_scalar}")
            attach(Node(_scalar(event), line), event)
            continue
        if len(stack) >= limits.max_depth:
            raise QuizError(f"{where(event)}: nested more than {limits.max_depth} levels deep")
        node = Node({}, line, {}) if isinstance(event, yaml.MappingStartEvent) else Node([], line)
        stack.append([node, no_key, 0])
    if root is None:
        return Node(None, 1)
    return root
