"""Fixtures several check files share: one strict build of the learner edition per run, whichever worker asks first."""
import fcntl
from pathlib import Path

import pytest

from site_builds import strict_build


@pytest.fixture(scope="session")
def learner_site(tmp_path_factory) -> Path:
    """The strict build of mkdocs.yml (what `make serve` and cohort releases publish), built once per test run:
    xdist workers share one base temporary folder, so the first to get the lock builds and the others read it."""
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if shared.name.startswith("popen-gw") else shared
    out, done = shared / "learner-site", shared / "learner-site.done"
    with open(shared / "learner-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            strict_build("mkdocs.yml", out)
            done.touch()
    return out
