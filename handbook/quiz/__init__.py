"""The troubleshooting quiz: its public question bank, the learners' answer files, and the instructors' grader.

The bank (docs/assessment/bank.yaml) is public; the key (instructor/quiz/key.yaml) is not, and nothing the
learner edition publishes may contain it (checks/test_editions.py).
"""
from pathlib import Path

from .. import ROOT

BANK = ROOT / "docs" / "assessment" / "bank.yaml"
KEY = ROOT / "instructor" / "quiz" / "key.yaml"


class QuizError(Exception):
    """Bad input (bank, key or answer file); str() is one line, `FILE:LINE: what is wrong`."""
