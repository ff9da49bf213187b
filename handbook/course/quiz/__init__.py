"""The quiz: a public question bank, per-learner papers, the learners' format check, the instructors' grader.

Learners get the bank (docs/assessment/bank.yaml), `python -m handbook.quiz check` and the drill runner. The key
(instructor/quiz/key.yaml), the course secret (instructor/quiz/course-secret or $HANDBOOK_QUIZ_SECRET) and the
graded drills' hidden scenarios (instructor/drills/scenarios/) stay with the instructors, and nothing the learner
edition publishes may contain them (checks/test_editions.py).
"""

from handbook import ROOT

BANK = ROOT / "docs" / "assessment" / "bank.yaml"
KEY = ROOT / "instructor" / "quiz" / "key.yaml"


class QuizError(Exception):
    """Bad input (bank, key or answer file); str() is one line, `FILE:LINE: what is wrong`."""
PHASES = ("graded", "closed")  # what a learner's feedback may reveal: after grading, or once the cohort closed
