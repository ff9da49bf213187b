"""Fixtures several check files share: one strict build of each edition per run, whichever worker asks first."""
import fcntl
from pathlib import Path

import pytest

from site_builds import strict_build


def shared_build(tmp_path_factory, name: str, config: str) -> Path:
    """The strict build of CONFIG, built once per test run: xdist workers share one base temporary folder, so the
    first to get the lock builds and the others read it."""
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if shared.name.startswith("popen-gw") else shared
    out, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            strict_build(config, out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def learner_site(tmp_path_factory) -> Path:
    """The strict build of mkdocs.yml (what `make serve` and cohort releases publish)."""
    return shared_build(tmp_path_factory, "learner-site", "mkdocs.yml")


@pytest.fixture(scope="session")
def instructor_site(tmp_path_factory) -> Path:
    """The strict build of mkdocs.instructor.yml (the edition with the key and the solutions): test_editions.py
    scans it for leaks, test_a11y.py audits it in a browser."""
    return shared_build(tmp_path_factory, "instructor-site", "mkdocs.instructor.yml")
