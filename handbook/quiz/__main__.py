"""python -m handbook.quiz: check an answer file's format (learners), grade files or a cohort (instructors).

  python -m handbook.quiz check answers.yaml                  format only; every problem as answers.yaml:LINE: ...
  python -m handbook.quiz grade answers.yaml --out result.json
  python -m handbook.quiz grade submissions/ --out cohort.json   every *.yaml in the folder, one result file
  python -m handbook.quiz template > answers.yaml             a blank answer file for the current bank

grade exits 0 when every file graded passed (a cohort: when every file could be graded), 1 when a graded file
failed, 2 on bad input (one line saying what to fix, never a traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import BANK, KEY, QuizError, answers, bank as bank_module, render


def _grader():
    """The instructors' grader (key.py, grade.py): imported only by `grade`, so the learner repository, which
    leaves both out (handbook/learner_repo), still runs `check` and `template`."""
    try:
        from . import grade, key
    except ImportError:
        raise QuizError("grading is for instructors: it needs the key and the grader, which this repository does not "
                        "hold; check your file's format with `python -m handbook.quiz check answers.yaml`") from None
    return grade, key


def cmd_check(args) -> int:
    bank = bank_module.load(args.bank)
    found = answers.problems(args.answers, bank, args.answers.name)
    if isinstance(found, list):
        for line in found:
            print(line, file=sys.stderr)
        return 2
    blank = [q.id for q in bank.questions if found.answers.get(q.id) is None]
    print(f"{args.answers.name}: format OK: {len(bank.questions) - len(blank)} of {len(bank.questions)} questions answered"
          + (f" (blank: {', '.join(blank[:5])}{', ...' if len(blank) > 5 else ''})" if blank else ""))
    if found.learner == render.PLACEHOLDER_LEARNER:
        print(f"{args.answers.name}: note: learner: is still the template's {found.learner}; put your name or login")
    return 0


def cmd_grade(args) -> int:
    grade, key_module = _grader()
    bank = bank_module.load(args.bank)
    key = key_module.load(bank, args.key)
    target: Path = args.answers
    if target.is_dir():
        results, invalid = [], []
        for path in grade.submissions(target):
            try:
                result = grade.score(bank, key, answers.load(path, bank, str(path)))
            except QuizError as err:
                print(f"quiz: error: {err}", file=sys.stderr)
                invalid.append({"file": str(path), "error": str(err)})
                continue
            print(grade.report(result))
            results.append(result)
        passed = sum(r["passed"] for r in results)
        print(f"cohort: {len(results)} graded, {passed} passed, {len(results) - passed} failed, {len(invalid)} invalid")
        if args.out:
            grade.write(args.out, {"quiz": bank.title, "pass_mark": bank.pass_mark, "graded": len(results),
                                   "passed": passed, "invalid": invalid, "results": results})
        return 2 if invalid else 0
    result = grade.score(bank, key, answers.load(target, bank, str(target)))
    print(grade.report(result))
    if args.out:
        grade.write(args.out, result)
    return 0 if result["passed"] else 1


def cmd_template(args) -> int:
    sys.stdout.write(render.template(bank_module.load(args.bank)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handbook.quiz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bank", type=Path, default=BANK, help="the question bank (default: docs/assessment/bank.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check an answer file's format (no key needed)")
    check.add_argument("answers", type=Path)
    check.set_defaults(run=cmd_check)
    grading = sub.add_parser("grade", help="grade an answer file, or every *.yaml in a folder")
    grading.add_argument("answers", type=Path)
    grading.add_argument("--key", type=Path, default=KEY, help="the key (default: instructor/quiz/key.yaml)")
    grading.add_argument("--out", type=Path, help="write the machine-readable result here (JSON)")
    grading.set_defaults(run=cmd_grade)
    template = sub.add_parser("template", help="print a blank answer file")
    template.set_defaults(run=cmd_template)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except QuizError as err:
        print(f"quiz: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
