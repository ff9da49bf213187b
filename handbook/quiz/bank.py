"""The question bank: load docs/assessment/bank.yaml, validate every question, and resolve what it teaches."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import DOCS, ROOT, SNIPPETS
from . import BANK, QuizError, yamlines

KINDS = ("single", "multiple", "numeric", "output", "drill")
ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
CHOICE = re.compile(r"^[a-z][a-z0-9-]*$")
QUESTION_FIELDS = {
    "common": {"id", "objective", "kind", "points", "teaches", "prompt"},
    "single": {"choices"},
    "multiple": {"choices"},
    "numeric": {"unit", "tolerance"},
    "output": {"choices", "output"},
    "drill": {"drill", "verdicts", "actions"},
}


@dataclass(frozen=True)
class Question:
    id: str
    objective: int
    kind: str
    points: int
    teaches: str  # "section/page.md#anchor"
    prompt: str
    line: int  # where it starts in the bank
    choices: dict[str, str] = field(default_factory=dict)  # single, multiple, output
    unit: str = ""
    tolerance: float = 0.0  # numeric: |answer - key| <= tolerance
    output: dict = field(default_factory=dict)  # output: {recording: ..., show: ...} or {scenario: ..., snippet: ...}
    drill: str = ""  # drill: the drill's stable id (handbook.drills)
    verdicts: dict[str, str] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Bank:
    title: str
    pass_mark: float
    objectives: dict[int, str]
    questions: list[Question]
    path: Path

    @property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    @property
    def total_points(self) -> int:
        return sum(q.points for q in self.questions)


def _need(node: yamlines.Node, kind: type | tuple, what: str, where: str) -> object:
    if not isinstance(node.value, kind) or isinstance(node.value, bool) and kind in (int, float, (int, float)):
        raise QuizError(f"{where}:{node.line}: {what}")
    return node.value


def _choices(node: yamlines.Node, name: str, where: str) -> dict[str, str]:
    value = _need(node, dict, f"{name} must be a mapping of short keys (a, b, ...) to texts", where)
    if len(value) < 2:
        raise QuizError(f"{where}:{node.line}: {name} needs at least two entries")
    out = {}
    for key, text in value.items():
        if not isinstance(key, str) or not CHOICE.match(key):
            raise QuizError(f"{where}:{text.line}: {name} key {key!r} must be a lower-case word like a, b or restart-app")
        out[key] = str(_need(text, str, f"{name}.{key} must be a text", where)).strip()
    return out


def _question(node: yamlines.Node, where: str, objectives: dict) -> Question:
    q = _need(node, dict, "each question is a mapping (id:, objective:, kind:, ...)", where)
    kind_node = q.get("kind")
    if kind_node is None or kind_node.value not in KINDS:
        raise QuizError(f"{where}:{(kind_node or node).line}: kind must be one of {', '.join(KINDS)}")
    kind = kind_node.value
    allowed = QUESTION_FIELDS["common"] | QUESTION_FIELDS[kind]
    for name, value in q.items():
        if name not in allowed:
            raise QuizError(f"{where}:{value.line}: unknown field {name!r} for a {kind} question "
                            f"(allowed: {', '.join(sorted(allowed))})")
    for name in sorted(allowed - {"points"}):
        if name not in q:
            raise QuizError(f"{where}:{node.line}: a {kind} question needs {name}:")
    qid = _need(q["id"], str, "id must be a text", where)
    if not ID.match(qid):
        raise QuizError(f"{where}:{q['id'].line}: id {qid!r} must be lower-case words joined by '-'")
    objective = _need(q["objective"], int, "objective must be a number", where)
    if objective not in objectives:
        raise QuizError(f"{where}:{q['objective'].line}: objective {objective} is not one of {sorted(objectives)}")
    points = _need(q["points"], int, "points must be a whole number", where) if "points" in q else 2
    if points < 1:
        raise QuizError(f"{where}:{q['points'].line}: points must be at least 1")
    teaches = _need(q["teaches"], str, "teaches must be a text like troubleshooting/xid.md#anchor", where)
    if not re.match(r"^[\w./-]+\.md#[\w-]+$", teaches):
        raise QuizError(f"{where}:{q['teaches'].line}: teaches {teaches!r} must be PAGE.md#ANCHOR, relative to docs/")
    fields: dict = {}
    if kind in ("single", "multiple", "output"):
        fields["choices"] = _choices(q["choices"], "choices", where)
    if kind == "numeric":
        fields["unit"] = str(_need(q["unit"], str, "unit must be a text", where))
        tol = _need(q["tolerance"], (int, float), "tolerance must be a number", where)
        if tol < 0:
            raise QuizError(f"{where}:{q['tolerance'].line}: tolerance must not be negative")
        fields["tolerance"] = float(tol)
    if kind == "output":
        fields["output"] = _output(q["output"], where)
    if kind == "drill":
        fields["drill"] = _need(q["drill"], str, "drill must be a drill id like drill-oom-fragmentation", where)
        if not fields["drill"].startswith("drill-"):
            raise QuizError(f"{where}:{q['drill'].line}: drill {fields['drill']!r} must be a drill id (drill-...)")
        fields["verdicts"] = _choices(q["verdicts"], "verdicts", where)
        fields["actions"] = _choices(q["actions"], "actions", where)
    prompt = str(_need(q["prompt"], str, "prompt must be a text", where)).strip()
    return Question(id=qid, objective=objective, kind=kind, points=points, teaches=teaches, prompt=prompt,
                    line=node.line, **fields)


def _output(node: yamlines.Node, where: str) -> dict:
    """Where an output item's output comes from: a recording's stdout, or a simulator run rendered at build time."""
    spec = _need(node, dict, "output must be a mapping: {recording: ...} or {scenario: ..., snippet: ...}", where)
    plain = {k: v.value for k, v in spec.items()}
    if set(plain) == {"recording"} or set(plain) == {"recording", "lines"}:
        rec = SNIPPETS / str(plain["recording"])
        if not str(plain["recording"]).endswith(".rec.json") or not rec.is_file():
            raise QuizError(f"{where}:{node.line}: output recording {plain['recording']!r} is not a *.rec.json under snippets/")
    elif set(plain) in ({"scenario", "snippet"}, {"scenario", "snippet", "args"}):
        if not (SNIPPETS / str(plain["snippet"])).is_file():
            raise QuizError(f"{where}:{node.line}: output snippet {plain['snippet']!r} is not a file under snippets/")
    else:
        raise QuizError(f"{where}:{node.line}: output must be {{recording: PATH.rec.json[, lines: FIRST-LAST]}} "
                        "or {scenario: NAME[@SECONDS], snippet: PATH.py[, args: [...]]}")
    return plain


def load(path: Path = BANK) -> Bank:
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    root = yamlines.load(path, name)
    top = _need(root, dict, "the bank is a mapping with quiz:, pass_mark:, objectives:, questions:", name)
    for need in ("quiz", "pass_mark", "objectives", "questions"):
        if need not in top:
            raise QuizError(f"{name}:1: the bank needs {need}:")
    pass_mark = _need(top["pass_mark"], (int, float), "pass_mark must be a percentage", name)
    objectives = {}
    for key, text in _need(top["objectives"], dict, "objectives must map 1..5 to their texts", name).items():
        if not isinstance(key, int):
            raise QuizError(f"{name}:{text.line}: objective keys are numbers")
        objectives[key] = str(text.value)
    questions, seen = [], {}
    for qnode in _need(top["questions"], list, "questions must be a list", name):
        question = _question(qnode, name, objectives)
        if question.id in seen:
            raise QuizError(f"{name}:{qnode.line}: duplicate question id {question.id!r} (first on line {seen[question.id]})")
        seen[question.id] = qnode.line
        questions.append(question)
    if not questions:
        raise QuizError(f"{name}:{top['questions'].line}: the bank has no questions")
    return Bank(str(top["quiz"].value), float(pass_mark), objectives, questions, path)


# ---- what each question teaches: the anchor must exist -----------------------------------------------------

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXPLICIT_ID = re.compile(r"\{[^}]*#([\w-]+)[^}]*\}\s*$")


def anchors(page: Path) -> set[str]:
    """The heading ids the toc extension gives PAGE: its slugify, `{#id}` attributes, duplicates numbered _1, _2."""
    from markdown.extensions.toc import slugify

    found: set[str] = set()
    fence = None
    for line in page.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else (fence or marker)
            continue
        m = HEADING.match(line)
        if fence or not m:
            continue
        text = m[2]
        explicit = EXPLICIT_ID.search(text)
        if explicit:
            found.add(explicit[1])
            continue
        text = re.sub(r"<!--.*?-->|<[^>]+>", "", text)  # comments and inline HTML never reach the slug
        text = re.sub(r"`([^`]*)`", r"\1", text)
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
        slug = slugify(text, "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}_{n}"
        found.add(candidate)
    return found


def unresolved(bank: Bank, docs: Path = DOCS) -> list[str]:
    """`bank.yaml:LINE: ...` for every question whose teaches: names a missing page or anchor."""
    name = bank.path.name
    problems, cache = [], {}
    for q in bank.questions:
        page, _, anchor = q.teaches.partition("#")
        path = docs / page
        if not path.is_file():
            problems.append(f"{name}:{q.line}: {q.id} teaches {q.teaches}, but docs/{page} does not exist")
            continue
        cache.setdefault(path, anchors(path))
        if anchor not in cache[path]:
            problems.append(f"{name}:{q.line}: {q.id} teaches {q.teaches}, but docs/{page} has no heading #{anchor}")
    return problems
