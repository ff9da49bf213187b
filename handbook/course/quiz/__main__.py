"""python -m handbook.quiz: check an answer file (learners); issue papers, grade, export (instructors).

Learners (the public bank only):
  check answers.yaml                 format only; every problem as answers.yaml:LINE: ...
  template > answers.yaml            the practice paper's blank answer file

Instructors (the key in instructor/quiz/key.yaml and the course secret, see handbook/course/quiz/variants.py):
  secret --init                      write instructor/quiz/course-secret (git-ignored), once per course
  papers roster.txt papers/          per learner: paper.md, answers.yaml and the drills' pack
  grade answers.yaml [--out result.json]
  grade submissions/ --out cohort.json [--feedback feedback/] [--phase graded|closed]
  gradescope /autograder/submission /autograder/results/results.json
  export --format qti|moodle OUT     the bank as a Canvas QTI 1.2 package or Moodle XML
  audit                              blind-guessing strategies and coverage, per variant

Exit codes: check 0 (format OK) or 2; grade of one file 0 pass, 1 fail, 2 bad input; grade of a folder 0 when
every entry was graded, 2 when any was invalid, refused or a duplicate learner (after writing the results).
Bad input is always one line naming the file and what to fix, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handbook import ROOT
from handbook.course.quiz import BANK, KEY, PHASES, QuizError, answers, bank as bank_module, render, variants


def _grader():
    """The instructors' modules (key, grade, cohort, gradescope, papers): imported only by instructors' commands, so
    the learner repository, which leaves them out (handbook/site/learner_repo), still runs `check` and `template`."""
    try:
        from handbook.course.quiz import cohort, grade, gradescope, key, papers
    except ImportError:
        raise QuizError("grading is for instructors: it needs the key and the grader, which this repository does not "
                        "hold; check your file's format with `python -m handbook.quiz check answers.yaml`") from None
    return cohort, grade, gradescope, key, papers


def site_url() -> str:
    import re

    try:
        text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    except OSError:
        return "../"
    m = re.search(r"^site_url:\s*(\S+)", text, re.M)
    return m[1].rstrip("/") + "/" if m else "../"


def cmd_check(args) -> int:
    bank = bank_module.load(args.bank)
    found = answers.problems(args.answers, bank, args.answers.name)
    if isinstance(found, list):
        for line in found:
            print(line, file=sys.stderr)
        return 2
    for line in answers.warnings(found, bank, args.answers.name):
        print(line, file=sys.stderr)
    blank = [qid for qid, v in found.answers.items() if v is None]
    given = len(found.answers) - len(blank)
    print(f"{args.answers.name}: format OK: {given} of {len(found.answers)} questions answered"
          + (f" (blank: {', '.join(blank[:5])}{', ...' if len(blank) > 5 else ''})" if blank else "")
          + "; the format only: your answers are graded by your instructor")
    if found.learner == answers.PLACEHOLDER_LEARNER:
        print(f"{args.answers.name}: note: learner: is still the template's {found.learner}; put your cohort login")
    return 0


def _instructor(args):
    key_module = _grader()[3]
    bank = bank_module.load(args.bank)
    key = key_module.load(bank, args.key)
    secret = variants.load_secret(args.secret_file)
    return bank, key, secret


def cmd_grade(args) -> int:
    cohort, grade, *_ = _grader()
    bank, key, secret = _instructor(args)
    target: Path = args.answers
    if target.is_dir() and not target.is_symlink():
        _, code = cohort.grade_folder(target, bank, key, secret, out=args.out, feedback=args.feedback,
                                      phase=args.phase)
        return code
    result = cohort.grade_file(target, bank, key, secret, target.name)
    if args.out:
        grade.write(args.out, result)
    if result["status"] == "invalid":
        print(f"quiz: error: {result['error']}", file=sys.stderr)
        return 2
    if "questions" not in result:
        print(f"{target.name}: NOT ATTEMPTED: {result.get('error', '')}")
        return 1
    print(grade.report(result))
    if args.feedback:
        cohort.write_feedback(args.feedback, [result], args.phase)
    return 0 if result["passed"] else 1


def cmd_gradescope(args) -> int:
    """Inside Gradescope's container: grade the one answer file of SUBMISSION, always write RESULTS."""
    out: Path = args.results
    cohort, grade, gradescope, *_ = _grader()
    try:
        bank, key, secret = _instructor(args)
        files = [e for e in cohort.entries(args.submission)] if args.submission.is_dir() else []
        regular = [e for e in files if e[2] is None]
        if len(regular) != 1:
            names = ", ".join(e[0] for e in files) or "nothing"
            result = {"file": str(args.submission), "status": "invalid",
                      "error": f"submit exactly one answer file (answers.yaml); this submission holds {names}"}
        else:
            name, path, _ = regular[0]
            result = cohort.grade_file(path, bank, key, secret, name)
    except QuizError as err:  # our own setup is broken: still a results.json that says so
        result = {"file": str(args.submission), "status": "invalid", "error": f"autograder setup: {err}"}
    grade.write(out, gradescope.results(result))
    print(grade.report(result) if "questions" in result else f"{result['file']}: {result['status']}: {result.get('error')}")
    return 0


def cmd_template(args) -> int:
    sys.stdout.write(render.template(bank_module.load(args.bank)))
    return 0


def cmd_papers(args) -> int:
    papers = _grader()[4]
    bank, key, secret = _instructor(args)
    roster = papers.read_roster(args.roster)
    written = papers.issue(bank, key, secret, roster, args.out, site_url())
    print(f"papers: {len(written)} learners in {args.out}/ (paper.md, answers.yaml, drills/ each)"
          + ("; WARNING: made with the checks' test secret, not a course secret" if secret == variants.TEST_SECRET else ""))
    return 0


def cmd_secret(args) -> int:
    if not args.init:
        print("quiz: error: secret --init writes a new course secret (nothing else to do here)", file=sys.stderr)
        return 2
    path = variants.init_secret(args.secret_file)
    print(f"secret: wrote {path} (mode 0600, git-ignored); keep a copy with the cohort's records: "
          "without it no paper can be regraded")
    return 0


def cmd_export(args) -> int:
    from handbook.course.quiz import export

    bank = bank_module.load(args.bank)
    key = _grader()[3].load(bank, args.key)
    path = export.write(bank, key, args.format, args.out, variants_per_question=args.variants)
    print(f"export: wrote {path}")
    return 0


def cmd_audit(args) -> int:
    from handbook.course.quiz import audit

    bank = bank_module.load(args.bank)
    key = _grader()[3].load(bank, args.key)
    report = audit.run(bank, key, papers=args.papers)
    for line in audit.lines(report):
        print(line)
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handbook.quiz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bank", type=Path, default=BANK, help="the question bank (default: docs/assessment/bank.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    def instructor(p):
        p.add_argument("--key", type=Path, default=KEY, help="the key (default: instructor/quiz/key.yaml)")
        p.add_argument("--secret-file", type=Path, default=None,
                       help=f"the course secret (default: ${variants.SECRET_ENV}, else instructor/quiz/course-secret)")

    check = sub.add_parser("check", help="check an answer file's format (no key needed)")
    check.add_argument("answers", type=Path)
    check.set_defaults(run=cmd_check)
    grading = sub.add_parser("grade", help="grade an answer file, or every entry of a folder")
    grading.add_argument("answers", type=Path)
    instructor(grading)
    grading.add_argument("--out", type=Path, help="write the machine-readable result here (JSON)")
    grading.add_argument("--feedback", type=Path, help="write each learner's feedback (JSON, Markdown, Gradescope) here")
    grading.add_argument("--phase", default="graded", choices=PHASES,
                         help="what the feedback reveals: graded (grades are out) or closed (the cohort closed)")
    grading.set_defaults(run=cmd_grade)
    gs = sub.add_parser("gradescope", help="grade a Gradescope submission folder into results.json")
    gs.add_argument("submission", type=Path)
    gs.add_argument("results", type=Path)
    instructor(gs)
    gs.set_defaults(run=cmd_gradescope)
    template = sub.add_parser("template", help="print the practice paper's blank answer file")
    template.set_defaults(run=cmd_template)
    issue = sub.add_parser("papers", help="issue every learner of a roster their paper, answer file and drills")
    issue.add_argument("roster", type=Path)
    issue.add_argument("out", type=Path)
    instructor(issue)
    issue.set_defaults(run=cmd_papers)
    secret = sub.add_parser("secret", help="create the course secret")
    secret.add_argument("--init", action="store_true")
    secret.add_argument("--secret-file", type=Path, default=None)
    secret.set_defaults(run=cmd_secret)
    export = sub.add_parser("export", help="write the bank for an LMS: Canvas QTI 1.2 (.zip) or Moodle XML")
    export.add_argument("--format", required=True, choices=("qti", "moodle"))
    export.add_argument("--variants", type=int, default=4, help="pre-rendered variants per numeric question (default 4)")
    export.add_argument("out", type=Path, help="a folder; the package is written into it")
    instructor(export)
    export.set_defaults(run=cmd_export)
    aud = sub.add_parser("audit", help="score blind-guessing strategies over many papers; check coverage")
    aud.add_argument("--papers", type=int, default=200)
    instructor(aud)
    aud.set_defaults(run=cmd_audit)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except QuizError as err:
        print(f"quiz: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
