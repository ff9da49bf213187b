"""Notebooks' saved outputs stay small and clean and match their code; the recorder records them on a GPU.

Their code cells run on CPU as items of their own (`pytest docs/x.ipynb`: one item per cell, handbook's harness),
never writing the file. The site shows the outputs saved in it (mkdocs-jupyter with execute: false), which come
from the recorder on a GPU: python -m handbook.record docs/optimization/profiling.ipynb
"""
import json
import warnings
from pathlib import Path

import nbformat
import pytest

from handbook.recordings import notebooks
from handbook.harness import requirements

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs").rglob("*.ipynb"))
MAX_BYTES = 64 * 1024  # a notebook is text for the site, not a data store


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(ROOT).as_posix() for p in NOTEBOOKS])
def test_saved_outputs_are_small_and_clean(path):
    rel = path.relative_to(ROOT)
    assert path.stat().st_size <= MAX_BYTES, (
        f"{rel}: {path.stat().st_size} bytes; keep saved outputs short (limit {MAX_BYTES})")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nbformat's MissingIDFieldWarning: every cell needs its id (nbformat 4.5)
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        kinds = {o.output_type for o in cell.outputs}
        assert "error" not in kinds, f"{rel}: cell {number} was saved with an error output; re-record it"
        assert not any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs), (
            f"{rel}: cell {number} was saved with stderr output; re-record it")
        assert "execution" not in cell.metadata, f"{rel}: cell {number} has timing metadata; re-record it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(ROOT).as_posix() for p in NOTEBOOKS])
def test_recorded_outputs_match_the_code(path, request):
    state = notebooks.state(path)
    if state == "missing":
        pytest.skip(f"{path.name}: outputs are from the CPU check, not recorded on a GPU (python -m handbook.record {path.relative_to(ROOT)})")
    rec = json.loads(path.read_text())["metadata"][notebooks.KEY]
    if state == "awaiting":  # as for snippets' recordings: only while no machine with its GPUs runs the checks
        waiting = rec["awaiting"]
        assert waiting["reason"].strip() and not (request.config.getoption("gpu_runner")
                                                   and requirements.detect().gpus >= waiting["gpus"]), (
            f"{path.relative_to(ROOT)} awaits a re-recording this GPU runner can make: python -m handbook.record "
            f"{path.relative_to(ROOT)}")
        return
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
    with pytest.raises(notebooks.NotebookError, match="this machine has 1 GPU: re-record it instead"):
        notebooks.mark_awaiting(path, 1, "no runner", gpus_here=1)
    notebooks.mark_awaiting(path, 1, "no runner", gpus_here=0)
    assert notebooks.state(path) == "awaiting"


def test_a_failing_cell_leaves_the_notebook_untouched(tmp_path):
    path = tmp_path / "f.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), path)
    before = path.read_bytes()
    with pytest.raises(notebooks.NotebookError, match="cell 1 failed"):
        notebooks.record(path, {"gpu_model": "x"})
    assert path.read_bytes() == before

