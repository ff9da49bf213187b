"""Recording a notebook: run its code cells on this machine's GPU and save their outputs, with provenance.

The site shows a notebook's saved outputs (mkdocs-jupyter, execute: false). `python -m handbook.record
docs/x.ipynb` runs the code cells in order in one namespace (as a kernel would, without needing Jupyter on the
GPU machine), replaces their outputs, and stores the provenance and the sha256 of the code cells in the notebook's
metadata; a markdown cell tagged `handbook-provenance` says on the page where the outputs come from. The checks
fail when the code cells no longer match the hash (a stale recording), as for snippets. A failing cell leaves the
notebook untouched.
"""
import ast
import contextlib
import copy
import hashlib
import io
import json
import os
import tempfile
import time
import traceback
from pathlib import Path

from handbook import recordings

KEY = "handbook_recording"
TAG = "handbook-provenance"


class NotebookError(RuntimeError):
    pass


def code_sha256(nb: dict) -> str:
    digest = hashlib.sha256()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            digest.update("".join(cell["source"]).encode() + b"\0")
    return digest.hexdigest()


def state(path: Path) -> str:
    """`fresh`, `stale`, `awaiting` (stale, marked for exactly its code as snippets' recordings are:
    recordings.mark_awaiting) or `missing` (outputs not recorded on a GPU)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    rec = nb["metadata"].get(KEY)
    if not rec:
        return "missing"
    code = code_sha256(nb)
    if rec["code_sha256"] == code:
        return "fresh"
    return "awaiting" if rec.get("awaiting", {}).get("code_sha256") == code else "stale"


def mark_awaiting(path: Path, gpus: int, reason: str, gpus_here: int) -> None:
    """Mark a notebook whose code cells changed since its recording as awaiting a re-recording on `gpus` GPUs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    now = state(path)
    if now != "stale" or not reason.strip() or gpus_here >= gpus:
        why = {"missing": "it has no recording to keep", "fresh": "its recording matches its code",
               "awaiting": "it is marked already"}.get(now) or ("--reason is empty" if not reason.strip() else
                                                              f"this machine has {recordings.gpu_count(gpus_here)}: re-record it instead")
        raise NotebookError(f"{path.name}: cannot mark it awaiting: {why}")
    nb["metadata"][KEY]["awaiting"] = {"gpus": gpus, "reason": reason.strip(), "code_sha256": code_sha256(nb)}
    write_atomic(path, nb)


def run_cell(source: str, namespace: dict, filename: str) -> list[dict]:
    """Execute one cell; its stdout, and the value of a last bare expression, as notebook outputs."""
    tree = ast.parse(source, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(tree, filename, "exec"), namespace)
        value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace) if last else None
    outputs = [{"output_type": "stream", "name": "stdout", "text": out.getvalue()}] if out.getvalue() else []
    if value is not None:
        outputs.append({"output_type": "execute_result", "execution_count": None, "metadata": {},
                        "data": {"text/plain": repr(value)}})
    return outputs


def code_cells(path: Path) -> list[tuple[int, str]]:
    """(cell number, counting every cell from 1, source) of each code cell."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(n, "".join(c["source"])) for n, c in enumerate(nb["cells"], 1) if c["cell_type"] == "code"]


# What run_on_cpu runs in a fresh interpreter: every code cell in order, one namespace, a result per cell.
CPU_DRIVER = """
import json, traceback
from handbook.recordings.notebooks import cell_failure, run_cell
results, namespace = {{}}, {{"__name__": "__main__"}}
for number, source in {cells!r}:
    try:
        run_cell(source, namespace, {name!r} + f":cell{{number}}")
        results[number] = ""
    except Exception as err:
        results[number] = cell_failure(err, {where!r} + str(number), {name!r} + f":cell{{number}}", source)
        break
with open({out!r}, "w") as f:
    json.dump(results, f)
"""


def cell_failure(err: BaseException, where: str, filename: str, source: str) -> str:
    """`page.ipynb:cellN: Error: message`, then the traceback from the cell's own frames on, in plain text."""
    frames = traceback.extract_tb(err.__traceback__)
    first = next((i for i, f in enumerate(frames) if f.filename == filename), len(frames))
    cell_lines = source.splitlines()
    exconly = "".join(traceback.format_exception_only(type(err), err)).strip()
    lines = [f"{where}: {exconly.splitlines()[0]}", "Traceback (most recent call last):"]
    for f in frames[first:]:
        text = cell_lines[f.lineno - 1] if f.filename == filename and 0 < f.lineno <= len(cell_lines) else f.line
        lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}\n    {(text or "").strip()}')
    return "\n".join(lines + [exconly])


def run_on_cpu(path: Path, timeout: float) -> dict:
    """Run the code cells on CPU (CUDA hidden, as in CI) in a fresh interpreter, never writing the notebook.
    {cell number: "" (passed) or the failure, in plain text}, and "stopped": why later cells did not run."""
    from handbook.harness import execution  # the harness's executor: timeout, process group, crash reporting
    from handbook.harness.blocks import rel

    cells = code_cells(path)
    with tempfile.TemporaryDirectory(prefix="notebook-cpu-") as tmp:
        out = os.path.join(tmp, "cells.json")
        where = f"{rel(path)}:cell"
        source = CPU_DRIVER.format(cells=cells, name=path.name, where=where, out=out)
        code = execution.Code(source=source, path=str(path), where=f"{rel(path)}", shown_path=rel(path))
        outcome = execution.run_fresh(code, {**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout)
        done = {int(k): v for k, v in (json.loads(Path(out).read_text()) if os.path.exists(out) else {}).items()}
    failed = next((n for n, v in done.items() if v), None)
    if failed is None and len(done) < len(cells):  # the run itself died or timed out
        first = cells[len(done)][0]
        done[first] = f"{where}{first}: " + (outcome.failure or "the run ended before this cell")
        failed = first
    done["stopped"] = f"cell {failed} failed" if failed else ""
    return done


def record(path: Path, provenance: dict) -> float:
    """Run the notebook's code cells and save their outputs; returns the wall time. Raises NotebookError."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    recorded = copy.deepcopy(nb)
    namespace = {"__name__": "__main__"}
    started, cwd = time.perf_counter(), os.getcwd()
    with tempfile.TemporaryDirectory(prefix="notebook-") as scratch:
        os.chdir(scratch)  # files the notebook writes stay out of the repository
        try:
            count = 0
            for number, cell in enumerate(recorded["cells"], 1):
                if cell["cell_type"] != "code":
                    continue
                count += 1
                try:
                    cell["outputs"] = run_cell("".join(cell["source"]), namespace, f"{path.name}:cell {number}")
                except Exception:
                    raise NotebookError(f"{path}: cell {number} failed; the notebook was left as it was:\n"
                                        f"{traceback.format_exc(limit=-3)}") from None
                cell["execution_count"] = count
                for output in cell["outputs"]:
                    if output["output_type"] == "execute_result":
                        output["execution_count"] = count
        finally:
            os.chdir(cwd)
    wall = time.perf_counter() - started
    recorded["metadata"][KEY] = {"code_sha256": code_sha256(recorded), "wall_seconds": round(wall, 2),
                                 "provenance": provenance}
    line = {"cell_type": "markdown", "id": TAG, "metadata": {"tags": [TAG]},
            "source": [f"> **The outputs below were recorded on a GPU.** {recordings.provenance_line(provenance, wall)}"]}
    cells = [c for c in recorded["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    recorded["cells"] = cells[:1] + [line] + cells[1:]
    write_atomic(path, recorded)
    return wall


def write_atomic(path: Path, nb: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
