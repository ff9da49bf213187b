"""Does the quiz measure? Blind-guessing strategies over many papers, and the coverage rules.

A blind strategy answers every question of a paper without reading a page: the longest option (or the shortest), one fixed letter
(the best letter counts), the option sharing most words with the stem, a drill verdict matching the drill's name
and pager, "all of the above". Each must score at most MAX_BLIND % on average over the papers; every objective
needs at least MIN_QUESTIONS questions and MIN_SHARE % of the points on every paper.
"""
from __future__ import annotations

import functools
import re

from handbook.course.quiz.bank import Bank
from handbook.course.quiz.grade import drill_variant, question_result
from handbook.course.quiz.key import Entry
from handbook.course.quiz.variants import TEST_SECRET, Instance, paper
from handbook.course import vocabulary

MAX_BLIND = 35.0
MIN_QUESTIONS = 8
MIN_SHARE = 15.0
WORD = re.compile(r"[a-z0-9]+")
STOP = {"the", "a", "an", "of", "to", "and", "or", "in", "on", "is", "it", "its", "for", "with", "by", "at", "be",
        "that", "this", "what", "which", "why", "how", "does", "do", "not", "no", "are", "as", "from", "so", "s"}


@functools.lru_cache(maxsize=4096)
def words(text: str) -> frozenset[str]:
    return frozenset(w for w in WORD.findall(text.lower()) if w not in STOP and len(w) > 1)


def _best(inst: Instance, score) -> str:
    q = inst.question
    return max(inst.letters, key=lambda letter: (score(q.options[inst.letters[letter]]), letter))


def _drill(pick_verdict, pick_action):
    return (pick_verdict(vocabulary.VERDICTS), pick_action(vocabulary.ACTIONS), ())


def answer(strategy: str, inst: Instance, pager: str = ""):
    """STRATEGY's blind answer to INST (normalized as the grader reads it), or None (left blank)."""
    q = inst.question
    if q.kind == "numeric":
        return None
    if q.kind == "drill":
        context = words(q.id.replace("-", " ") + " " + pager) if strategy in ("keyword", "stem") else set()
        if strategy == "shortest":
            return _drill(lambda d: min(d, key=lambda k: len(d[k])), lambda d: min(d, key=lambda k: len(d[k])))
        if strategy == "longest":
            return _drill(lambda d: max(d, key=lambda k: len(d[k])), lambda d: max(d, key=lambda k: len(d[k])))
        if strategy.startswith("letter-"):
            i = ord(strategy[-1]) - ord("a")
            return _drill(lambda d: list(d)[i % len(d)], lambda d: list(d)[i % len(d)])
        if strategy in ("keyword", "stem"):
            def pick(d):
                return max(d, key=lambda k: (len(words(k.replace("-", " ") + " " + d[k]) & context), k))
            return _drill(pick, pick)
        return _drill(lambda d: list(d)[-1], lambda d: list(d)[-1])
    stem = words(inst.prompt())
    if strategy == "longest":
        choice = _best(inst, len)
    elif strategy == "shortest":
        choice = _best(inst, lambda text: -len(text))
    elif strategy.startswith("letter-"):
        choice = strategy[-1] if strategy[-1] in inst.letters else "a"
    elif strategy in ("stem", "keyword"):
        choice = _best(inst, lambda text: len(words(text) & stem))
    else:  # all of the above: every option of "all that apply"; else an all/every/both option, else the last
        if q.kind == "multiple":
            return tuple(sorted(inst.letters))
        flagged = [letter for letter, k in inst.letters.items() if words(q.options[k]) & {"all", "every", "both"}]
        choice = flagged[0] if flagged else list(inst.letters)[-1]
    return (choice,) if q.kind == "multiple" else choice


STRATEGIES = ["longest", "shortest", "letter-a", "letter-b", "letter-c", "letter-d", "stem", "keyword", "all-of-the-above"]


def run(bank: Bank, key: dict[str, Entry], papers: int = 200, secret: bytes = TEST_SECRET) -> dict:
    totals = {s: 0.0 for s in STRATEGIES}
    coverage_ok = True
    problems = []
    for n in range(papers):
        sheet = paper(bank, secret, f"blind-{n}")
        max_points = sum(i.question.points for i in sheet.instances)
        per_objective: dict[int, list] = {}
        for inst in sheet.instances:
            per_objective.setdefault(inst.question.objective, []).append(inst.question.points)
        for objective, points in per_objective.items():
            if len(points) < MIN_QUESTIONS or 100 * sum(points) < MIN_SHARE * max_points:
                coverage_ok = False
                problems.append(f"paper {n}: objective {objective} has {len(points)} questions, "
                                f"{100 * sum(points) / max_points:.1f} % of the points")
        if set(per_objective) != set(bank.objectives):
            coverage_ok = False
            problems.append(f"paper {n}: objectives {sorted(set(bank.objectives) - set(per_objective))} missing")
        for strategy in STRATEGIES:
            got = 0
            for inst in sheet.instances:
                entry = key[inst.id]
                pager = drill_variant(entry, inst).pager if inst.question.kind == "drill" else ""
                given = answer(strategy, inst, pager)
                got += question_result(inst, entry, given, None)["points"]
            totals[strategy] += 100 * got / max_points
    means = {s: round(v / papers, 1) for s, v in totals.items()}
    letters = {s: v for s, v in means.items() if s.startswith("letter-")}
    summary = {"longest option": means["longest"], "shortest option": means["shortest"], "most frequent letter": max(letters.values()),
               "option repeating stem words": means["stem"], "drill-name keyword match": means["keyword"],
               "all of the above": means["all-of-the-above"]}
    ok = coverage_ok and all(v <= MAX_BLIND for v in summary.values())
    return {"papers": papers, "strategies": summary, "detail": means, "coverage_ok": coverage_ok,
            "problems": problems[:10], "ok": ok}


def lines(report: dict) -> list[str]:
    out = [f"blind strategies, mean score over {report['papers']} papers (at most {MAX_BLIND:g} % each):"]
    out += [f"  {name:<30} {value:5.1f} %{'  TOO HIGH' if value > MAX_BLIND else ''}"
            for name, value in report["strategies"].items()]
    out.append(f"coverage (every objective >= {MIN_QUESTIONS} questions and >= {MIN_SHARE:g} % of the points on every "
               f"paper): {'ok' if report['coverage_ok'] else 'NOT MET'}")
    out += [f"  {p}" for p in report["problems"]]
    return out
