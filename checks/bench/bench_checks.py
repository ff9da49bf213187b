"""Benchmark of the author's loop and of CI: one page, the whole CPU suite, the strict build.

    .venv/bin/python checks/bench/bench_checks.py [--runs N]

Targets on the 2-core CI machine: one page <= torch import + 1 s (issue 12); the full CPU suite <= 120 s
(issue 12). The full suite is timed as CI runs it (`-n auto`, three workers per two cores) and with one worker
per core, the xdist default, so the worker count's effect is measured rather than assumed; each full run starts
with an empty build cache (HANDBOOK_CACHE_DIR), as a fresh CI machine does.
The figures are printed, never asserted: timings belong here, not in tests.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = "docs/fundamentals/memory.md"
SPINE = ("harness", "fence_parsing", "site", "snippets", "recordings", "notebooks")  # issue 2's scope; the labs,
# Prometheus, release and browser checks come on top of it in the full suite


def seconds(cmd: list[str], cwd: Path = ROOT) -> float:
    """Wall seconds of one command; a failing command ends the benchmark with its output."""
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "HANDBOOK_CACHE_DIR": cache})
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"benchmark command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def median(cmd: list[str], cwd: Path, runs: int) -> tuple[float, list[float]]:
    times = [seconds(cmd, cwd) for _ in range(runs)]
    return statistics.median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as site:
        cases = {
            f"one page ({PAGE}), as an author runs it": [py, "-m", "pytest", "-q", "-n0", PAGE],
            "mkdocs build --strict": [py, "-m", "mkdocs", "build", "--strict", "-q", "--site-dir", site],
            "the spine: every page's blocks + harness, site, snippet, recording checks": [
                py, "-m", "pytest", "-q", "docs", *(f"checks/test_{name}.py" for name in SPINE)],
            "full CPU suite (python -m pytest, includes a strict build)": [py, "-m", "pytest", "-q"],
            f"full CPU suite, one worker per core (-n {os.cpu_count()})": [py, "-m", "pytest", "-q", "-n", str(os.cpu_count())],
        }
        for name, cmd in cases.items():
            middle, runs = median(cmd, ROOT, args.runs)
            print(f"{name:62} median {middle:6.1f} s  (runs: {', '.join(f'{r:.1f}' for r in runs)})")


if __name__ == "__main__":
    main()
