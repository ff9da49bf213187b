"""Grade a cohort folder: every entry reported, one bad file never stops the others, the results always written.

Every entry of the folder gets a line and an entry in the results, whatever it is:
- a regular file, whatever its name or extension, is read as an answer file (a name that is not *.yaml/*.yml is
  noted); it is `graded`, `not-attempted` (no answer given: the untouched template), or `invalid` with the one
  line that says why (too big, not UTF-8, not YAML, aliases, tags, duplicate keys, a learner or variant that does
  not match, an answer to a question not on the learner's paper, ...);
- a folder, a symbolic link, a pipe, a socket or a device is `refused`, with the reason (never followed, never
  opened: a FIFO cannot block the grader);
- the same learner in two or more files: every one of them is flagged `duplicate`, none is dropped.
"""
from __future__ import annotations

import os
import stat
import traceback
from pathlib import Path

from handbook.course.quiz import QuizError, answers as answers_module, gradescope, grade, variants, yamlines
from handbook.course.quiz.bank import Bank

ANSWER_SUFFIXES = (".yaml", ".yml")


def grade_file(path: Path, bank: Bank, key: dict, secret: bytes, name: str | None = None) -> dict:
    """One file's result; never raises for bad input: an invalid file is a result with status 'invalid'."""
    name = name or path.name
    base = {"file": name, "learner": None, "variant": None}
    try:
        root = yamlines.load(path, name)
        found = answers_module.check_tree(root, path, bank, name, first_only=True)
        if isinstance(found, list):
            if _blank(root):  # an untouched template, even a malformed one, is not an attempt
                return base | {"status": "not-attempted", "error": f"no answer given ({found[0]})"}
            return base | {"status": "invalid", "error": found[0]}
        sheet = found
        base |= {"learner": sheet.learner, "variant": sheet.variant}
        if not sheet.attempted and (sheet.variant == variants.PRACTICE
                                    or sheet.learner == answers_module.PLACEHOLDER_LEARNER):
            return base | {"status": "not-attempted", "error": f"{name}: the untouched template, no answer given"}
        if sheet.learner == answers_module.PLACEHOLDER_LEARNER:
            return base | {"status": "invalid", "error": f"{name}: learner: is still the template's "
                           f"{answers_module.PLACEHOLDER_LEARNER}; the file cannot be matched to a learner"}
        if sheet.variant == variants.PRACTICE:
            return base | {"status": "invalid", "error": f"{name}: answers the site's practice paper "
                           "(variant: practice), not the paper issued to this learner"}
        expected = variants.variant_id(secret, bank.version, sheet.learner)
        if sheet.variant != expected:
            return base | {"status": "invalid", "error": f"{name}: variant {sheet.variant} is not the paper issued "
                           f"to {sheet.learner} for quiz version {bank.version} (a paper of another learner or "
                           "version, or a learner: changed by hand)"}
        paper = variants.paper(bank, secret, sheet.learner)
        result = grade.score(bank, key, paper, sheet)
        return result | {"file": name}
    except QuizError as err:
        return base | {"status": "invalid", "error": str(err)}
    except Exception as err:  # a grader bug must not cost another learner's result
        where = traceback.extract_tb(err.__traceback__)[-1]
        return base | {"status": "invalid", "error": f"{name}: internal grader error {err.__class__.__name__} "
                       f"at {Path(where.filename).name}:{where.lineno}; report it with this file"}


def _blank(root: yamlines.Node) -> bool:
    top = root.value if isinstance(root.value, dict) else {}
    body = top.get("answers")
    if body is None or body.value is None:
        return True
    return isinstance(body.value, dict) and all(v.value in (None, "", []) for v in body.value.values())


def entries(folder: Path) -> list[tuple[str, Path, str | None]]:
    """(name, path, reason to refuse or None) for every entry of FOLDER, sorted by name."""
    try:
        listing = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise QuizError(f"{folder}: cannot list the folder ({err.strerror})") from None
    out = []
    for entry in listing:
        path = Path(entry.path)
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as err:
            out.append((entry.name, path, f"cannot stat it ({err.strerror})"))
            continue
        if stat.S_ISLNK(mode):
            out.append((entry.name, path, "a symbolic link: never followed; copy the learner's file itself here"))
        elif stat.S_ISDIR(mode):
            out.append((entry.name, path, "a folder: sub-folders are not read; put each answer file directly in "
                                          f"{folder.name}/"))
        elif not stat.S_ISREG(mode):
            out.append((entry.name, path, "not a regular file (a pipe, socket or device): never opened"))
        else:
            out.append((entry.name, path, None))
    return out


def grade_folder(folder: Path, bank: Bank, key: dict, secret: bytes, *, out: Path | None = None,
                 feedback: Path | None = None, phase: str = "graded", echo=print) -> tuple[dict, int]:
    """Grade every entry of FOLDER; write OUT (and FEEDBACK/) even when interrupted. Returns (cohort, exit code)."""
    grade.learner_view({"questions": []}, phase)  # a bad --phase fails before anything is read
    found = entries(folder)
    results: list[dict] = []
    cohort: dict = {}
    try:
        for name, path, reason in found:
            if reason is not None:
                result = {"file": name, "learner": None, "variant": None, "status": "refused", "error": f"{name}: {reason}"}
            else:
                result = grade_file(path, bank, key, secret, name)
                if not name.lower().endswith(ANSWER_SUFFIXES):
                    result["note"] = f"read as an answer file although it is named {name}"
            results.append(result)
        flag_duplicates(results)
    finally:
        cohort = summary(bank, results, phase, complete=len(results) == len(found))
        if out is not None:
            grade.write(out, cohort)
        if feedback is not None:
            write_feedback(feedback, results, phase)
    for result in results:
        echo(grade.report(result))
        if result.get("duplicate_of"):
            echo(f"  duplicate learner {result['learner']}: also in {', '.join(result['duplicate_of'])}")
    c = cohort["counts"]
    echo(f"cohort: {len(results)} entries: {c['graded']} graded ({c['passed']} passed, {c['failed']} failed), "
         f"{c['not-attempted']} not attempted, {c['invalid']} invalid, {c['refused']} refused, "
         f"{len(cohort['duplicates'])} duplicate learner(s)")
    clean = c["invalid"] == c["refused"] == 0 and not cohort["duplicates"]
    return cohort, 0 if clean else 2


def flag_duplicates(results: list[dict]) -> None:
    by_learner: dict[str, list[dict]] = {}
    for r in results:
        if r.get("learner"):
            by_learner.setdefault(r["learner"], []).append(r)
    for same in by_learner.values():
        if len(same) > 1:
            for r in same:
                r["duplicate_of"] = [o["file"] for o in same if o is not r]


def summary(bank: Bank, results: list[dict], phase: str, complete: bool = True) -> dict:
    counts = {k: sum(r["status"] == k for r in results) for k in ("graded", "not-attempted", "invalid", "refused")}
    counts["passed"] = sum(r["status"] == "graded" and r["passed"] for r in results)
    counts["failed"] = counts["graded"] - counts["passed"]
    duplicates = sorted({r["learner"] for r in results if r.get("duplicate_of")})
    return {"quiz": bank.title, "version": bank.version, "phase": phase, "complete": complete,
            "pass_rule": {"overall": bank.pass_overall, "objective": bank.pass_objective},
            "counts": counts, "duplicates": duplicates,
            "entries": [{k: r[k] for k in ("file", "status", "learner") if k in r} | (
                {"error": r["error"]} if "error" in r else {}) for r in results],
            "results": results}


def write_feedback(folder: Path, results: list[dict], phase: str) -> None:
    """Per learner: NAME.json and NAME.md (what the learner may see at PHASE) and NAME.gradescope.json."""
    for r in results:
        if r["status"] == "refused":
            continue
        stem = Path(r["file"]).stem if (r.get("duplicate_of") or not r.get("learner")) else r["learner"]
        stem = "".join(c if c.isalnum() or c in "._-@" else "_" for c in stem) or "entry"
        if r["status"] in ("graded", "not-attempted") and "questions" in r:
            view = grade.learner_view(r, phase)
            grade.write(folder / f"{stem}.json", view)
            grade.write(folder / f"{stem}.md", grade.feedback_markdown(view))
        grade.write(folder / f"{stem}.gradescope.json", gradescope.results(r))
