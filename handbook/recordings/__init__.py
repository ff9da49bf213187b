"""Recordings: what a snippet printed and produced on a real GPU, and exactly where and how it ran.

A block marked `record` that includes snippets/<section>/<page>/NN_purpose.py has its recording beside it in
NN_purpose.rec.json (a failed run goes to NN_purpose.rec.failed.json and never replaces a good recording).
A recording is stale when the sha256 of the snippet file no longer matches the one it recorded. A stale recording
that needs more GPUs than can be had may be marked *awaiting* (`python -m handbook.record --await-gpus N --reason
...`, only on a machine with fewer than N GPUs): it keeps its output, says on the page that it was recorded before
the change, and stays acceptable only for the exact code it was marked for, and only until a machine with N GPUs
runs the checks in GPU-runner mode, which then fails it until it is re-recorded; any further change makes it
plainly stale again.
"""
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCHEMA = 1
REQUIRED = ("schema", "snippet", "code_sha256", "exit_status", "wall_seconds", "stdout", "artifacts", "provenance")


class RecordingError(ValueError):
    """A recording file that cannot be read; str() names the file and what to do."""


def path_for(snippet: Path) -> Path:
    return snippet.with_suffix(".rec.json")


def failed_path_for(snippet: Path) -> Path:
    return snippet.with_suffix(".rec.failed.json")


def code_files(snippet: Path) -> list[Path]:
    """The snippet and the files beside it that it names, transitively: the trainer a harness launches, the
    config a validator reads. All of them are the code that ran, so a change to any makes a recording stale."""
    found, todo = [snippet], [snippet]
    while todo:
        text = todo.pop().read_text(encoding="utf-8", errors="replace")
        for sibling in sorted(snippet.parent.iterdir()):
            if sibling.is_file() and sibling not in found and sibling.name in text and not is_recording(sibling):
                found.append(sibling)
                todo.append(sibling) if sibling.suffix == ".py" else None
    return found


def is_recording(path: Path) -> bool:
    return path.name.endswith((".rec.json", ".rec.failed.json"))


def code_sha256(snippet: Path) -> str:
    """sha256 of the snippet's bytes; with files it names beside it, of each name and its bytes in turn."""
    files = code_files(snippet)
    if len(files) == 1:
        return hashlib.sha256(snippet.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RecordingError(f"{path}: unreadable recording ({err}); re-record it with python -m handbook.record") from None
    missing = [key for key in REQUIRED if key not in data]
    if missing or data.get("schema") != SCHEMA:
        raise RecordingError(f"{path}: not a schema-{SCHEMA} recording (missing {', '.join(missing) or 'schema'}); re-record it")
    return data


def write_atomic(path: Path, data: dict) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a recording."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class State:
    """A recorded block's recording: `fresh`, `stale` (code changed since), `awaiting` (stale, marked as waiting
    for a re-recording on more GPUs than are lent) or `missing`."""

    kind: str
    path: Path
    data: dict | None = None

    @property
    def provenance_line(self) -> str:
        return provenance_line(self.data["provenance"], self.data["wall_seconds"]) if self.data else ""

    @property
    def shows_nothing(self) -> bool:
        """An awaiting recording of what has since become another program: nothing of it is shown or quoted."""
        return self.kind == "awaiting" and bool(self.data["awaiting"].get("another_program"))

    @property
    def awaiting_line(self) -> str:
        """`recorded before this change, awaiting re-recording on 2 GPUs: REASON` for an awaiting recording."""
        if self.kind != "awaiting":
            return ""
        a = self.data["awaiting"]
        before = "recorded when it was another program" if a.get("another_program") else "recorded before this change"
        return f"{before}, awaiting re-recording on {gpu_count(a['gpus'])}: {a['reason']}"


def state(snippet: Path) -> State:
    path = path_for(snippet)
    if not path.exists():
        return State("missing", path)
    data = load(path)
    current = code_sha256(snippet)
    if data["code_sha256"] == current:
        return State("fresh", path, data)
    awaiting = data.get("awaiting") or {}
    return State("awaiting" if awaiting.get("code_sha256") == current else "stale", path, data)


def gpu_count(n: int) -> str:
    return "1 GPU" if n == 1 else f"{n} GPUs"


def mark_awaiting(snippet: Path, gpus: int, reason: str, gpus_here: int, another_program: bool = False) -> Path:
    """Mark a stale recording as awaiting a re-recording on `gpus` GPUs, for the code as it is now. With
    `another_program` the change made it a different program, whose older output describes nothing on the page:
    that output is then neither shown nor quoted (figures() says pending) until the re-recording."""
    rec = state(snippet)
    name = path_for(snippet).name
    if not reason.strip():
        raise RecordingError(f"{name}: --reason is empty: say why it cannot be re-recorded now")
    if rec.kind == "missing":
        raise RecordingError(f"{name}: there is no recording to keep; record {snippet.name} instead")
    if rec.kind == "fresh":
        raise RecordingError(f"{name}: the recording matches its code; nothing awaits a re-recording")
    if gpus_here >= gpus:
        raise RecordingError(f"{name}: this machine has {gpu_count(gpus_here)}, enough for {gpus}: re-record it instead")
    awaiting = {"gpus": gpus, "reason": reason.strip(), "code_sha256": code_sha256(snippet)}
    data = dict(rec.data, awaiting={**awaiting, "another_program": True} if another_program else awaiting)
    write_atomic(rec.path, data)
    return rec.path


def stale_message(snippet: Path, page: str, data: dict) -> str:
    p = data["provenance"]
    code = " + ".join(path.name for path in code_files(snippet))
    again = (" It was marked awaiting a re-recording, but the code changed again since."
             if data.get("awaiting") else "")
    return (f"stale recording: {path_for(snippet).name} no longer matches {code} (recorded {p['date'][:10]} on "
            f"{p['gpu_model']}); the code changed since. Re-record on a GPU: python -m handbook.record {page} "
            f"--only {snippet.name}, or through the GPU runner (docs/authors/index.md, 'Recordings')" + again)


def provenance_line(p: dict, wall_seconds: float) -> str:
    gpu = f"{p['gpu_count']}× {p['gpu_model']}" if p.get("gpu_count", 1) > 1 else p.get("gpu_model") or "CPU only"
    parts = [f"Recorded on {gpu}"]
    if p.get("gpu_memory_bytes"):
        parts[0] += f" ({p['gpu_memory_bytes'] / 2**30:.0f} GiB, cc {p['compute_capability']})"
    parts += [f"driver {p['driver_version']}", f"CUDA {p['cuda_version']}", f"torch {p['torch_version']}",
              f"Python {p['python_version']}", p["date"][:10], f"commit {p['commit'][:10]}", f"{wall_seconds:.1f} s"]
    return " · ".join(parts)
