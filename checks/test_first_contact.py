"""The README's main command as a newcomer meets it: a fresh clone, `make serve`, the home page and a lab page served.

The clone gets its own .venv from the Makefile (the base install only: no test extra), so anything the build
imports that the base install lacks fails here, as it would on a newcomer's machine.
"""
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from handbook import ROOT
from handbook.site import crawl

STARTUP_S = 240  # a cold pip install of the site's dependencies, then the first build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


@pytest.mark.timeout(STARTUP_S + 60)
def test_make_serve_from_a_fresh_clone_serves_the_home_page_and_a_lab(tmp_path):
    clone = crawl.copy_working_tree(ROOT, tmp_path / "handbook")
    crawl.init_repo(clone)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "NO_MKDOCS_2_WARNING")}
    log = tmp_path / "make-serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(["make", "serve", f"PORT={port}"], cwd=clone, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        base, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + STARTUP_S
        while status_of(base) != 200:
            assert server.poll() is None, f"make serve exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"nothing served after {STARTUP_S} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        assert status_of(base + "labs/lab2/") == 200, "the home page is served but Lab 2 is not"
        assert (clone / ".venv" / ".site-installed").exists()
        banner = "reaches end of life"
        assert banner not in log.read_text(), "the theme's end-of-life banner reached the author's terminal"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    # A second `make serve` installs nothing; an edited pyproject.toml installs again (make -n: what it would run).
    again = subprocess.run(["make", "-n", "serve"], cwd=clone, env=env, capture_output=True, text=True).stdout
    assert "pip install" not in again, again
    os.utime(clone / "pyproject.toml")
    assert "pip install" in subprocess.run(["make", "-n", "serve"], cwd=clone, env=env, capture_output=True, text=True).stdout
