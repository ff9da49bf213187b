"""Spelling: codespell over the pages and the snippets, with pyproject.toml's [tool.codespell] settings."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_codespell_docs_and_snippets():
    targets = [d for d in ("docs", "snippets") if (ROOT / d).is_dir()]
    proc = subprocess.run([sys.executable, "-m", "codespell_lib", "--toml", "pyproject.toml", *targets], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"codespell found misspellings (fix them, or add a word to ignore-words-list " \
                                 f"in pyproject.toml's [tool.codespell]):\n{proc.stdout}{proc.stderr}"


def test_codespell_catches_a_typo(tmp_path):
    typo = "reci" + "eved"  # spelled apart so that this file itself passes codespell
    (tmp_path / "page.md").write_text(f"The GPU memory is {typo}.\n")
    proc = subprocess.run([sys.executable, "-m", "codespell_lib", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0 and typo in proc.stdout
