"""Our result, one-to-one as Gradescope's autograder results.json (gradescope-autograders.readthedocs.io/en/latest/specs/).

    one question of the paper  ->  one test: name, number, score, max_score, status, output, tags, visibility
    the reveal policy          ->  the test's visibility and what its output holds:
        after-grading  ->  visibility "after_published"  (seen when the instructor publishes the grades),
                           output with the right answer, the explanation and the misconception of the choice
        after-close    ->  visibility "after_due_date"   (seen after the due date: the cohort has closed), same output
        never          ->  visibility "after_published", output with right/wrong, points and the page only
    the paper          ->  score (the points), output (percent, pass rule, objectives), visibility "after_published"
    an invalid file    ->  score 0, no tests, the one line that says what to fix, visibility "visible" (resubmit)

    python -m handbook.quiz gradescope /autograder/submission /autograder/results/results.json

runs inside Gradescope's container (the autograder zip holds this repository with its instructor/ files and the
course secret in $HANDBOOK_QUIZ_SECRET, set by its setup); it always writes results.json, whatever the submission.
"""
from __future__ import annotations

VISIBILITY = {"after-grading": "after_published", "after-close": "after_due_date", "never": "after_published"}
TEST_FIELDS = ("name", "number", "score", "max_score", "status", "output", "tags", "visibility")


def _test_output(q: dict) -> str:
    lines = [f"{q['status']}: {q['points']}/{q['max_points']} points; taught in {q['teaches']}"]
    if q["reveal"] != "never":
        if q.get("right") is not None:
            lines.append(f"right answer: {q['right']}")
        if q.get("misconception"):
            lines.append(f"your choice stands for: {q['misconception']}")
        if q.get("note"):
            lines.append(f"note: {q['note']}")
        if q.get("explanation"):
            lines.append(f"why: {q['explanation']}")
    elif q["status"] == "wrong" and q.get("note"):
        lines.append(f"note: {q['note']}")
    return "\n".join(lines)


def results(result: dict) -> dict:
    """The Gradescope results.json of one result (graded, not attempted or invalid)."""
    if "questions" not in result:
        return {"score": 0, "output": result.get("error", "this submission could not be graded"),
                "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
    tests = []
    for q in result["questions"]:
        tests.append({
            "name": f"Q{q['number']} {q['id']} (objective {q['objective']})",
            "number": str(q["number"]),
            "score": q["points"],
            "max_score": q["max_points"],
            "status": "passed" if q["points"] == q["max_points"] else "failed",
            "output": _test_output(q),
            "tags": [f"objective-{q['objective']}", q["kind"]],
            "visibility": VISIBILITY[q["reveal"]],
        })
    head = ("not attempted" if result["status"] == "not-attempted" else ("passed" if result["passed"] else "not passed"))
    summary = [f"{result['percent']:g} % ({result['points']}/{result['max_points']}): {head}; pass needs "
               f"{result['pass_rule']['overall']:g} % overall and {result['pass_rule']['objective']:g} % on every objective"]
    summary += [f"objective {n}: {o['percent']:g} % ({o['points']}/{o['max_points']}) {o['objective']}"
                for n, o in result["objectives"].items()]
    if result.get("failed_rules") and result["status"] == "graded":
        summary.append("not met: " + "; ".join(result["failed_rules"]))
    return {"score": result["points"], "output": "\n".join(summary), "visibility": "after_published",
            "stdout_visibility": "hidden", "tests": tests}
