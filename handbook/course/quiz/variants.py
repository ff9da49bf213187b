"""Per-learner papers: which questions, in which order, options shuffled, numbers drawn; all from one HMAC seed.

    seed(learner, label) = HMAC-SHA256(course secret, "VERSION \\x1f LEARNER \\x1f LABEL")

Every draw (the pool's choice, the order of questions, each question's option order, each parameter, the
hidden drill scenario) is a function of such a seed, never of `random`'s state, so the same secret, bank version
and learner give the same paper on any machine and any Python: regrading is deterministic. Without the secret
a learner cannot compute anyone's paper, their own included. The paper's id, `variant:` in the answer file, is
the first 12 hex digits of seed(learner, "paper"); the grader recomputes it and refuses a file whose variant is not
the learner's own.

The course secret (instructors only): $HANDBOOK_QUIZ_SECRET, or the file instructor/quiz/course-secret, which git
ignores (`python -m handbook.quiz secret --init` writes it). Checks use TEST_SECRET; a grade made with it says so.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as _secrets
from dataclasses import dataclass, field
from pathlib import Path

from handbook import ROOT
from handbook.course.quiz import QuizError
from handbook.course.quiz.bank import Bank, Question

SECRET_ENV = "HANDBOOK_QUIZ_SECRET"
SECRET_FILE = ROOT / "instructor" / "quiz" / "course-secret"
TEST_SECRET = b"mod107-ci-test-secret: never for a real cohort"
PRACTICE = "practice"  # the public practice paper: every question, options in bank order, first parameter values
LETTERS = "abcdefgh"
LEARNER = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
VARIANT = re.compile(r"^[0-9a-f]{12}$")


def normal_learner(text: str) -> str:
    return text.strip().lower()


def load_secret(path: Path | None = None) -> bytes:
    """The course secret: the environment variable, else the git-ignored file; one QuizError line if neither."""
    value = os.environ.get(SECRET_ENV)
    source = f"${SECRET_ENV}"
    if not value:
        path = path or SECRET_FILE
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise QuizError(f"no course secret: set ${SECRET_ENV} or run `python -m handbook.quiz secret --init` "
                            f"(writes {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}, which git ignores)") from None
        except (OSError, UnicodeDecodeError) as err:
            raise QuizError(f"{path}: cannot read the course secret ({err.__class__.__name__})") from None
        source = str(path)
    if len(value) < 32:
        raise QuizError(f"{source}: the course secret must be at least 32 characters (use `secret --init`)")
    return value.encode("utf-8")


def init_secret(path: Path | None = None) -> Path:
    path = path or SECRET_FILE
    if path.exists():
        raise QuizError(f"{path}: a course secret exists already; delete it only to re-draw every learner's paper")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(_secrets.token_hex(32) + "\n")
    return path


def seed(secret: bytes, version: str, learner: str, label: str) -> bytes:
    message = "\x1f".join((version, learner, label)).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()


def draw(secret: bytes, version: str, learner: str, label: str, n: int) -> int:
    """An index in range(n), uniform enough (2**64 / n bias is negligible), fixed by the seed."""
    return int.from_bytes(seed(secret, version, learner, label)[:8], "big") % n


def variant_id(secret: bytes, version: str, learner: str) -> str:
    return seed(secret, version, normal_learner(learner), "paper").hex()[:12]


@dataclass(frozen=True)
class Instance:
    """One question as one learner sees it."""
    number: int
    question: Question
    letters: dict[str, str] = field(default_factory=dict)  # display letter -> canonical option key, in order
    params: dict[str, float] = field(default_factory=dict)
    draw: int = 0  # drills: which hidden scenario (the key's variants[draw % len])

    @property
    def id(self) -> str:
        return self.question.id

    def letter_of(self, key: str) -> str:
        return next(letter for letter, k in self.letters.items() if k == key)

    def prompt(self) -> str:
        return self.question.prompt.format(**{k: _num(v) for k, v in self.params.items()})


@dataclass(frozen=True)
class Paper:
    learner: str
    variant: str
    version: str
    instances: list[Instance]
    secret_is_test: bool = False

    @property
    def by_id(self) -> dict[str, Instance]:
        return {i.id: i for i in self.instances}


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _instance(number: int, q: Question, order: list[str], params: dict, pick: int = 0) -> Instance:
    return Instance(number, q, dict(zip(LETTERS, order)), params, pick)


def paper(bank: Bank, secret: bytes, learner: str) -> Paper:
    """LEARNER's paper: `choose` questions of every pool, pools in bank order, questions and options shuffled."""
    who = normal_learner(learner)
    if not LEARNER.match(who):
        raise QuizError(f"learner {learner!r}: a login of lower-case letters, digits and . _ @ - (at most 64)")
    chosen: list[Question] = []
    by_id = bank.by_id
    for pool in bank.pools.values():
        ranked = sorted(pool.members, key=lambda qid: seed(secret, bank.version, who, f"pool:{pool.id}:{qid}"))
        chosen += [by_id[qid] for qid in ranked[:pool.choose]]
    instances = []
    for number, q in enumerate(chosen, 1):
        order = sorted(q.options, key=lambda k: seed(secret, bank.version, who, f"option:{q.id}:{k}"))
        params = {name: values[draw(secret, bank.version, who, f"param:{q.id}:{name}", len(values))]
                  for name, values in sorted(q.params.items())}
        pick = int.from_bytes(seed(secret, bank.version, who, f"drill:{q.id}")[:8], "big")
        instances.append(_instance(number, q, order, params, pick))
    return Paper(who, variant_id(secret, bank.version, who), bank.version, instances, secret == TEST_SECRET)


def practice(bank: Bank) -> Paper:
    """The public practice paper on the site: every question of the bank, options as written, first values."""
    instances = [_instance(n, q, list(q.options), {k: v[0] for k, v in q.params.items()})
                 for n, q in enumerate(sorted(bank.questions, key=lambda q: (q.objective, q.kind == "drill")), 1)]
    return Paper(PRACTICE, PRACTICE, bank.version, instances)
