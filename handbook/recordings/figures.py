"""Figure references: prose states a measured figure as `{{ rec:SNIPPET:KEYPATH | SPEC }}`, rendered from its recording.

    {{ rec:fundamentals/compute/01_matmul_throughput:matmul_throughput.json/tflops/bf16/8192 | .0f }} TFLOP/s
    {{ rec:01_copy_bandwidth:copy_bandwidth.json/best_GBps | /1000 .2f }} TB/s   (a snippet of the page's own folder)
    {{ rec:01_mfu:mfu.json/achieved_flops ÷ mfu.json/datasheet_flops | .1% }}    (a ratio of two recorded values)
    {{ rec:01_mfu:card }}                                                         (the card: "NVIDIA H200")

SNIPPET is a snippet path under snippets/ without `.py`, or a bare `NN_purpose` of the page's own snippet folder
(snippets/<section>/<page>/). KEYPATH starts with a JSON file the snippet wrote (the recorder keeps it parsed) and
walks it by `/`-separated keys; `stdout~REGEX` takes the one group of a regex that matches the recorded output once.
The provenance keys `card`, `cards` (with the count, "2× NVIDIA H200"), `date`, `driver`, `torch` name where it ran.
SPEC is an optional scale (`/1e12`, `*100`) then a Python format spec; a `%` spec renders as "89.1 %".
References are resolved in prose only: inside code (fences and `inline code`) they stay literal, so pages can show
the syntax. A reference to a snippet that does not exist, to a key a fresh recording lacks, or to the recording of a
snippet that no `record` block shows, is an error naming docs/page.md:LINE. A figure not measured yet is *pending*
and renders as such, never as a number: the recording of a `record` block that has none yet, a recording awaiting a
re-recording because its snippet became another program, or a key of a recording made before its code changed
(stale or awaiting a re-recording) that the older code did not write.
"""
import functools
import html
import re
from dataclasses import dataclass
from pathlib import Path

from handbook import INSTRUCTOR, recordings
from handbook.harness.blocks import PageParser, parse_page, rel

REF = re.compile(r"\{\{\s*rec:(?P<body>[^{}]*?)\s*\}\}")
DIVIDE = "÷"
PROVENANCE_KEYS = {"card", "cards", "date", "driver", "torch"}
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


class PendingFigure(LookupError):
    """A figure that waits for a recording (see the module's docstring); str() says which."""


class FigureError(ValueError):
    """A reference that cannot be resolved; str() is `docs/page.md:LINE: what to fix`."""


@dataclass(frozen=True)
class Figure:
    text: str  # the formatted value, as the page shows it
    snippet: Path
    state: recordings.State


def snippet_path(name: str, page: Path, docs: Path, snippet_dir: Path) -> Path:
    """`01_mfu` -> snippets/<section>/<page>/01_mfu.py for docs/<section>/<page>.md (or instructor/<section>/...,
    the instructor edition's pages); a path is under snippets/."""
    if "/" in name:
        return snippet_dir / f"{name}.py"
    top = docs if docs in page.parents else INSTRUCTOR
    rel = page.relative_to(top).with_suffix("")
    return snippet_dir / rel / f"{name}.py"


def walk(data: dict, keypath: str):
    """Follow `file.json/key/key` through a recording's artifacts, or `stdout~REGEX` through its output."""
    if keypath.startswith("stdout~"):
        pattern = keypath.removeprefix("stdout~")
        try:
            found = re.findall(pattern, data["stdout"], re.M)
        except re.error as err:
            raise LookupError(f"bad regex {pattern!r}: {err}") from None
        if len(found) != 1 or not isinstance(found[0], str):
            raise LookupError(f"regex {pattern!r} must match the recorded stdout exactly once with one group "
                              f"(matched {len(found)} times)")
        return found[0]
    first, _, rest = keypath.partition("/")
    artifact = data["artifacts"].get(first)
    if artifact is None or "json" not in artifact:
        shown = ", ".join(k for k, a in data["artifacts"].items() if "json" in a) or "none"
        raise LookupError(f"no JSON file {first!r} in the recording (JSON files: {shown})")
    value, walked = artifact["json"], first
    for key in rest.split("/") if rest else []:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            keys = ", ".join(map(str, value)) if isinstance(value, dict) else f"a {type(value).__name__}"
            raise LookupError(f"no key {key!r} in {walked} (it has: {keys[:200]})")
        walked += f"/{key}"
    return value


def _number(value):
    """Text taken from stdout ("1,024", "3.5e-2") as a number, for scaling and formatting; anything else unchanged."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?", value):
        return float(value.replace(",", ""))
    return value


def provenance_value(data: dict, key: str) -> str:
    p = data["provenance"]
    if key == "card":
        return p["gpu_model"]
    if key == "cards":
        return f"{p['gpu_count']}× {p['gpu_model']}" if p.get("gpu_count", 1) > 1 else p["gpu_model"]
    return {"date": p["date"][:10], "driver": p["driver_version"], "torch": p["torch_version"]}[key]


def render_value(value, spec: str) -> str:
    """Apply `SPEC` = [/N | *N] [format]; `%` formats render with a space before the sign, as the pages write it."""
    spec = spec.strip()
    if spec:
        value = _number(value)
    scale = re.match(r"^([/*])\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*", spec)
    if scale:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise LookupError(f"cannot scale {value!r}: it is not a number")
        factor = float(scale[2])
        value = value / factor if scale[1] == "/" else value * factor
        spec = spec[scale.end():]
    if not spec:
        return str(value)
    try:
        text = format(value, spec)
    except (ValueError, TypeError) as err:
        raise LookupError(f"format {spec!r} does not apply to {value!r}: {err}") from None
    return text[:-1] + " %" if spec.endswith("%") else text


def resolve(body: str, page: Path, docs: Path, snippet_dir: Path) -> Figure:
    """The figure that `{{ rec:BODY }}` on `page` names (raises LookupError with what is wrong)."""
    ref, _, spec = body.partition(" | ")
    name, sep, expr = ref.strip().partition(":")
    if not sep or not name or not expr.strip():
        raise LookupError("write {{ rec:SNIPPET:KEYPATH }} or {{ rec:SNIPPET:KEYPATH | .1f }}")
    snippet = snippet_path(name.strip(), page, docs, snippet_dir)
    if not snippet.is_file():
        raise LookupError(f"no snippet {snippet.relative_to(snippet_dir.parent).as_posix()}")
    state = recordings.state(snippet)
    if state.kind == "missing":
        if snippet.resolve() not in recorded_snippets(docs, snippet_dir):
            raise LookupError(f"{snippet.name} is not shown by any `record` block, so it is never recorded")
        raise PendingFigure(f"{recordings.path_for(snippet).name} does not exist yet: record "
                            f"{snippet.relative_to(snippet_dir).as_posix()} on a GPU (python -m handbook.record)")
    if state.shows_nothing:
        raise PendingFigure(f"{recordings.path_for(snippet).name} was made by the program this snippet was before it "
                            f"changed: re-record {snippet.relative_to(snippet_dir).as_posix()}")
    try:
        return _figure(state, snippet, expr.strip(), spec)
    except LookupError as err:
        if state.kind in ("stale", "awaiting"):  # the older code may not have written what the new code does
            raise PendingFigure(f"{err}, in a recording made before the code changed: re-record "
                                f"{snippet.relative_to(snippet_dir).as_posix()}") from None
        raise


@functools.lru_cache(maxsize=8)
def _recorded_snippets(docs: Path, snippet_dir: Path, stamp: tuple) -> frozenset:
    pages = sorted(docs.rglob("*.md")) + sorted((docs.parent / "instructor").rglob("*.md"))
    return frozenset(b.snippet.path.resolve() for page in pages for b in parse_page(page, snippet_dir) if b.recorded)


def recorded_snippets(docs: Path, snippet_dir: Path) -> frozenset:
    """Every snippet some page's `record` block shows (pages read again when any of them changed)."""
    pages = sorted(docs.rglob("*.md")) + sorted((docs.parent / "instructor").rglob("*.md"))
    return _recorded_snippets(docs, snippet_dir, tuple(p.stat().st_mtime_ns for p in pages))


def _figure(state, snippet: Path, expr: str, spec: str) -> Figure:
    if expr in PROVENANCE_KEYS and not spec:
        return Figure(provenance_value(state.data, expr), snippet, state)
    numerator, div, denominator = (part.strip() for part in expr.partition(f" {DIVIDE} "))
    value = walk(state.data, numerator)
    if div:
        value, below = _number(value), _number(walk(state.data, denominator))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, below)) or not below:
            raise LookupError(f"cannot divide {value!r} by {below!r}")
        value = value / below
    if isinstance(value, (dict, list)):
        raise LookupError(f"{numerator} is a {type(value).__name__}, not a figure: name a key inside it")
    return Figure(render_value(value, spec), snippet, state)


def code_lines(markdown: str) -> set[int]:
    """0-based line numbers inside fenced code (Material's containers flattened first, as the harness does)."""
    inside = set()
    for token in PageParser().parse(markdown):
        if token.type in ("fence", "code_block") and token.map:
            inside.update(range(token.map[0], token.map[1]))
    return inside


def prose_spans(line: str):
    """(start, end) of the parts of a line outside `inline code`."""
    pos = 0
    for m in INLINE_CODE.finditer(line):
        yield pos, m.start()
        pos = m.end()
    yield pos, len(line)


def render(markdown: str, page: Path, docs: Path, snippet_dir: Path) -> str:
    """Replace every reference in the prose of `markdown` (the text of `page`); errors name page:line."""
    skip = code_lines(markdown)
    lines = markdown.split("\n")
    for number, line in enumerate(lines):
        if number in skip or "{{" not in line:
            continue
        out, pos = [], 0
        for start, end in prose_spans(line):
            out.append(line[pos:start])
            out.append(REF.sub(lambda m: _replace(m, page, docs, snippet_dir, number + 1), line[start:end]))
            pos = end
        lines[number] = "".join(out)
    return "\n".join(lines)


def _replace(m, page, docs, snippet_dir, line_no) -> str:
    try:
        fig = resolve(m["body"], page, docs, snippet_dir)
    except PendingFigure as pending:
        return f'<span class="recorded-figure pending" title="{html.escape(str(pending))}">⟨not recorded yet⟩</span>'
    except LookupError as err:
        raise FigureError(f"{rel(page)}:{line_no}: figure reference {m[0]}: {err}") from None
    p = fig.state.data["provenance"]
    note = {"fresh": "", "stale": " · STALE: the code changed since", "awaiting": " · awaiting re-recording"}[fig.state.kind]
    title = f"Measured on {provenance_value(fig.state.data, 'cards')} · {p['date'][:10]} · {fig.snippet.name}{note}"
    return f'<span class="recorded-figure" title="{html.escape(title)}">{html.escape(fig.text)}</span>'


def references(markdown: str) -> list[tuple[int, str]]:
    """(1-based line, body) of every reference in the prose: what the checks resolve without building the site."""
    skip = code_lines(markdown)
    found = []
    for number, line in enumerate(markdown.split("\n")):
        if number in skip:
            continue
        for start, end in prose_spans(line):
            found += [(number + 1, m["body"]) for m in REF.finditer(line[start:end])]
    return found
