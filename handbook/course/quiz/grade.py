"""Grade one answer file against the learner's own paper and the key: points, feedback, objectives, pass rule.

A result (the instructors' view) has, per question: right/wrong/blank, points of max_points, what was given, the
right answer, the explanation, the misconception the chosen distractor stands for (or a numeric slip: a unit or
a formula mix-up), and the reveal policy. `learner_view(result, phase)` drops what the policy does not yet
reveal: `after-grading` shows once grades are out, `after-close` once the cohort closes, `never` never (the
learner still sees right/wrong, points and the page that teaches it).

Pass rule: at least `pass.overall` % of the points and at least `pass.objective` % on every objective (exact
integer comparisons, no float rounding at the boundary).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from handbook.course.quiz import PHASES, QuizError
from handbook.course.quiz.answers import AnswerFile
from handbook.course.quiz.bank import Bank
from handbook.course.quiz.key import Entry
from handbook.course.quiz.variants import Instance, Paper

SLIPS = [(10.0 ** k, f"{10 ** k:g}x") for k in (1, 2, 3, 6, 9)] + [(1024.0 ** k, f"1024^{k}") for k in (1, 2, 3)] + [
    (8.0, "8x (bits vs bytes)"), (1.073741824, "GiB vs GB"), (1.048576, "MiB vs MB")]


def drill_variant(entry: Entry, inst: Instance):
    return entry.variants[inst.draw % len(entry.variants)]


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"


def _slip(given: float, right: float, tol: float) -> str:
    if right == 0 or given == 0:
        return ""
    for factor, label in SLIPS:
        for direction, scaled in (("larger", right * factor), ("smaller", right / factor)):
            if abs(given - scaled) <= max(tol * factor if direction == "larger" else tol / factor, 1e-12):
                return (f"your answer is the right value {label} {direction}: a unit slip "
                        f"(the answer is in the question's unit)")
    return ""


def question_result(inst: Instance, entry: Entry, given: object, written: object) -> dict:
    q = inst.question
    out = {"number": inst.number, "id": q.id, "objective": q.objective, "kind": q.kind, "points": 0,
           "max_points": q.points, "status": "blank", "given": written, "right": None, "explanation": "",
           "misconception": "", "note": "", "reveal": entry.reveal, "teaches": q.teaches}
    params = dict(inst.params)
    if q.kind in ("single", "output"):
        out["right"] = inst.letter_of(entry.answer)
        explanation_answer = out["right"]
        if given is not None:
            chosen = inst.letters[given]
            ok = chosen == entry.answer
            out["misconception"] = "" if ok else entry.misconceptions.get(chosen, "")
    elif q.kind == "multiple":
        out["right"] = sorted(inst.letter_of(k) for k in entry.answer)
        explanation_answer = ", ".join(out["right"])
        if given is not None:
            chosen = {inst.letters[g] for g in given}
            ok = chosen == set(entry.answer)
            wrong = [entry.misconceptions[k] for k in sorted(chosen - set(entry.answer)) if k in entry.misconceptions]
            missed = sorted(inst.letter_of(k) for k in set(entry.answer) - chosen)
            out["misconception"] = " ".join(wrong)
            if not ok and missed:
                out["note"] = f"{len(missed)} right option(s) not chosen"
    elif q.kind == "numeric":
        right = entry.answer(params)
        tol = q.tolerance_for(right)
        out["right"] = float(_fmt(right))
        explanation_answer = _fmt(right)
        if given is not None:
            ok = math.isclose(given, right, rel_tol=0, abs_tol=tol + 1e-9 * max(1.0, abs(right)))
            if not ok:
                for formula, text in entry.misconceptions.items():
                    wrong = formula(params)
                    if abs(given - wrong) <= max(q.tolerance_for(wrong), 1e-9):
                        out["misconception"] = text
                        break
                out["note"] = _slip(given, right, tol)
    else:  # drill
        variant = drill_variant(entry, inst)
        out["right"] = {"verdict": variant.verdict, "action": variant.action}
        out["scenario"] = variant.scenario.name
        explanation_answer = f"{variant.verdict} / {variant.action}"
        if given is not None:
            verdict, action, evidence = given
            ok = verdict == variant.verdict and action == variant.action
            cited = " ".join(evidence).lower()
            cites = any(marker in cited for marker in variant.evidence)
            out["evidence_ok"] = cites
            if ok:
                out["points"] = q.points - (0 if cites else 1)
                out["status"] = "right" if cites else "partly"
                if not cites:
                    out["note"] = "right diagnosis, but the cited evidence does not name the reading that decides it"
            else:
                out["status"] = "wrong"
                out["misconception"] = ("the verdict does not fit the readings" if verdict != variant.verdict
                                        else "the right verdict, but not the action it calls for")
        out["explanation"] = variant.why
        return out
    if given is not None:
        out["status"] = "right" if ok else "wrong"
        out["points"] = q.points if ok else 0
    out["explanation"] = entry.why.format(answer=explanation_answer, **{k: _fmt(float(v)) for k, v in params.items()})
    return out


def score(bank: Bank, key: dict[str, Entry], paper: Paper, sheet: AnswerFile) -> dict:
    """The full result of SHEET on PAPER; the sheet must answer only questions of the paper (QuizError if not)."""
    on_paper = paper.by_id
    stray = [qid for qid, v in sheet.answers.items() if qid not in on_paper and v is not None]
    if stray:
        raise QuizError(f"{sheet.path.name}:{sheet.lines[stray[0]]}: {stray[0]} is not on {paper.learner}'s paper "
                        f"(variant {paper.variant}): answer the questions of your own paper")
    questions = []
    for inst in paper.instances:
        given = sheet.answers.get(inst.id)
        written = _written(given)
        questions.append(question_result(inst, key[inst.id], given, written))
    return summarize(bank, paper, sheet, questions)


def _written(given):
    if isinstance(given, tuple) and len(given) == 3 and isinstance(given[2], tuple):
        return {"verdict": given[0], "action": given[1], "evidence": list(given[2])}
    if isinstance(given, tuple):
        return list(given)
    return given


def summarize(bank: Bank, paper: Paper, sheet: AnswerFile, questions: list[dict]) -> dict:
    objectives = {}
    for n, title in sorted(bank.objectives.items()):
        mine = [r for r in questions if r["objective"] == n]
        points, of = sum(r["points"] for r in mine), sum(r["max_points"] for r in mine)
        objectives[str(n)] = {"objective": title, "points": points, "max_points": of,
                              "percent": round(100 * points / of, 1) if of else 0.0,
                              "passed": points * 100 >= bank.pass_objective * of}
    points, total = sum(r["points"] for r in questions), sum(r["max_points"] for r in questions)
    overall_ok = points * 100 >= bank.pass_overall * total
    failed = ([] if overall_ok else [f"overall {round(100 * points / total, 1):g} % < {bank.pass_overall:g} %"]) + [
        f"objective {n} {o['percent']:g} % < {bank.pass_objective:g} %" for n, o in objectives.items() if not o["passed"]]
    return {
        "quiz": bank.title, "version": bank.version, "file": sheet.path.name, "learner": paper.learner,
        "variant": paper.variant, "status": "graded" if sheet.attempted else "not-attempted",
        "points": points, "max_points": total, "percent": round(100 * points / total, 1),
        "pass_rule": {"overall": bank.pass_overall, "objective": bank.pass_objective},
        "passed": sheet.attempted and not failed, "failed_rules": failed if sheet.attempted else ["not attempted"],
        "objectives": objectives, "questions": questions,
        **({"test_secret": True} if paper.secret_is_test else {}),
    }


def revealed(reveal: str, phase: str) -> bool:
    return reveal == "after-grading" or (reveal == "after-close" and phase == "closed")


def learner_view(result: dict, phase: str = "graded") -> dict:
    """What the learner may see at PHASE (graded: grades are out; closed: the cohort has closed)."""
    if phase not in PHASES:
        raise QuizError(f"--phase {phase!r}: use one of {', '.join(PHASES)}")
    view = {k: v for k, v in result.items() if k != "questions"}
    view["questions"] = []
    for r in result.get("questions", []):
        shown = {k: r[k] for k in ("number", "id", "objective", "points", "max_points", "status", "given", "teaches")}
        if r["status"] == "wrong" and r.get("note"):
            shown["note"] = r["note"]
        if revealed(r["reveal"], phase):
            shown |= {"right": r["right"], "explanation": r["explanation"], "misconception": r["misconception"]}
            if r.get("note"):
                shown["note"] = r["note"]
        elif r["reveal"] == "after-close":
            shown["explanation"] = "shown when the cohort closes"
        view["questions"].append(shown)
    view.pop("scenario", None)
    return view


def report(result: dict) -> str:
    if "questions" not in result:
        return f"{result['file']}: {result['status'].upper()}: {result.get('error', '')}"
    head = "NOT ATTEMPTED" if result["status"] == "not-attempted" else ("PASS" if result["passed"] else "FAIL")
    lines = [f"{result['file']}: {result['learner']}: {result['percent']:g} % "
             f"({result['points']}/{result['max_points']} points): {head}"
             + (f" ({'; '.join(result['failed_rules'])})" if result["failed_rules"] and result["status"] == "graded" else "")]
    for number, o in result["objectives"].items():
        lines.append(f"  objective {number}: {o['percent']:5.1f} %  ({o['points']}/{o['max_points']})  {o['objective'][:60]}")
    return "\n".join(lines)


def feedback_markdown(view: dict) -> str:
    """A learner's feedback as Markdown (what the LMS or mail sends)."""
    lines = [f"# {view['quiz']}: feedback for {view['learner']}", "",
             f"Score: **{view['percent']:g} %** ({view['points']}/{view['max_points']} points): "
             + ("passed" if view["passed"] else "not passed") + ".", ""]
    lines += ["| Objective | Score |", "|---|---|"]
    lines += [f"| {n}. {o['objective']} | {o['percent']:g} % ({o['points']}/{o['max_points']}) |"
              for n, o in view["objectives"].items()]
    lines.append("")
    for r in view["questions"]:
        lines.append(f"## Q{r['number']} · {r['id']}: {r['status']}, {r['points']}/{r['max_points']}")
        lines.append("")
        for label, k in (("Right answer", "right"), ("Your choice stands for", "misconception"), ("Note", "note"),
                         ("Why", "explanation")):
            if r.get(k):
                lines.append(f"- {label}: {r[k]}")
        lines.append(f"- Taught in: {r['teaches']}")
        lines.append("")
    return "\n".join(lines)


def write(out: Path, data) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        text = data if isinstance(data, str) else json.dumps(data, indent=1, ensure_ascii=False) + "\n"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as err:
        raise QuizError(f"{out}: cannot write the result ({err.strerror})") from None
