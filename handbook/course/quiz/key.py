"""The instructors' key (instructor/quiz/key.yaml): answers, explanations, misconceptions, reveal policy, drills.

    quiz: TITLE                      # the bank's
    version: "2027.1"                # the bank's: a key for another version is refused
    answers:
      QUESTION-ID:
        answer: KEY | [KEY, ...] | NUMBER | "FORMULA"   # option keys of the bank; numeric: a formula of the params
        why: TEXT                    # the explanation; may use {param} and {answer}
        reveal: after-grading        # after-grading | after-close | never (default after-grading)
        misconceptions:              # every wrong option: the belief that picks it (numeric: FORMULA: TEXT)
          KEY: TEXT
        evidence: TEXT               # output items: a text the rendered output must show
      DRILL-QUESTION-ID:             # a graded drill: each learner draws one of its variants
        why: TEXT
        reveal: never
        variants:
          - scenario: FILE.toml      # hidden scenario, in instructor/drills/scenarios/
            at: SECONDS              # optional: where the simulator starts in it
            pager: TEXT              # what the learner is told
            verdict: WORD            # handbook.course.vocabulary.VERDICTS
            action: WORD             # handbook.course.vocabulary.ACTIONS
            evidence: [TEXT, ...]    # readings that justify it; citing one earns the evidence point
            check: NAME              # the health check that must fire on it (01_gpu_health.py --check NAME)
            why: TEXT
"""
from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from pathlib import Path

from handbook import ROOT
from handbook.course.quiz import KEY, QuizError, yamlines
from handbook.course.quiz.bank import Bank, Question
from handbook.course import vocabulary

REVEALS = ("after-grading", "after-close", "never")
HIDDEN_SCENARIOS = ROOT / "instructor" / "drills" / "scenarios"


@dataclass(frozen=True)
class DrillVariant:
    scenario: Path
    at: float | None
    pager: str
    verdict: str
    action: str
    evidence: tuple
    check: str
    why: str
    line: int


@dataclass(frozen=True)
class Entry:
    answer: object  # option key, tuple of keys, a Formula, or None for drills
    why: str
    reveal: str
    misconceptions: dict = field(default_factory=dict)  # option key (or formula text) -> text
    evidence: str = ""
    variants: tuple = ()  # drills
    line: int = 0


# ---- formulas: + - * / ** over numbers and the question's params, nothing else ------------------------------

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}


@dataclass(frozen=True)
class Formula:
    text: str
    tree: ast.AST = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str, names: set[str], where: str) -> "Formula":
        try:
            tree = ast.parse(str(text), mode="eval").body
        except SyntaxError:
            raise QuizError(f"{where}: formula {text!r} is not an arithmetic expression") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in names:
                raise QuizError(f"{where}: formula {text!r} uses {node.id!r}, which is not a param of the question")
            if not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.USub, ast.UAdd,
                                     *_OPS)):
                raise QuizError(f"{where}: formula {text!r}: only numbers, params, + - * / ** and parentheses")
            if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or not isinstance(node.value, (int, float))):
                raise QuizError(f"{where}: formula {text!r}: only numbers")
        return cls(str(text), tree)

    def __call__(self, params: dict) -> float:
        def ev(node):
            if isinstance(node, ast.Constant):
                return float(node.value)
            if isinstance(node, ast.Name):
                return float(params[node.id])
            if isinstance(node, ast.UnaryOp):
                return -ev(node.operand) if isinstance(node.op, ast.USub) else ev(node.operand)
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        return ev(self.tree)


def _text(node: yamlines.Node | None, what: str, where: str) -> str:
    if node is None or not isinstance(node.value, str) or not node.value.strip():
        raise QuizError(f"{where}:{node.line if node else '?'}: {what}")
    return " ".join(node.value.split())


def _drill_variants(node: yamlines.Node, qid: str, name: str) -> tuple:
    if not isinstance(node.value, list) or not node.value:
        raise QuizError(f"{name}:{node.line}: {qid}: variants is a list of hidden scenarios (scenario:, verdict:, ...)")
    out = []
    for item in node.value:
        if not isinstance(item.value, dict):
            raise QuizError(f"{name}:{item.line}: {qid}: each variant is a mapping")
        v = item.value
        need = {"scenario", "pager", "verdict", "action", "evidence", "check", "why"}
        if not need <= set(v) or not set(v) <= need | {"at"}:
            raise QuizError(f"{name}:{item.line}: {qid}: a variant has {', '.join(sorted(need))} and optionally at:")
        path = HIDDEN_SCENARIOS / str(v["scenario"].value)
        if not path.is_file() or path.suffix != ".toml":
            raise QuizError(f"{name}:{v['scenario'].line}: {qid}: no hidden scenario {v['scenario'].value!r} "
                            f"in {HIDDEN_SCENARIOS.relative_to(ROOT)}/")
        if v["verdict"].value not in vocabulary.VERDICTS or v["action"].value not in vocabulary.ACTIONS:
            raise QuizError(f"{name}:{item.line}: {qid}: verdict/action must be words of handbook.drills' vocabularies")
        evidence = v["evidence"].value
        if not isinstance(evidence, list) or not evidence or not all(isinstance(e.value, str) for e in evidence):
            raise QuizError(f"{name}:{v['evidence'].line}: {qid}: evidence is a list of texts a right diagnosis cites")
        at = v["at"].value if "at" in v else None
        if at is not None and (isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0):
            raise QuizError(f"{name}:{v['at'].line}: {qid}: at is seconds >= 0")
        out.append(DrillVariant(path, at, _text(v["pager"], "pager is a text", name), v["verdict"].value,
                                v["action"].value, tuple(e.value.lower() for e in evidence),
                                str(v["check"].value), _text(v["why"], "why is a text", name), item.line))
    return tuple(out)


def _entry(q: Question, node: yamlines.Node, name: str) -> Entry:
    from handbook.course.quiz.answers import parse_value  # noqa: F401  (the learner side's forms; the key uses option keys instead)

    fields = node.value if isinstance(node.value, dict) else None
    if fields is None:
        raise QuizError(f"{name}:{node.line}: {q.id} needs answer: and why: (the explanation learners get)")
    allowed = {"answer", "why", "reveal", "misconceptions", "evidence"} if q.kind != "drill" else {"why", "reveal", "variants"}
    for k in fields:
        if k not in allowed:
            raise QuizError(f"{name}:{fields[k].line}: {q.id}: unknown field {k!r} (allowed: {', '.join(sorted(allowed))})")
    why = _text(fields.get("why"), f"{q.id} needs why: (the explanation learners get)", name)
    reveal = fields["reveal"].value if "reveal" in fields else "after-grading"
    if reveal not in REVEALS:
        raise QuizError(f"{name}:{fields['reveal'].line}: {q.id}: reveal is one of {', '.join(REVEALS)}")
    where = f"{name}:{node.line}"
    if q.kind == "drill":
        if "variants" not in fields:
            raise QuizError(f"{where}: {q.id} is a drill: give variants: (hidden scenarios and their answers)")
        return Entry(None, why, reveal, {}, "", _drill_variants(fields["variants"], q.id, name), node.line)
    if "answer" not in fields:
        raise QuizError(f"{where}: {q.id} needs answer:")
    raw = fields["answer"].plain()
    misconceptions: dict = {}
    if q.kind in ("single", "output"):
        if raw not in q.options:
            raise QuizError(f"{name}:{fields['answer'].line}: {q.id}: answer {raw!r} is not one of its options "
                            f"({', '.join(q.options)})")
        answer = raw
        right = {raw}
    elif q.kind == "multiple":
        if not isinstance(raw, list) or not raw or not all(k in q.options for k in raw) or len(set(raw)) != len(raw):
            raise QuizError(f"{name}:{fields['answer'].line}: {q.id}: answer is a list of its option keys "
                            f"({', '.join(q.options)})")
        answer = tuple(sorted(raw))
        right = set(raw)
    else:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise QuizError(f"{name}:{fields['answer'].line}: {q.id}: answer is a number or a formula of its params")
        answer = Formula.parse(str(raw), set(q.params), f"{name}:{fields['answer'].line}: {q.id}")
        right = set()
    mnode = fields.get("misconceptions")
    if mnode is not None:
        if not isinstance(mnode.value, dict):
            raise QuizError(f"{name}:{mnode.line}: {q.id}: misconceptions maps option keys to texts")
        for k, text in mnode.value.items():
            label = _text(text, f"misconceptions.{k} is a text", name)
            if q.kind == "numeric":
                misconceptions[Formula.parse(str(k), set(q.params), f"{name}:{text.line}: {q.id}")] = label
            elif k not in q.options or k in right:
                raise QuizError(f"{name}:{text.line}: {q.id}: misconceptions.{k}: not a wrong option of the question")
            else:
                misconceptions[k] = label
    if q.kind in ("single", "output", "multiple"):
        missing = [k for k in q.options if k not in right and k not in misconceptions]
        if missing:
            raise QuizError(f"{where}: {q.id}: give the misconception of every wrong option (missing: {', '.join(missing)})")
    evidence = ""
    if q.kind == "output":
        evidence = _text(fields.get("evidence"), f"{q.id} is an output item: give evidence: (text its output must show)", name)
    try:
        why.format(answer="0", **{k: 0 for k in q.params})
    except (KeyError, IndexError, ValueError) as err:
        raise QuizError(f"{name}:{fields['why'].line}: {q.id}: why uses {{{err}}}, not a param or {{answer}}") from None
    return Entry(answer, why, reveal, misconceptions, evidence, (), node.line)


def load(bank: Bank, path: Path = KEY) -> dict[str, Entry]:
    name = path.relative_to(ROOT).as_posix() if path.is_absolute() and path.is_relative_to(ROOT) else str(path)
    root = yamlines.load(path, name, yamlines.TRUSTED)
    top = root.value if isinstance(root.value, dict) else {}
    if "answers" not in top or not isinstance(top["answers"].value, dict):
        raise QuizError(f"{name}:{root.line}: a key is a mapping with quiz:, version: and answers:")
    if "quiz" not in top or top["quiz"].value != bank.title:
        raise QuizError(f"{name}:{root.line}: this key is for quiz {top.get('quiz', yamlines.Node(None, 0)).value!r}, "
                        f"the bank is {bank.title!r}")
    if "version" not in top or str(top["version"].value) != bank.version:
        raise QuizError(f"{name}:{root.line}: this key is for version {top.get('version', yamlines.Node(None, 0)).value!r}, "
                        f"the bank is version {bank.version!r}")
    questions = bank.by_id
    entries: dict[str, Entry] = {}
    for qid, node in top["answers"].value.items():
        q = questions.get(qid)
        if q is None:
            raise QuizError(f"{name}:{top['answers'].key_lines[qid]}: the key answers {qid!r}, which the bank "
                            f"({bank.path.name}) does not have: the key does not match the bank")
        entries[qid] = _entry(q, node, name)
    missing = [qid for qid in questions if qid not in entries]
    if missing:
        raise QuizError(f"{name}:{top['answers'].line}: the key has no answer for {len(missing)} bank question(s) "
                        f"(first: {missing[0]}): the key does not match the bank")
    return entries
