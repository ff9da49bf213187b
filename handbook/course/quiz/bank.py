"""The public question bank (docs/assessment/bank.yaml): pools, questions, parameters; validated, never the key.

Format (every field is checked here; docs/assessment/index.md "How the quiz works" explains it to authors):

    quiz: TITLE
    version: "2027.1"              # every learner's variant derives from it: a new version re-draws them all
    pass: {overall: 80, objective: 60}
    objectives: {1: TEXT, ...}
    pools:                         # a paper takes `choose` questions of each pool, each worth `points`
      POOL: {objective: N, choose: N, points: N}
    questions:
      - id: lower-case-words       # stable: answer files and the key use it
        pool: POOL
        kind: single | multiple | numeric | output | drill
        teaches: PAGE.md#ANCHOR    # under docs/; the checks fail when the heading does not exist
        prompt: TEXT               # may use {param} placeholders
        options: {KEY: TEXT, ...}  # single, multiple, output; shown shuffled, lettered a, b, c, ... per learner
        params: {NAME: [V, ...]}   # numeric: one value per learner, drawn from the list
        unit: TEXT                 # numeric
        tolerance: 0.5 | "2%"      # numeric: absolute, in the unit, or relative to the right answer
        output: {recording: SNIPPET.rec.json[, lines: A-B]} | {scenario: NAME[@S], nvidia-smi: ARGS}
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from handbook import DOCS, ROOT, SNIPPETS
from handbook.course.quiz import BANK, QuizError, yamlines

KINDS = ("single", "multiple", "numeric", "output", "drill")
ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
OPTION = re.compile(r"^[a-z][a-z0-9-]*$")
PARAM = re.compile(r"^[a-z][a-z0-9_]*$")
FIELDS = {
    "common": {"id", "pool", "kind", "teaches", "prompt"},
    "single": {"options"},
    "multiple": {"options"},
    "numeric": {"unit", "tolerance", "params"},
    "output": {"options", "output"},
    "drill": set(),
}
OPTIONAL = {"params"}
MAX_OPTIONS = 8  # letters a..h


@dataclass(frozen=True)
class Pool:
    id: str
    objective: int
    choose: int
    points: int
    members: tuple = ()  # question ids, bank order


@dataclass(frozen=True)
class Question:
    id: str
    pool: str
    objective: int
    kind: str
    points: int
    teaches: str  # "section/page.md#anchor"
    prompt: str
    line: int  # where it starts in the bank
    options: dict[str, str] = field(default_factory=dict)  # canonical option key -> text
    params: dict[str, tuple] = field(default_factory=dict)
    unit: str = ""
    tolerance: tuple = ("abs", 0.0)  # ("abs", x) in the unit, or ("rel", fraction)
    output: dict = field(default_factory=dict)

    @property
    def choices(self) -> dict[str, str]:  # kept for older callers
        return self.options

    def tolerance_for(self, right: float) -> float:
        kind, value = self.tolerance
        return value if kind == "abs" else abs(right) * value

    def tolerance_text(self) -> str:
        kind, value = self.tolerance
        return f"±{value:g} {self.unit}" if kind == "abs" else f"±{value * 100:g} %"


@dataclass(frozen=True)
class Bank:
    title: str
    version: str
    pass_overall: float
    pass_objective: float
    objectives: dict[int, str]
    pools: dict[str, Pool]
    questions: list[Question]
    path: Path

    @property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    @property
    def pass_mark(self) -> float:
        return self.pass_overall

    @property
    def paper_points(self) -> int:
        """What every learner's paper is worth: the pools' choose x points."""
        return sum(p.choose * p.points for p in self.pools.values())

    total_points = paper_points

    def objective_points(self) -> dict[int, int]:
        out: dict[int, int] = {n: 0 for n in self.objectives}
        for p in self.pools.values():
            out[p.objective] += p.choose * p.points
        return out

    def objective_questions(self) -> dict[int, int]:
        out: dict[int, int] = {n: 0 for n in self.objectives}
        for p in self.pools.values():
            out[p.objective] += p.choose
        return out


def _need(node: yamlines.Node, kind, what: str, where: str):
    value = node.value
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
        raise QuizError(f"{where}:{node.line}: {what}")
    return value


def _options(node: yamlines.Node, where: str) -> dict[str, str]:
    value = _need(node, dict, "options must be a mapping of short keys to texts", where)
    if not 3 <= len(value) <= MAX_OPTIONS:
        raise QuizError(f"{where}:{node.line}: options needs 3 to {MAX_OPTIONS} entries (blind guessing pays below 3)")
    out = {}
    for key, text in value.items():
        if not isinstance(key, str) or not OPTION.match(key):
            raise QuizError(f"{where}:{text.line}: option key {key!r} must be a lower-case word like rma or restart-app")
        out[key] = " ".join(str(_need(text, str, f"options.{key} must be a text", where)).split())
    texts = list(out.values())
    dupes = {t for t in texts if texts.count(t) > 1}
    if dupes:
        raise QuizError(f"{where}:{node.line}: two options read the same: {sorted(dupes)[0]!r}")
    return out


def _tolerance(node: yamlines.Node, where: str) -> tuple:
    value = node.value
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
        return ("rel", float(value.strip()[:-1]) / 100)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return ("abs", float(value))
    raise QuizError(f"{where}:{node.line}: tolerance is a number in the unit (e.g. 0.5) or a percentage (e.g. \"2%\")")


def _params(node: yamlines.Node, where: str) -> dict[str, tuple]:
    value = _need(node, dict, "params must map names to lists of values, e.g. {ms: [10, 20]}", where)
    out = {}
    for name, values in value.items():
        if not isinstance(name, str) or not PARAM.match(name):
            raise QuizError(f"{where}:{values.line}: param name {name!r} must be a lower-case identifier")
        items = _need(values, list, f"params.{name} must be a list of numbers", where)
        numbers = []
        for item in items:
            if isinstance(item.value, bool) or not isinstance(item.value, (int, float)):
                raise QuizError(f"{where}:{item.line}: params.{name} values must be numbers")
            numbers.append(item.value)
        if not numbers or len(set(numbers)) != len(numbers):
            raise QuizError(f"{where}:{values.line}: params.{name} needs one or more distinct values")
        out[name] = tuple(numbers)
    return out


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _output(node: yamlines.Node, where: str) -> dict:
    """An output item's output: a recording's stdout, or a raw tool run on a simulator scenario (never a diagnosis)."""
    spec = _need(node, dict, "output must be a mapping: {recording: ...} or {scenario: ..., nvidia-smi: ...}", where)
    plain = {k: v.value for k, v in spec.items()}
    if set(plain) in ({"recording"}, {"recording", "lines"}):
        rec = SNIPPETS / str(plain["recording"])
        if not str(plain["recording"]).endswith(".rec.json") or not rec.is_file():
            raise QuizError(f"{where}:{node.line}: output recording {plain['recording']!r} is not a *.rec.json under snippets/")
        if "lines" in plain and not re.fullmatch(r"\d+(-\d+)?", str(plain["lines"])):
            raise QuizError(f"{where}:{node.line}: output lines is FIRST-LAST, e.g. 1-3")
    elif set(plain) == {"scenario", "nvidia-smi"}:
        if not isinstance(plain["nvidia-smi"], str) or not isinstance(plain["scenario"], str):
            raise QuizError(f"{where}:{node.line}: output scenario and nvidia-smi are texts")
    else:
        raise QuizError(f"{where}:{node.line}: output must be {{recording: PATH.rec.json[, lines: A-B]}} "
                        "or {scenario: NAME[@SECONDS], nvidia-smi: ARGS}")
    return plain


def _question(node: yamlines.Node, where: str, pools: dict[str, dict]) -> Question:
    q = _need(node, dict, "each question is a mapping (id:, pool:, kind:, ...)", where)
    kind_node = q.get("kind")
    if kind_node is None or kind_node.value not in KINDS:
        raise QuizError(f"{where}:{(kind_node or node).line}: kind must be one of {', '.join(KINDS)}")
    kind = kind_node.value
    allowed = FIELDS["common"] | FIELDS[kind]
    for name, value in q.items():
        if name not in allowed and not (name == "params" and kind != "drill"):
            raise QuizError(f"{where}:{value.line}: unknown field {name!r} for a {kind} question "
                            f"(allowed: {', '.join(sorted(allowed))})")
    for name in sorted(allowed - OPTIONAL):
        if name not in q:
            raise QuizError(f"{where}:{node.line}: a {kind} question needs {name}:")
    qid = _need(q["id"], str, "id must be a text", where)
    if not ID.match(qid):
        raise QuizError(f"{where}:{q['id'].line}: id {qid!r} must be lower-case words joined by '-'")
    pool = _need(q["pool"], str, "pool must name one of the pools", where)
    if pool not in pools:
        raise QuizError(f"{where}:{q['pool'].line}: pool {pool!r} is not one of {', '.join(pools)}")
    if (kind == "drill") != pools[pool].get("drills", False):
        raise QuizError(f"{where}:{q['kind'].line}: drill questions go in the drill pool, and only they")
    teaches = _need(q["teaches"], str, "teaches must be a text like troubleshooting/xid.md#anchor", where)
    if not re.match(r"^[\w./-]+\.md#[\w-]+$", teaches):
        raise QuizError(f"{where}:{q['teaches'].line}: teaches {teaches!r} must be PAGE.md#ANCHOR, relative to docs/")
    prompt = str(_need(q["prompt"], str, "prompt must be a text", where)).strip()
    fields: dict = {}
    if kind in ("single", "multiple", "output"):
        fields["options"] = _options(q["options"], where)
    if "params" in q:
        fields["params"] = _params(q["params"], where)
    if kind == "numeric":
        fields["unit"] = str(_need(q["unit"], str, "unit must be a text", where))
        fields["tolerance"] = _tolerance(q["tolerance"], where)
    if kind == "output":
        fields["output"] = _output(q["output"], where)
    try:
        used = placeholders(prompt)
    except ValueError as err:
        raise QuizError(f"{where}:{q['prompt'].line}: prompt: {err} (write {{{{ and }}}} for literal braces)") from None
    declared = set(fields.get("params", {}))
    if used != declared:
        raise QuizError(f"{where}:{q['prompt'].line}: the prompt uses {{{', '.join(sorted(used)) or ''}}} "
                        f"but params declares {{{', '.join(sorted(declared))}}}; they must match")
    info = pools[pool]
    return Question(id=qid, pool=pool, objective=info["objective"], kind=kind, points=info["points"],
                    teaches=teaches, prompt=prompt, line=node.line, **fields)


def load(path: Path = BANK) -> Bank:
    name = path.relative_to(ROOT).as_posix() if path.is_absolute() and path.is_relative_to(ROOT) else path.name
    root = yamlines.load(path, name, yamlines.TRUSTED)
    top = _need(root, dict, "the bank is a mapping with quiz:, version:, pass:, objectives:, pools:, questions:", name)
    for need in ("quiz", "version", "pass", "objectives", "pools", "questions"):
        if need not in top:
            raise QuizError(f"{name}:1: the bank needs {need}:")
    unknown = set(top) - {"quiz", "version", "pass", "objectives", "pools", "questions"}
    if unknown:
        raise QuizError(f"{name}:{top[sorted(unknown)[0]].line}: unknown top-level key {sorted(unknown)[0]!r}")
    version = str(_need(top["version"], (str, int, float), "version must be a text like \"2027.1\"", name))
    rule = _need(top["pass"], dict, "pass must be {overall: 80, objective: 60}", name)
    if set(rule) != {"overall", "objective"}:
        raise QuizError(f"{name}:{top['pass'].line}: pass must be {{overall: PERCENT, objective: PERCENT}}")
    overall = _need(rule["overall"], (int, float), "pass.overall must be a percentage", name)
    per_objective = _need(rule["objective"], (int, float), "pass.objective must be a percentage", name)
    objectives = {}
    for key, text in _need(top["objectives"], dict, "objectives must map 1..5 to their texts", name).items():
        if not isinstance(key, int) or isinstance(key, bool):
            raise QuizError(f"{name}:{text.line}: objective keys are numbers")
        objectives[key] = str(text.value)
    raw_pools: dict[str, dict] = {}
    for pid, pnode in _need(top["pools"], dict, "pools must map names to {objective:, choose:, points:}", name).items():
        spec = _need(pnode, dict, f"pool {pid} must be {{objective: N, choose: N, points: N}}", name)
        if not set(spec) <= {"objective", "choose", "points", "drills"} or not {"objective", "choose", "points"} <= set(spec):
            raise QuizError(f"{name}:{pnode.line}: pool {pid} must be {{objective: N, choose: N, points: N[, drills: true]}}")
        values = {k: spec[k].value for k in spec}
        if values["objective"] not in objectives:
            raise QuizError(f"{name}:{pnode.line}: pool {pid}: objective {values['objective']} is not one of {sorted(objectives)}")
        for k in ("choose", "points"):
            if isinstance(values[k], bool) or not isinstance(values[k], int) or values[k] < 1:
                raise QuizError(f"{name}:{spec[k].line}: pool {pid}: {k} must be a whole number >= 1")
        raw_pools[str(pid)] = values
    questions, seen = [], {}
    for qnode in _need(top["questions"], list, "questions must be a list", name):
        question = _question(qnode, name, raw_pools)
        if question.id in seen:
            raise QuizError(f"{name}:{qnode.line}: duplicate question id {question.id!r} (first on line {seen[question.id]})")
        seen[question.id] = qnode.line
        questions.append(question)
    pools = {}
    for pid, values in raw_pools.items():
        members = tuple(q.id for q in questions if q.pool == pid)
        if len(members) < values["choose"]:
            raise QuizError(f"{name}:{top['pools'].key_lines[pid]}: pool {pid} chooses {values['choose']} "
                            f"but has {len(members)} questions")
        pools[pid] = Pool(pid, values["objective"], values["choose"], values["points"], members)
    return Bank(str(top["quiz"].value), version, float(overall), float(per_objective), objectives, pools,
                questions, path)


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


def unresolved(bank: Bank, docs: Path = DOCS, extra: dict[str, str] | None = None) -> list[str]:
    """`bank.yaml:LINE: ...` for every question whose teaches: names a missing page or anchor."""
    name = bank.path.name
    problems, cache = [], {}
    for qid, teaches, line in [(q.id, q.teaches, q.line) for q in bank.questions] + [
            (k, v, 0) for k, v in (extra or {}).items()]:
        page, _, anchor = teaches.partition("#")
        path = docs / page
        if not path.is_file():
            problems.append(f"{name}:{line}: {qid} teaches {teaches}, but docs/{page} does not exist")
            continue
        cache.setdefault(path, anchors(path))
        if anchor not in cache[path]:
            problems.append(f"{name}:{line}: {qid} teaches {teaches}, but docs/{page} has no heading #{anchor}")
    return problems
