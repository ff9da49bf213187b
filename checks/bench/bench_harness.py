"""Benchmark of the harness's own cost: against pytest-markdown-docs alone, and one page as an author runs it.

    .venv/bin/python checks/bench/bench_harness.py [--runs N]

Cases (issue 12; targets on the 2-core CI machine, printed, never asserted):
- a synthetic tree of 50 pages x 6 trivial blocks, run by pytest-markdown-docs alone and by the harness (every
  block in a forked child, page:line messages, the summary): the harness's overhead, target <= 1.2x wall;
- one page, `pytest docs/fundamentals/memory.md` with the project's own options: target <= `import torch` + 1 s.
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench_checks import median  # same timing, same failure report

ROOT = Path(__file__).resolve().parents[2]

PAGE = "docs/fundamentals/memory.md"
PAGES, BLOCKS = 50, 6


def synthetic_tree(root: Path, harness: bool) -> None:
    (root / "docs").mkdir(parents=True)
    (root / "snippets").mkdir()
    for p in range(PAGES):
        body = "".join(f"Block {b}.\n\n```python\nvalue = {p} * {b}\nassert value == {p * b}\n```\n\n" for b in range(BLOCKS))
        (root / "docs" / f"page{p:02}.md").write_text(f"# Page {p}\n\n{body}")
    if harness:  # the project's conftest.py (loads the harness) and pytest options
        shutil.copy(ROOT / "conftest.py", root / "conftest.py")
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    else:  # pytest-markdown-docs alone, with the project's other pytest options (pyproject.toml addopts)
        (root / "pytest.ini").write_text("[pytest]\naddopts = --markdown-docs -ra --dist loadfile -p no:cacheprovider "
                                         "-p no:hypothesispytest\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        plain, harness = Path(tmp) / "plain", Path(tmp) / "harness"
        synthetic_tree(plain, harness=False)
        synthetic_tree(harness, harness=True)
        for workers in ("0", "2"):
            base, base_runs = median([py, "-m", "pytest", "-q", "-n", workers, "docs"], plain, args.runs)
            ours, our_runs = median([py, "-m", "pytest", "-q", "-n", workers, "docs"], harness, args.runs)
            print(f"{PAGES}x{BLOCKS} trivial blocks, -n {workers}: pytest-markdown-docs {base:5.2f} s, harness {ours:5.2f} s"
                  f"  -> {ours / base:.2f}x  (runs: {', '.join(f'{r:.2f}' for r in base_runs)} / "
                  f"{', '.join(f'{r:.2f}' for r in our_runs)})")
    torch, torch_runs = median([py, "-c", "import torch"], ROOT, args.runs)
    page, page_runs = median([py, "-m", "pytest", "-q", PAGE], ROOT, args.runs)
    print(f"one page ({PAGE}) as an author runs it: {page:.2f} s; import torch alone {torch:.2f} s; "
          f"harness + pytest beyond torch {page - torch:.2f} s  (runs: {', '.join(f'{r:.2f}' for r in page_runs)})")


if __name__ == "__main__":
    main()
