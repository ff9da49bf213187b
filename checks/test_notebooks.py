"""Every notebook under docs/ runs top to bottom on CPU, and its saved outputs stay small and clean.

The site shows the outputs saved in the file (mkdocs-jupyter with execute: false). To refresh them after
editing a notebook, re-execute and save it on CPU:

    python checks/test_notebooks.py --save docs/optimization/profiling.ipynb
"""
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from handbook import notebooks

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(ROOT).as_posix() for p in NOTEBOOKS])
def test_recorded_outputs_match_the_code(path):
    state = notebooks.state(path)
    if state == "missing":
        pytest.skip(f"{path.name}: outputs are from the CPU check, not recorded on a GPU (python -m handbook.record {path.relative_to(ROOT)})")
    rec = json.loads(path.read_text())["metadata"][notebooks.KEY]
    assert state == "fresh", (f"stale recording: the code cells of {path.relative_to(ROOT)} changed since their outputs were "
                              f"recorded on {rec['provenance']['gpu_model']}; re-record: python -m handbook.record {path.relative_to(ROOT)}")
    assert rec["provenance"]["gpu_model"], f"{path.relative_to(ROOT)} was recorded without a GPU"


def test_notebook_recorder_saves_outputs_and_provenance_and_detects_stale_code(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("x = 6 * 7\nprint('x is', x)"),
                                         nbformat.v4.new_code_cell("x + 1")])
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    prov = {"gpu_model": "NVIDIA H200", "gpu_count": 1, "driver_version": "580", "cuda_version": "13.0",
            "torch_version": "2.11", "python_version": "3.12", "date": "2026-11-26T00:00:00+00:00", "commit": "0" * 40}
    notebooks.record(path, prov)
    saved = json.loads(path.read_text())
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    assert code[0]["outputs"][0]["text"] == "x is 42\n"
    assert code[1]["outputs"][0]["data"]["text/plain"] == "43"
    assert "Recorded on NVIDIA H200" in "".join(saved["cells"][1]["source"])
    assert notebooks.state(path) == "fresh"
    saved["cells"][2]["source"] = ["x + 2"]
    path.write_text(json.dumps(saved))
    assert notebooks.state(path) == "stale"


def test_a_failing_cell_leaves_the_notebook_untouched(tmp_path):
    path = tmp_path / "f.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), path)
    before = path.read_bytes()
    with pytest.raises(notebooks.NotebookError, match="cell 1 failed"):
        notebooks.record(path, {"gpu_model": "x"})
    assert path.read_bytes() == before


def save(path: Path) -> None:
    nb = execute(path, path.parent)
    nb.metadata.pop(notebooks.KEY, None)  # CPU outputs replace the GPU recording, and say nothing of a GPU
    nb.cells = [c for c in nb.cells if notebooks.TAG not in c.metadata.get("tags", [])]
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
