"""The one executor of Python code for the harness, the recorder and notebooks: a child process, so code that ends
its process, hangs or poisons CUDA fails alone, with one default timeout (block_policy.default_timeout).

Three ways, chosen per block by the plugin:
  serve  (CPU blocks) a block server, a fresh interpreter started once per pytest worker, runs block after block,
         as the worker itself used to, so a block costs about what it did in-process (the author's loop stays
         fast); when a block kills the server, the block fails and the next block gets a new server. It is
         started, not forked: a fork of a worker whose tests already ran torch inherits an OpenMP thread pool
         that hangs the child's next parallel operation.
  fork   (CPU blocks with fixture:NAME) the worker forks for the block, so the child inherits the fixture values.
         The one place a fork remains: such a block must not rely on thread pools the worker already started.
  fresh  a new interpreter (`python -m handbook.harness.execution SPEC`): nothing was imported or initialised before the
         block, so no CUDA context, NCCL communicator or sticky CUDA error of an earlier block can reach it.
Either way the child writes what the block printed (stdout and stderr, interleaved) to a file and its result
to another; a child that dies without a result (os._exit, a signal, a CUDA or NCCL abort) is reported with its
exit status or signal and the tail of its output. A block past its timeout is killed with its process group.
The block's scratch working directory is made and removed by the parent, so a killed block leaves nothing behind;
its `__file__` is the snippet it runs, or a file in that scratch directory for an inline block (never the page: a
block must not write into docs/). run_program runs a whole program as `python SNIPPET` (the recorder), with the
same timeout handling.
"""
import contextlib
import dataclasses
import gc
import io
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 25


@dataclass(frozen=True)
class Code:
    """What a block runs: its source (padded so line N is line N of `path`) and how it reports a failure."""

    source: str
    path: str  # the page or snippet the source's line numbers refer to
    where: str  # docs/page.md:LINE
    shown_path: str  # the same file as authors write it (docs/x.md, snippets/...)
    runs_snippet: str = ""  # "snippets/..." when the block includes one
    sim: str = ""  # gpusim scenario, or ""
    workdir: str = ""  # the scratch working directory, made and removed by the parent


@dataclass(frozen=True)
class Outcome:
    failure: str  # "" when the block passed; else the full message, starting with `where`
    output: str  # what the block printed
    status: str  # "exit status 0", "killed by SIGSEGV", ...


# ---- what the child does ------------------------------------------------------------------------------------

def execute(code: Code, namespace: dict) -> str:
    """Run the block as `__main__` in its scratch directory; the failure message, or "" when it passed."""
    main = types.ModuleType("__main__")
    main.__dict__.update(namespace)
    saved = sys.argv, os.getcwd(), sys.modules.get("__main__")
    with _scratch(code) as scratch:
        # __file__: the snippet it runs, else a name in the scratch directory, never the page (no writes into docs/)
        main.__file__ = code.path if code.runs_snippet else os.path.join(scratch, "block.py")
        os.chdir(scratch)
        sys.argv = [main.__file__]
        sys.modules["__main__"] = main
        try:
            compiled = compile(code.source, code.path, "exec", dont_inherit=True)
            with _simulator(code.sim):
                exec(compiled, main.__dict__)
        except SystemExit as exit_:
            if exit_.code not in (0, None):  # a program that ends with sys.exit(0) succeeded
                return describe(code, exit_)
        except BaseException as err:  # noqa: BLE001 - every way a block can fail is reported as that block
            if type(err).__module__.startswith("_pytest"):  # --isolation=none: pytest's own timeout or skip
                raise
            return describe(code, err)
        finally:
            sys.argv = saved[0]
            os.chdir(saved[1])
            if saved[2] is not None:
                sys.modules["__main__"] = saved[2]
    return ""


@contextlib.contextmanager
def _scratch(code: Code):
    """The block's working directory: the one its parent made, or (in-process, --isolation=none) a temporary one."""
    if code.workdir:
        yield code.workdir
    else:
        with tempfile.TemporaryDirectory(prefix="block-") as scratch:
            yield scratch


@contextlib.contextmanager
def scratch_for(code: Code):
    """In the parent: a scratch directory for the child, removed however the child ends (a kill included)."""
    folder = tempfile.mkdtemp(prefix="block-")
    try:
        yield dataclasses.replace(code, workdir=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _simulator(scenario: str):
    if not scenario:
        return contextlib.nullcontext()
    from handbook import gpusim  # only then: importing it in every forked child would cost each block milliseconds

    return gpusim.activate(scenario)


def describe(code: Code, err: BaseException) -> str:
    """`docs/page.md:LINE: Error: message`, then the traceback from the block's own frames on, in authors' paths."""
    exconly = "".join(traceback.format_exception_only(type(err), err)).strip()
    frames = traceback.extract_tb(err.__traceback__)
    first = next((i for i, f in enumerate(frames) if f.filename == code.path), len(frames))
    lines = [f"{code.where}: {exconly.splitlines()[0] if exconly else type(err).__name__}"]
    if code.runs_snippet:
        lines.append(f"  the block runs {code.runs_snippet}")
    if isinstance(err, SyntaxError) and err.filename == code.path:
        lines.append(f'  File "{code.shown_path}", line {err.lineno}')
    if frames[first:]:
        lines.append("Traceback (most recent call last):")
        for f in frames[first:]:
            shown = code.shown_path if f.filename == code.path else f.filename
            lines.append(f'  File "{shown}", line {f.lineno}, in {f.name}\n    {(f.line or "").strip()}')
    lines.append(exconly)
    return "\n".join(lines)


def _child_streams(output_path: str) -> None:
    """Send fds 1 and 2, and Python's sys.stdout/sys.stderr, to one file (interleaved as the block wrote them)."""
    fd = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True, errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True, errors="backslashreplace")


def _finish(result_path: str, failure: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump({"failure": failure}, f)


# ---- what the parent does -----------------------------------------------------------------------------------

_WORKDIR: list = []  # this process's one work folder (cheaper than a folder per block), removed at exit
_RUNS = itertools.count(1)


def _run_files() -> tuple[str, str]:
    """A fresh (output, result) pair of file names in the work folder."""
    if not _WORKDIR:
        _WORKDIR.append(tempfile.TemporaryDirectory(prefix="handbook-run-"))
    base = os.path.join(_WORKDIR[0].name, str(next(_RUNS)))
    return base + ".output", base + ".result.json"


def _read(path: str):
    with contextlib.suppress(OSError, ValueError):
        return json.loads(Path(path).read_text("utf-8"))
    return None


def _remove(*paths: str) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def run_forked(code: Code, namespace: dict, timeout: float | None, env_update: dict | None = None) -> Outcome:
    output, result = _run_files()
    with scratch_for(code) as code:
        return _run_forked(code, namespace, timeout, env_update, output, result)


def _run_forked(code: Code, namespace: dict, timeout, env_update, output: str, result: str) -> Outcome:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            status = 70
            try:
                gc.freeze()  # the collector never walks the inherited objects: no copy-on-write of the worker's pages
                os.setpgid(0, 0)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                os.environ.update(env_update or {})
                _child_streams(output)
                _finish(result, execute(code, namespace))
                status = 0
            finally:
                os._exit(status)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also here, so a kill on timeout cannot race the child's own setpgid
        status = _wait(pid, timeout)
        return _outcome(code, status, output, _read(result), timeout)
    finally:
        _remove(output, result)


class BlockServer:
    """A fresh interpreter, its own process group, that runs CPU blocks one after another until one kills it."""

    def __init__(self, env_update: dict | None = None):
        request_r, self.request_w = os.pipe()
        self.response_r, response_w = os.pipe()
        for fd in (request_r, response_w):
            os.set_inheritable(fd, True)
        sys.stdout.flush()
        sys.stderr.flush()
        stdin = os.open(os.devnull, os.O_RDONLY)
        try:
            self.pid = os.posix_spawn(
                sys.executable, [sys.executable, "-m", "handbook.harness.execution", "--serve", str(request_r), str(response_w)],
                {**os.environ, **(env_update or {})}, setsid=True, file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0)])
        finally:
            os.close(stdin)
            os.close(request_r)
            os.close(response_w)
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.buffer = b""
        self.status = None

    @staticmethod
    def _serve(requests, response_w: int) -> None:
        for line in requests:  # ends when the worker closes the pipe (or dies)
            request = json.loads(line)
            _child_streams(request["output"])
            failure = execute(Code(**request["code"]), {})
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.write(response_w, json.dumps({"failure": failure}).encode() + b"\n")

    def alive(self) -> bool:
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.status = status
        return not pid

    def run(self, code: Code, output: str, timeout: float | None):
        """The block's result dict; None and the wait status when the server died; "timeout" when it ran too long."""
        os.write(self.request_w, json.dumps({"code": code.__dict__, "output": output}).encode() + b"\n")
        deadline = None if not timeout else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.stop()
                return "timeout", None
            watched = [self.response_r] + ([self.pidfd] if self.pidfd is not None else [])
            ready, _, _ = select.select(watched, [], [], min(left, 0.5) if left is not None else 0.5)
            if self.response_r in ready:
                chunk = os.read(self.response_r, 65536)
                if chunk:
                    self.buffer += chunk
                    continue
            elif not (self.pidfd in ready or (self.pidfd is None and not self.alive())):
                continue
            return None, self.stop()  # EOF or the server exited: the block took it down
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line), 0

    def stop(self) -> int | None:
        """Kill the server and what it started; its wait status."""
        _kill(self.pid)
        status = self.status
        with contextlib.suppress(ChildProcessError):
            status = os.waitpid(self.pid, 0)[1]
        for fd in (self.request_w, self.response_r, self.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return status


_SERVER: list = []  # this worker's BlockServer, while it lives


def run_served(code: Code, timeout: float | None, env_update: dict | None = None) -> Outcome:
    """Run a CPU block in this worker's block server (started with `env_update` when there is none)."""
    output, _ = _run_files()
    if not _SERVER:
        _SERVER.append(BlockServer(env_update))
    server = _SERVER[0]
    try:
        with scratch_for(code) as code:
            result, status = server.run(code, output, timeout)
        if result == "timeout" or result is None:
            _SERVER.clear()  # it is gone: the next block gets a new server
        if result == "timeout":
            return _outcome(code, None, output, None, timeout)
        return _outcome(code, status, output, result, timeout)
    except BaseException:  # pytest interrupted: take the block down with us
        server.stop()
        _SERVER.clear()
        raise
    finally:
        _remove(output)


def run_fresh(code: Code, env: dict, timeout: float | None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="handbook-run-") as tmp, scratch_for(code) as code:
        output, result, spec = (os.path.join(tmp, n) for n in ("output", "result.json", "spec.json"))
        Path(spec).write_text(json.dumps({"code": code.__dict__, "output": output, "result": result}), "utf-8")
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding handbook/
        env = dict(env)
        env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        child = subprocess.Popen([sys.executable, "-m", "handbook.harness.execution", spec], env=env, cwd=tmp,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        status = _wait(child.pid, timeout)
        child.returncode = 0  # reaped by _wait
        return _outcome(code, status, output, _read(result), timeout)


@dataclass(frozen=True)
class ProgramRun:
    status: int | None  # the exit status; None when it ran past its timeout and was killed
    stdout: str
    stderr: str


def run_program(argv: list[str], cwd: str, timeout: float | None, env: dict) -> ProgramRun:
    """Run a whole program (`python SNIPPET`) in `cwd`, stdout and stderr apart; past `timeout` it is killed with
    its process group, and the output so far is kept."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True)
        status = _wait(child.pid, timeout)
        child.returncode = 0  # reaped by _wait
        texts = []
        for stream in (out, err):
            stream.seek(0)
            texts.append(stream.read().decode(errors="replace"))
    exit_status = None if status is None else (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
    return ProgramRun(exit_status, *texts)


def _wait(pid: int, timeout: float | None) -> int | None:
    """The child's wait status; None when it ran past `timeout` (then it and its process group are killed)."""
    deadline = None if not timeout else time.monotonic() + timeout
    try:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            fd = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                _kill(pid)
                os.waitpid(pid, 0)
                return None
            if fd is not None:
                select.select([fd], [], [], left)
            else:
                time.sleep(min(0.01, left) if left else 0.01)
    except BaseException:  # pytest interrupted (Ctrl-C, an outer timeout): take the block down with us
        _kill(pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        raise
    finally:
        if fd is not None:
            os.close(fd)
        _kill(pid)  # anything the block left running in its process group


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def describe_status(status: int | None) -> str:
    if status is None:
        return "killed after its timeout"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name}" + (" (core dumped)" if os.WCOREDUMP(status) else "")
    return f"exit status {os.WEXITSTATUS(status)}"


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join("    " + line for line in kept) if kept else "    (it printed nothing)"


def _outcome(code: Code, status: int | None, output_path: str, result: dict | None, timeout) -> Outcome:
    """What the author reads, from the wait status (None: timed out), the output file and the block's result."""
    output = Path(output_path).read_text("utf-8", errors="backslashreplace") if os.path.exists(output_path) else ""
    how = describe_status(status)
    if status is None:
        failure = (f"{code.where}: Failed: Timeout >{timeout:g}s: the block ran past its timeout and was killed "
                   f"(raise it with the fence option timeout=N)\n  last lines of its output:\n{tail(output)}")
    elif result is None:
        failure = (f"{code.where}: the block ended its process without a Python exception: {how}\n"
                   + (f"  the block runs {code.runs_snippet}\n" if code.runs_snippet else "")
                   + f"  last lines of its output:\n{tail(output)}")
    else:
        failure = result["failure"]
        if not failure and status != 0:  # the result was written, then the process died (an atexit abort)
            failure = f"{code.where}: the block passed, then its process ended with {how}\n{tail(output)}"
    return Outcome(failure, output, how)


# ---- the fresh interpreter's entry point ----------------------------------------------------------------------

def serve(request_fd: int, response_fd: int) -> None:
    """The block server's entry point: blocks arrive as JSON lines until the worker closes the pipe."""
    sys.path[0:1] = []
    BlockServer._serve(os.fdopen(request_fd, "rb"), response_fd)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text("utf-8"))
    code = Code(**spec["code"])
    _child_streams(spec["output"])
    sys.path[0:1] = []  # the spec's folder is not the block's import path
    _finish(spec["result"], execute(code, {}))


if __name__ == "__main__":
    serve(int(sys.argv[2]), int(sys.argv[3])) if sys.argv[1] == "--serve" else main(sys.argv[1])
