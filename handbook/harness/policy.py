"""How the harness treats any block it runs, python or shell: its timeout, and skip or fail when hardware is missing.

One default timeout for every block (pyproject's `timeout`, also the recorder's), and one place that decides what
a block whose `requires=` this machine cannot meet does: it is skipped with the reason, except in GPU-runner mode
on a machine that has no usable GPU at all, where it fails (a GPU runner that lost its GPU and skips its GPU blocks
proves nothing). A runner with GPUs still skips a block asking for more than it has (gpus>=8 on a 2-GPU runner).
"""
import functools
import tomllib

import pytest

from handbook import ROOT
from handbook.harness import requirements


class BlockFailed(Exception):
    """A block's failure, already worded for the author (page:line first)."""


def default_timeout(config=None) -> float:
    """Seconds a block may run unless its fence says timeout=N: pyproject's [tool.pytest.ini_options] timeout, as
    pytest read it (so `-o timeout=N` applies), or read from pyproject.toml outside pytest (the recorder)."""
    if config is not None:
        return float(config.getini("timeout") or 0)
    return _pyproject_timeout()


@functools.cache
def _pyproject_timeout() -> float:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return float(config["tool"]["pytest"]["ini_options"]["timeout"])


def timeout_of(block, config=None) -> float:
    return block.timeout or default_timeout(config)


def gpu_runner_without_gpu(config) -> bool:
    return config.getoption("gpu_runner") and requirements.detect().gpus == 0


def mark_unmet_requirements(item, block) -> None:
    """At collection: a block whose requires= this machine cannot meet is skipped with the reason (not in
    GPU-runner mode without a GPU: fail_unmet_requirements fails it instead)."""
    if block.requires and not gpu_runner_without_gpu(item.config):
        reason = requirements.unmet(block.requires, requirements.detect())
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def fail_unmet_requirements(item, block) -> None:
    """At setup, in GPU-runner mode on a machine without a usable GPU: the block fails, naming what it lacked."""
    if block.requires and gpu_runner_without_gpu(item.config):
        reason = requirements.unmet(block.requires, requirements.detect())
        pytest.fail(f"{block.where}: GPU-runner mode, but this block {reason}", pytrace=False)
