"""Read an answer file (answers.yaml) against the bank: format only, every problem as `answers.yaml:LINE: ...`.

This is the learner's side: it knows the questions, never the key. The instructor's key uses the same value
rules (`parse_value`), so a key and an answer file can never disagree on what an answer looks like.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import QuizError, yamlines
from .bank import Bank, Question

FORMS = {
    "single": "one choice key, e.g. b",
    "output": "one choice key, e.g. b",
    "multiple": "a list of choice keys, e.g. [a, c]",
    "numeric": "a number, e.g. 12.5",
    "drill": "{verdict: KEY, action: KEY}",
}


@dataclass(frozen=True)
class AnswerFile:
    path: Path
    learner: str
    answers: dict[str, object]  # question id -> answer; None (or absent) = not answered
    lines: dict[str, int]


def parse_value(q: Question, node: yamlines.Node, where: str, line: int | None = None) -> object:
    """The answer to Q in NODE, normalized (choice key, sorted key tuple, float, (verdict, action)); None if blank.

    LINE is where the answer's key is (a nested mapping's own line is the line after it)."""
    v = node.value
    line = line or node.line
    bad = f"{where}:{line}: {q.id} is a {q.kind} question: its answer is {FORMS[q.kind]}"
    if v is None:
        return None
    shown = _shown(node.plain())
    if q.kind in ("single", "output"):
        if not isinstance(v, str) or isinstance(v, bool):
            raise QuizError(f"{bad}, not {shown}")
        if v not in q.choices:
            raise QuizError(f"{where}:{line}: {q.id}: {v!r} is not one of its choices ({', '.join(q.choices)})")
        return v
    if q.kind == "multiple":
        items = v if isinstance(v, list) else None
        if items is None or not all(isinstance(i.value, str) for i in items):
            raise QuizError(f"{bad}, not {shown}")
        keys = [i.value for i in items]
        for item in items:
            if item.value not in q.choices:
                raise QuizError(f"{where}:{item.line}: {q.id}: {item.value!r} is not one of its choices ({', '.join(q.choices)})")
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise QuizError(f"{where}:{line}: {q.id} lists {', '.join(dupes)} twice; list each choice once")
        return tuple(sorted(keys)) if keys else None
    if q.kind == "numeric":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise QuizError(f"{bad} (in {q.unit}, without the unit), not {shown}")
        return float(v)
    # drill
    if not isinstance(v, dict) or set(v) != {"verdict", "action"}:
        raise QuizError(f"{bad}, not {shown}")
    out = []
    for part, options in (("verdict", q.verdicts), ("action", q.actions)):
        item = v[part]
        if not isinstance(item.value, str) or item.value not in options:
            raise QuizError(f"{where}:{item.line}: {q.id}: {part} {item.value!r} is not one of ({', '.join(options)})")
        out.append(item.value)
    return tuple(out)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load(path: Path, bank: Bank, name: str | None = None) -> AnswerFile:
    """Validate PATH's format against BANK; the first problem raises QuizError (use problems() for all)."""
    found = problems(path, bank, name, first_only=True)
    if isinstance(found, AnswerFile):
        return found
    raise QuizError(found[0])


def problems(path: Path, bank: Bank, name: str | None = None, *, first_only: bool = False) -> list[str] | AnswerFile:
    """Every format problem of PATH as one line each, or the parsed AnswerFile when there is none."""
    name = name or str(path)
    try:
        root = yamlines.load(path, name)
    except QuizError as err:
        return [str(err)]
    top = root.value
    if not isinstance(top, dict) or "answers" not in top:
        return [f"{name}:{root.line}: an answer file is a mapping with learner: and answers: "
                "(download the template from the assessment page)"]
    found: list[str] = []
    for key, node in top.items():
        if key not in ("learner", "answers"):
            found.append(f"{name}:{root.key_lines[key]}: unknown top-level key {key!r}; only learner: and answers: belong here")
    learner_node = top.get("learner")
    learner = learner_node.value if learner_node else None
    if not isinstance(learner, str) or not learner.strip():
        line = root.key_lines["learner"] if learner_node else root.line
        found.append(f"{name}:{line}: learner: must be your name or cohort login, e.g. learner: ada-lovelace")
        learner = ""
    body = top["answers"]
    if body.value is None:
        body = yamlines.Node({}, body.line, {})
    if not isinstance(body.value, dict):
        return found + [f"{name}:{body.line}: answers: must be a mapping of question ids to answers"]
    answers, lines = {}, {}
    questions = bank.by_id
    for qid, node in body.value.items():
        if first_only and found:
            break
        q = questions.get(qid)
        if q is None:
            near = [i for i in questions if str(qid)[:6] in i]
            hint = f" (did you mean {near[0]}?)" if len(near) == 1 else ""
            found.append(f"{name}:{body.key_lines[qid]}: {qid!r} is not a question of this quiz{hint}")
            continue
        try:
            answers[qid] = parse_value(q, node, name, body.key_lines[qid])
            lines[qid] = body.key_lines[qid]
        except QuizError as err:
            found.append(str(err))
    if found:
        return found[:1] if first_only else found
    return AnswerFile(path, learner.strip(), answers, lines)
