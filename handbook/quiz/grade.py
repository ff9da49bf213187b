"""Score answer files against the key: the score, a per-objective breakdown, pass/fail, and result.json."""
from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

from . import QuizError
from .answers import AnswerFile
from .bank import Bank, Question
from .key import Entry


def drill_grader():
    """handbook.drills.grade(drill_id, verdict, action) -> (ok, feedback) when the troubleshooting drills exist."""
    try:
        module = importlib.import_module("handbook.drills")
    except ImportError:
        return None
    return getattr(module, "grade", None)


def correct(q: Question, given: object, entry: Entry) -> bool:
    if given is None:
        return False
    if q.kind == "numeric":
        return math.isclose(given, entry.answer, rel_tol=0, abs_tol=q.tolerance + 1e-12)
    if q.kind == "drill":
        grade = drill_grader()
        if grade is not None:
            try:
                ok, _feedback = grade(q.drill, *given)
            except ValueError as err:  # handbook.drills.DrillError: e.g. a drill id the drills do not have
                raise QuizError(f"{q.id}: {str(err).splitlines()[0]}") from None
            return bool(ok)
        return given == entry.answer
    return given == entry.answer


def score(bank: Bank, key: dict[str, Entry], sheet: AnswerFile) -> dict:
    per_question, per_objective = {}, {}
    for q in bank.questions:
        ok = correct(q, sheet.answers.get(q.id), key[q.id])
        per_question[q.id] = {"objective": q.objective, "points": q.points if ok else 0, "of": q.points,
                              "correct": ok, "answered": sheet.answers.get(q.id) is not None}
        o = per_objective.setdefault(str(q.objective), {"objective": bank.objectives[q.objective], "points": 0, "of": 0})
        o["points"] += q.points if ok else 0
        o["of"] += q.points
    for o in per_objective.values():
        o["percent"] = round(100 * o["points"] / o["of"], 1)
    points, total = sum(v["points"] for v in per_question.values()), bank.total_points
    return {
        "quiz": bank.title,
        "file": str(sheet.path),
        "learner": sheet.learner,
        "points": points,
        "of": total,
        "percent": round(100 * points / total, 1),
        "pass_mark": bank.pass_mark,
        "passed": points * 100 >= bank.pass_mark * total,  # exact: no float rounding at the boundary
        "objectives": dict(sorted(per_objective.items())),
        "questions": per_question,
    }


def report(result: dict) -> str:
    lines = [f"{result['file']}: {result['learner']}: {result['percent']:g} % "
             f"({result['points']}/{result['of']} points): {'PASS' if result['passed'] else 'FAIL'} "
             f"(pass mark {result['pass_mark']:g} %)"]
    for number, o in result["objectives"].items():
        lines.append(f"  objective {number}: {o['percent']:5.1f} %  ({o['points']}/{o['of']})  {o['objective']}")
    return "\n".join(lines)


def submissions(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    if not files:
        raise QuizError(f"{folder}: no answer files (*.yaml) in this folder")
    return files


def write(out: Path, data: dict) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        tmp.replace(out)
    except OSError as err:
        raise QuizError(f"{out}: cannot write the result ({err.strerror})") from None
