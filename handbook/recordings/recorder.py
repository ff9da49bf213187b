"""The recorder: run a page's `record` blocks on this machine's GPU and write one recording per block.

    python -m handbook.record                       # every page
    python -m handbook.record docs/fundamentals/compute.md
    python -m handbook.record --only 01_matmul_throughput.py
    python -m handbook.record --stale               # only recordings that are missing or stale
    python -m handbook.record docs/optimization/profiling.ipynb   # a notebook: its saved outputs (notebooks.py)
    python -m handbook.record docs/labs/lab3.md --only 05_scaling_curve.py --await-gpus 4 --reason "..."
                                                    # keep a stale multi-GPU recording, marked as awaiting

Each snippet runs as `python SNIPPET` in a scratch directory; what it prints and the files it writes there
(JSON results, plots) become the recording, with the provenance of the run. A failed or timed-out run is kept
aside in *.rec.failed.json and never replaces a good recording. Exit status 1 if any block failed.
"""
import argparse
import base64
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handbook import DOCS, ROOT, SNIPPETS, recordings
from handbook.harness import policy, blocks, execution, requirements
from handbook.recordings import notebooks

MAX_ARTIFACT_BYTES = 2 * 2**20
MAX_TEXT_BYTES = 256 * 2**10
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}
TEXT_TYPES = {".md", ".txt"}


def provenance(command: list[str]) -> dict:
    """Where this run happens: GPU, driver, CUDA, torch, Python, commit, date, command line."""
    p = {"gpu_model": None, "gpu_count": 0, "gpu_memory_bytes": 0, "compute_capability": None,
         "driver_version": None, "cuda_version": None}
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
            cuda = pynvml.nvmlSystemGetCudaDriverVersion()
            p.update(gpu_model=pynvml.nvmlDeviceGetName(h), gpu_count=pynvml.nvmlDeviceGetCount(),
                     gpu_memory_bytes=pynvml.nvmlDeviceGetMemoryInfo(h).total,
                     compute_capability="{}.{}".format(*pynvml.nvmlDeviceGetCudaComputeCapability(h)),
                     driver_version=pynvml.nvmlSystemGetDriverVersion(), cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}")
        finally:
            pynvml.nvmlShutdown()
    except Exception as err:  # no GPU or no NVML: the caller decides whether that is allowed
        p["why_no_gpu"] = str(err)
    try:
        import torch

        p["torch_version"], p["torch_cuda"] = torch.__version__, torch.version.cuda
    except ImportError:
        p["torch_version"] = p["torch_cuda"] = None
    p["python_version"] = platform.python_version()
    p["commit"] = os.environ.get("HANDBOOK_COMMIT") or git("rev-parse", "HEAD") or "unknown"
    p["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no")) if git("rev-parse", "HEAD") else None
    p["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    p["command"] = " ".join(command)
    return p


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def collect_artifacts(scratch: Path) -> dict:
    """JSON files are kept parsed, markdown and text as text, images as data, anything else by name and size."""
    artifacts = {}
    for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
        name, size = path.relative_to(scratch).as_posix(), path.stat().st_size
        if path.suffix == ".json" and size <= MAX_ARTIFACT_BYTES:
            artifacts[name] = {"json": json.loads(path.read_text())}
        elif path.suffix in TEXT_TYPES and size <= MAX_TEXT_BYTES:
            artifacts[name] = {"text": path.read_text(errors="replace")}
        elif path.suffix in IMAGE_TYPES and size <= MAX_ARTIFACT_BYTES:
            artifacts[name] = {"media_type": IMAGE_TYPES[path.suffix], "base64": base64.b64encode(path.read_bytes()).decode()}
        else:
            artifacts[name] = {"bytes": size}
    return artifacts


def run_block(block: blocks.Block, timeout: float, prov: dict, snippet_dir: Path = SNIPPETS) -> dict:
    snippet = block.snippet.path
    with tempfile.TemporaryDirectory(prefix="record-") as scratch:
        started = time.perf_counter()
        run = execution.run_program([sys.executable, str(snippet)], scratch, timeout,
                                    {**os.environ, "PYTHONUNBUFFERED": "1"})
        status, stdout, stderr = run.status, run.stdout, run.stderr
        if status is None:
            stderr += f"\ntimed out after {timeout:g} s (raise it with the fence option timeout=N)"
        wall = time.perf_counter() - started
        artifacts = collect_artifacts(Path(scratch))
    return {"schema": recordings.SCHEMA, "snippet": snippet.relative_to(snippet_dir).as_posix(),
            "page": blocks.rel(block.page), "block_line": block.line,
            "code_sha256": recordings.code_sha256(snippet),
            "code_files": [path.name for path in recordings.code_files(snippet)], "exit_status": status, "wall_seconds": round(wall, 2),
            "stdout": stdout[-64_000:], "stderr_tail": stderr[-4_000:], "artifacts": artifacts, "provenance": prov}


def record_blocks(pages: list[Path], only: list[str] | None = None, allow_cpu: bool = False,
                  default_timeout: float | None = None, snippet_dir: Path = SNIPPETS, stale_only: bool = False) -> int:
    default_timeout = default_timeout or policy.default_timeout()
    prov = provenance([Path(sys.executable).name, "-m", "handbook.record", *sys.argv[1:]])
    if not prov["gpu_model"] and not allow_cpu:
        raise SystemExit(f"handbook.record: no GPU here ({prov.get('why_no_gpu')}); recordings come from real GPU runs "
                         "(run this on a GPU machine, or pass --allow-cpu for a dry run)")
    hw = requirements.detect()
    failed = 0
    for page in pages:
        if page.suffix == ".ipynb":
            if not stale_only or notebooks.state(page) != "fresh":
                failed += not record_notebook(page, prov)
            continue
        for block in blocks.parse_page(page, snippet_dir):
            if not block.recorded or (only and block.snippet.path.name not in only):
                continue
            if stale_only and recordings.state(block.snippet.path).kind not in ("missing", "stale"):
                continue
            reason = block.requires and requirements.unmet(block.requires, hw)
            if reason:
                print(f"skip   {block.where}: {reason}")
                continue
            result = run_block(block, block.timeout or default_timeout, prov, snippet_dir)
            ok = result["exit_status"] == 0
            target = recordings.path_for(block.snippet.path) if ok else recordings.failed_path_for(block.snippet.path)
            recordings.write_atomic(target, result)
            if ok:
                recordings.failed_path_for(block.snippet.path).unlink(missing_ok=True)
            failed += not ok
            print(f"{'ok    ' if ok else 'FAILED'} {block.where} -> {blocks.rel(target)} ({result['wall_seconds']} s)")
            if not ok:
                print("       " + (result["stderr_tail"].strip().splitlines() or ["(no stderr)"])[-1])
    return 1 if failed else 0


def record_notebook(path: Path, prov: dict) -> bool:
    try:
        wall = notebooks.record(path, prov)
    except notebooks.NotebookError as err:
        print(f"FAILED {blocks.rel(path)}: {err}")
        return False
    print(f"ok     {blocks.rel(path)} -> its saved outputs ({wall:.1f} s)")
    return True


def mark_awaiting(parser, args) -> int:
    if not args.pages or (not args.only and any(p.suffix != ".ipynb" for p in args.pages)):
        parser.error("--await-gpus needs the page and --only SNIPPET.py of each recording it marks (a notebook: its path)")
    if args.await_gpus < 1:
        parser.error("--await-gpus N: N is the GPU count the recording needs (1 or more)")
    marked = 0
    for page in args.pages:
        if page.suffix == ".ipynb":
            try:
                notebooks.mark_awaiting(page.resolve(), args.await_gpus, args.reason, requirements.detect().gpus)
            except notebooks.NotebookError as err:
                raise SystemExit(f"handbook.record: {err}") from None
            print(f"marked {page}: awaiting a re-recording on {recordings.gpu_count(args.await_gpus)}")
            marked += 1
            continue
        for block in blocks.parse_page(page.resolve()):
            if block.recorded and block.snippet.path.name in args.only:
                try:
                    path = recordings.mark_awaiting(block.snippet.path, args.await_gpus, args.reason,
                                                    requirements.detect().gpus, args.another_program)
                except recordings.RecordingError as err:
                    raise SystemExit(f"handbook.record: {err}") from None
                print(f"marked {blocks.rel(path)}: {recordings.state(block.snippet.path).awaiting_line}")
                marked += 1
    if not marked:
        raise SystemExit(f"handbook.record: no record block of {', '.join(map(str, args.pages))} includes {', '.join(args.only)}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m handbook.record", description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="docs pages (default: all)")
    parser.add_argument("--only", action="append", help="record only blocks that include this snippet file name (repeatable)")
    parser.add_argument("--allow-cpu", action="store_true", help="dry run without a GPU (never commit its recordings)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds per block unless the fence sets timeout= (default: pyproject's timeout, as in the checks)")
    parser.add_argument("--stale", action="store_true", help="record only blocks whose recording is missing or stale")
    parser.add_argument("--await-gpus", type=int, metavar="N",
                        help="do not run: mark the --only recordings, made stale by a code change, as awaiting a "
                             "re-recording on N GPUs (when fewer are available)")
    parser.add_argument("--reason", default="", help="with --await-gpus: why it cannot be re-recorded now")
    parser.add_argument("--another-program", action="store_true",
                        help="with --await-gpus: the change made the snippet a different program, so its older output is "
                             "neither shown nor quoted on the pages until it is re-recorded")
    args = parser.parse_args(argv)
    if args.await_gpus is not None:
        return mark_awaiting(parser, args)
    for page in args.pages:
        if not page.is_file() or page.suffix not in (".md", ".ipynb"):
            parser.error(f"{page}: not a page (give paths like docs/fundamentals/compute.md or docs/x/y.ipynb)")
    pages = [p.resolve() for p in args.pages] or blocks.checked_pages() + sorted(DOCS.rglob("*.ipynb"))
    try:
        return record_blocks(pages, args.only, args.allow_cpu, args.timeout, stale_only=args.stale)
    except blocks.BlockError as err:
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    sys.exit(main())
