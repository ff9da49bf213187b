"""Every notebook under docs/ runs top to bottom on CPU, and its saved outputs stay small and clean.

The site shows the outputs saved in the file (mkdocs-jupyter with execute: false). To refresh them after
editing a notebook, re-execute and save it on CPU:

    python checks/test_notebooks.py --save docs/optimization/profiling.ipynb
"""
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs").rglob("*.ipynb"))
MAX_BYTES = 64 * 1024  # a notebook is text for the site, not a data store


def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path, as in CI, even on a GPU machine
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES")
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = env_before
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(ROOT).as_posix() for p in NOTEBOOKS])
def test_notebook_runs_on_cpu(path, tmp_path):
    nb = execute(path, tmp_path)  # raises CellExecutionError, naming the cell, if any cell fails
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name}: no code cells"
    assert all(c.execution_count for c in code), f"{path.name}: a code cell did not run"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(ROOT).as_posix() for p in NOTEBOOKS])
def test_saved_outputs_are_small_and_clean(path):
    rel = path.relative_to(ROOT)
    assert path.stat().st_size <= MAX_BYTES, (
        f"{rel}: {path.stat().st_size} bytes; keep saved outputs short (limit {MAX_BYTES})")
    nb = nbformat.read(path, as_version=4)
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        kinds = {o.output_type for o in cell.outputs}
        assert "error" not in kinds, f"{rel}: cell {number} was saved with an error output; re-save it"
        assert not any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs), (
            f"{rel}: cell {number} was saved with stderr output; re-save with --save")
        assert "execution" not in cell.metadata, f"{rel}: cell {number} has timing metadata; re-save with --save"


def save(path: Path) -> None:
    nb = execute(path, path.parent)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":  # kernel and profiler log lines are noise on the site
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nbformat.write(nb, path)
    for leftover in path.parent.glob("*.trace.json*"):  # files a notebook wrote next to itself
        leftover.unlink()
    print(f"saved {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--save"] or not sys.argv[2:]:
        raise SystemExit("usage: python checks/test_notebooks.py --save docs/PATH.ipynb ...")
    for arg in sys.argv[2:]:
        save((ROOT / arg).resolve() if not Path(arg).is_absolute() else Path(arg))
