"""Machinery of the MOD-107 handbook: how pages' code blocks are found, checked, recorded and rendered.

One folder per concern:
    harness/      every code block of a page runs as a test (the pytest plugin conftest.py loads)
    recordings/   what snippets printed on a real GPU, and the figures pages render from it
    site/         the MkDocs hooks, both editions, cohort releases, the learner repository, the leak check
    course/       the quiz and the incident drills
    gpusim/       the GPU simulator: NVML, nvidia-smi and dmesg played from scenarios
    fleet/        the module project: a simulated GPU fleet watched by Prometheus
The README's commands `python -m handbook.record | release | typed_figures | quiz | drills` are the small modules
beside these folders; `python -m handbook.gpusim` and `handbook.fleet` are packages of their own.
Nothing here is learner code: snippets under snippets/ never import this package.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = ROOT / "snippets"
INSTRUCTOR = ROOT / "instructor"  # the instructor edition's pages (handbook/site/editions.py), outside docs/
