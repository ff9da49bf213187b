"""Machinery of the MOD-107 handbook: how pages' code blocks are found, checked, recorded and rendered.

Nothing here is learner code: snippets under snippets/ never import this package.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"
INSTRUCTOR = ROOT / "instructor"  # the instructor edition's pages (handbook/editions.py), outside docs/
