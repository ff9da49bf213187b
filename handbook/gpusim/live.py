"""A scenario that follows its file, on a shared clock: for simulators driven from outside (handbook/fleet).

    HANDBOOK_GPUSIM=/path/node03.toml HANDBOOK_GPUSIM_FOLLOW=1767225600.0 python exporter.py

With HANDBOOK_GPUSIM_FOLLOW=EPOCH (a Unix time), scenario time is the wall clock's seconds since EPOCH, in every
process that plays the file, so an exporter that runs for hours, a `nvidia-smi` started a minute ago and the
program that writes the file agree on what time it is; and the scenario is read again whenever its file changes,
so the writer can add what happens as it happens. A file caught half-written (or unreadable) keeps the last good
scenario; writers should replace the file atomically. The number of GPUs must not change (handles stay valid).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

ENV_FOLLOW = "HANDBOOK_GPUSIM_FOLLOW"
CHECK_EVERY_S = 0.25  # how often the file's modification time is looked at


def epoch() -> float | None:
    """The shared clock's start from HANDBOOK_GPUSIM_FOLLOW, or None when it is not set."""
    from handbook.gpusim import _number

    raw = os.environ.get(ENV_FOLLOW)
    if not raw:
        return None
    return _number(raw, ENV_FOLLOW, 0)


def follow(module, path: Path, start: float) -> None:
    """Make a simulated pynvml module (gpusim.simulated_module) follow `path` on the clock started at `start`."""
    from handbook.gpusim.scenario import ScenarioError, load
    from handbook.gpusim.nvml import Simulator

    sim = module.__gpusim__
    scenario = sim.__dict__.pop("scenario")
    count = len(scenario.gpus)

    class Following(type(sim)):
        @property
        def scenario(self):
            now = time.monotonic()
            if now - self._checked >= CHECK_EVERY_S:
                self._checked = now
                try:
                    mtime = os.stat(self._path).st_mtime_ns
                    if mtime != self._mtime:
                        fresh = load(str(self._path))
                        if len(fresh.gpus) == count:
                            self._scenario, self._mtime = fresh, mtime
                except (OSError, ScenarioError):
                    pass
            return self._scenario

        @scenario.setter
        def scenario(self, value):
            self._scenario = value

        def now(self) -> float:
            return time.time() - self._start

    assert isinstance(sim, Simulator)
    sim._scenario, sim._path, sim._start = scenario, Path(path), start
    sim._mtime, sim._checked = os.stat(path).st_mtime_ns, time.monotonic()
    sim.at = time.time() - start
    sim.__class__ = Following
