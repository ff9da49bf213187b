"""The instructor's key (instructor/quiz/key.yaml): one answer per bank question, checked against the bank."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import ROOT
from . import KEY, QuizError, yamlines
from .answers import parse_value
from .bank import Bank


@dataclass(frozen=True)
class Entry:
    answer: object  # normalized like a learner's answer (answers.parse_value)
    why: str
    evidence: str  # output items: a text the rendered output must contain, so a changed recording is noticed
    line: int


def load(bank: Bank, path: Path = KEY) -> dict[str, Entry]:
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    root = yamlines.load(path, name)
    top = root.value if isinstance(root.value, dict) else {}
    if "answers" not in top or not isinstance(top["answers"].value, dict):
        raise QuizError(f"{name}:{root.line}: a key is a mapping with quiz: and answers: (question id -> answer:, why:)")
    if "quiz" not in top or top["quiz"].value != bank.title:
        raise QuizError(f"{name}:{root.line}: this key is for quiz {top.get('quiz', yamlines.Node(None, 0)).value!r}, "
                        f"the bank is {bank.title!r}")
    questions = bank.by_id
    entries: dict[str, Entry] = {}
    for qid, node in top["answers"].value.items():
        q = questions.get(qid)
        if q is None:
            raise QuizError(f"{name}:{top['answers'].key_lines[qid]}: the key answers {qid!r}, which the bank "
                            f"({bank.path.name}) does not have: the key does not match the bank")
        fields = node.value if isinstance(node.value, dict) else None
        if fields is None or "answer" not in fields or "why" not in fields:
            raise QuizError(f"{name}:{node.line}: {qid} needs answer: and why: (the explanation graders read)")
        answer = parse_value(q, fields["answer"], name, node.key_lines["answer"])
        if answer is None:
            raise QuizError(f"{name}:{fields['answer'].line}: {qid} has an empty answer")
        evidence = fields.get("evidence")
        if q.kind == "output" and (evidence is None or not isinstance(evidence.value, str)):
            raise QuizError(f"{name}:{node.line}: {qid} is an output item: give evidence: (text its output must show)")
        entries[qid] = Entry(answer, str(fields["why"].value), evidence.value if evidence else "", node.line)
    missing = [qid for qid in questions if qid not in entries]
    if missing:
        raise QuizError(f"{name}:{top['answers'].line}: the key has no answer for {len(missing)} bank question(s) "
                        f"(first: {missing[0]}): the key does not match the bank")
    return entries
