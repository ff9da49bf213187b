"""Read an answer file (answers.yaml) against the public bank: format only, every problem as `answers.yaml:LINE: ...`.

This is the learner's side: it knows the questions, never the key nor the course secret. An answer file:

    learner: ada                 # your cohort login
    variant: 3f9a2c1b7d0e        # the paper you answer (on your paper's first line); `practice` for the site's
    answers:
      xid-app-no-rma: c          # a letter of your paper
      xid-application-class: [a, d]
      busbw-from-time: 350       # a number, in the question's unit
      drill-slot-clocks: {verdict: power-cap, action: fix-node-config, evidence: "SW power cap at 400 W of 700"}

Letters are checked against the number of options the question has; which option a letter means is your paper's
(the options are shuffled per learner), so only the grader, with the course secret, can map it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from handbook.course.quiz import QuizError, yamlines
from handbook.course.quiz.bank import Bank, Question
from handbook.course.quiz.variants import LETTERS, LEARNER, PRACTICE, VARIANT, normal_learner
from handbook.course import vocabulary

FORMS = {
    "single": "one letter, e.g. b",
    "output": "one letter, e.g. b",
    "multiple": "a list of letters, e.g. [a, c]",
    "numeric": "a number, e.g. 12.5",
    "drill": "{verdict: WORD, action: WORD, evidence: \"what you saw\"}",
}
MAX_EVIDENCE = 300
PLACEHOLDER_LEARNER = "your-name"


def vocabularies() -> tuple[dict, dict]:
    return vocabulary.VERDICTS, vocabulary.ACTIONS


@dataclass(frozen=True)
class AnswerFile:
    path: Path
    learner: str
    variant: str
    answers: dict[str, object]  # question id -> answer; None (or absent) = not answered
    lines: dict[str, int]

    @property
    def attempted(self) -> bool:
        return any(v is not None for v in self.answers.values())


def parse_value(q: Question, node: yamlines.Node, where: str, line: int | None = None) -> object:
    """The answer to Q in NODE, normalized: a letter, a sorted tuple of letters, a float, or
    (verdict, action, evidence); None if blank."""
    v = node.value
    line = line or node.line
    bad = f"{where}:{line}: {q.id} is a {q.kind} question: its answer is {FORMS[q.kind]}"
    if v is None or v == [] or v == "":
        return None
    shown = _shown(node.plain())
    letters = LETTERS[:len(q.options)]
    if q.kind in ("single", "output"):
        if not isinstance(v, str):
            raise QuizError(f"{bad}, not {shown}")
        letter = v.strip().lower()
        if letter not in letters:
            raise QuizError(f"{where}:{line}: {q.id}: {v!r} is not one of its letters ({', '.join(letters)})")
        return letter
    if q.kind == "multiple":
        if not isinstance(v, list) or not all(isinstance(i.value, str) for i in v):
            raise QuizError(f"{bad}, not {shown}")
        keys = [i.value.strip().lower() for i in v]
        for item, key in zip(v, keys):
            if key not in letters:
                raise QuizError(f"{where}:{item.line}: {q.id}: {item.value!r} is not one of its letters ({', '.join(letters)})")
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise QuizError(f"{where}:{line}: {q.id} lists {', '.join(dupes)} twice; list each letter once")
        return tuple(sorted(keys))
    if q.kind == "numeric":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise QuizError(f"{bad} (in {q.unit}, without the unit), not {shown}")
        return float(v)
    # drill
    if not isinstance(v, dict) or not {"verdict", "action"} <= set(v) or not set(v) <= {"verdict", "action", "evidence"}:
        raise QuizError(f"{bad}, not {shown}")
    verdicts, actions = vocabularies()
    out = []
    for part, options in (("verdict", verdicts), ("action", actions)):
        item = v[part]
        word = item.value.strip().lower() if isinstance(item.value, str) else item.value
        if word not in options:
            raise QuizError(f"{where}:{item.line}: {q.id}: {part} {item.value!r} is not one of the drills' "
                            f"{part}s (python -m handbook.drills list --words)")
        out.append(word)
    evidence = v.get("evidence")
    texts: list[str] = []
    if evidence is not None and evidence.value is not None:
        items = evidence.value if isinstance(evidence.value, list) else [evidence]
        for item in items:
            if not isinstance(item.value, (str, int, float)) or isinstance(item.value, bool):
                raise QuizError(f"{where}:{item.line}: {q.id}: evidence is a text, or a list of texts")
            texts.append(str(item.value).strip())
        total = sum(len(t) for t in texts)
        if total > MAX_EVIDENCE:
            raise QuizError(f"{where}:{evidence.line}: {q.id}: evidence is {total} characters; cite at most "
                            f"{MAX_EVIDENCE} (the readings that decided it, not the whole output)")
    return (out[0], out[1], tuple(t for t in texts if t))


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
    return check_tree(root, path, bank, name, first_only=first_only)


def check_tree(root: yamlines.Node, path: Path, bank: Bank, name: str, *, first_only: bool = False):
    top = root.value
    if not isinstance(top, dict) or "answers" not in top:
        return [f"{name}:{root.line}: an answer file is a mapping with learner:, variant: and answers: "
                "(start from your paper's answer file)"]
    found: list[str] = []
    for key in top:
        if key not in ("learner", "variant", "answers"):
            found.append(f"{name}:{root.key_lines[key]}: unknown top-level key {key!r}; only learner:, variant: "
                         "and answers: belong here")
    learner_node = top.get("learner")
    learner = learner_node.value if learner_node else None
    if not isinstance(learner, str) or not LEARNER.match(normal_learner(learner)):
        line = root.key_lines["learner"] if learner_node else root.line
        found.append(f"{name}:{line}: learner: must be your cohort login (lower-case letters, digits, . _ @ -), "
                     "e.g. learner: ada-lovelace")
        learner = ""
    variant_node = top.get("variant")
    variant = variant_node.value if variant_node else None
    if isinstance(variant, int) and not isinstance(variant, bool):
        variant = str(variant)  # an all-digit id reads as a number
    if not isinstance(variant, str) or not (VARIANT.match(variant.strip().lower()) or variant.strip() == PRACTICE):
        line = root.key_lines["variant"] if variant_node else root.line
        found.append(f"{name}:{line}: variant: must be your paper's 12-character id (its first line says it), "
                     f"or {PRACTICE} for the site's practice paper")
        variant = ""
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
    return AnswerFile(path, normal_learner(learner), str(variant).strip().lower(), answers, lines)


def warnings(sheet: AnswerFile, bank: Bank, name: str) -> list[str]:
    """Likely slips the format allows: a percentage written as a fraction (0.93 for 93 %)."""
    out = []
    for qid, value in sheet.answers.items():
        q = bank.by_id[qid]
        if q.kind == "numeric" and value is not None and q.unit.strip() in ("%", "percent") and 0 < abs(value) <= 1:
            out.append(f"{name}:{sheet.lines[qid]}: warning: {qid} is in %; {value:g} looks like a fraction "
                       f"(write {value * 100:g} for {value * 100:g} %)")
    return out


def is_template_text(text: str) -> bool:
    return bool(re.search(r"^learner:\s*" + re.escape(PLACEHOLDER_LEARNER) + r"\s*$", text, re.M))
