"""Shell fences: the commands a page tells learners to type, run (with `run`) and checked (nvidia-smi usage).

    ```console run sim="thermal-throttle"      $-lines are commands (a trailing \\ continues one); other lines
    $ nvidia-smi --query-gpu=name --format=csv   are the output the page shows and are not run
    ```
    ```bash run requires="gpu"                 the whole block is one script, run with `bash -e` (sh: `sh -e`)
    nvidia-smi -q -d PERFORMANCE
    ```

A block with `run` runs in a scratch directory holding a copy of the page's snippet folder
(snippets/<section>/<page>/), so `python 01_x.py` works as the page says. requires= and timeout= mean what they
mean for python blocks (GPU blocks take GPUs of their own, see scheduling.py); sim="SCENARIO" puts
handbook/gpusim/bin (the simulator's `nvidia-smi` stand-in) first on PATH and makes Python programs import the
simulator as pynvml. Separately, every nvidia-smi command on every page (fences and inline code) has its
--query-gpu= fields and -q -d sections checked against the lists recorded from a real nvidia-smi
(nvidia_smi_help()).
"""
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from handbook import SNIPPETS
from handbook.harness import policy, blocks, execution, requirements, scheduling
from handbook.harness.policy import BlockFailed

GPUSIM_BIN = Path(__file__).resolve().parents[1] / "gpusim" / "bin"
HELP_SNIPPET = SNIPPETS / "authors" / "index" / "01_nvidia_smi_help.py"
HELP_ARTIFACT = "nvidia_smi_help.json"


def runs(block: blocks.Block) -> bool:
    return block.lang in blocks.SHELL and "run" in block.options


def console_commands(block: blocks.Block) -> list[tuple[int, str]]:
    """(page line, command) of each `$ ` line of a console block, continuation lines (trailing \\) joined."""
    commands, current, start = [], None, 0
    for number, line in enumerate(block.code.splitlines(), block.line + 1):
        if current is not None:
            current += "\n" + line
        elif line.startswith("$ "):
            current, start = line[2:], number
        else:
            continue
        if not current.endswith("\\"):
            commands.append((start, current))
            current = None
    if current is not None:
        commands.append((start, current))
    return commands


def script_for(block: blocks.Block) -> tuple[list[str], str]:
    """The interpreter and script a `run` block executes; a console block echoes each command's page line."""
    if block.lang in ("bash", "sh"):
        return ([block.lang, "-e"], block.code)
    lines = []
    for number, command in console_commands(block):
        lines.append(f"printf '%s\\n' {shlex.quote(f'$ {command}  (line {number})')} >&2")
        lines.append(command)
    return (["bash", "-e"], "\n".join(lines) + "\n")


class ShellBlockItem(pytest.Item):
    def __init__(self, *, block: blocks.Block, **kwargs):
        super().__init__(**kwargs)
        self.block = block
        self.add_marker(pytest.mark.timeout(0))  # the harness kills the block itself
        policy.mark_unmet_requirements(self, block)

    def setup(self):
        policy.fail_unmet_requirements(self, self.block)

    def runtest(self):
        failure, output = run_shell(self.block, policy.timeout_of(self.block, self.config))
        sys.stdout.write(output)
        if failure:
            raise BlockFailed(failure)

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance((BlockFailed, pytest.fail.Exception)):
            return str(excinfo.value)
        return f"{self.block.where}: {excinfo.exconly()}"

    def reportinfo(self):
        return self.path, self.block.line - 1, self.block.where


def shell_env(block: blocks.Block, base: dict) -> dict:
    env = dict(base)
    scenario = block.options.get("sim")
    if scenario:
        from handbook import gpusim

        env = gpusim.child_env(scenario, base=env)
        env["PATH"] = os.pathsep.join([str(GPUSIM_BIN), env.get("PATH", "")])
        env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable  # the launchers' interpreter: the one with nvidia-ml-py
    return env


def run_shell(block: blocks.Block, timeout: float) -> tuple[str, str]:
    """(failure message or "", output) of running a `run` block."""
    import subprocess

    hw = requirements.detect()
    slots = block.requires.gpus if block.requires else 0
    interpreter, script = script_for(block)
    with tempfile.TemporaryDirectory(prefix="shell-block-") as scratch:
        folder = page_snippets(block.page)
        if folder and folder.is_dir():
            shutil.copytree(folder, scratch, dirs_exist_ok=True)
        (Path(scratch) / ".block.sh").write_text(script, encoding="utf-8")
        output_path = Path(scratch) / ".output"
        holding = scheduling.hold(hw.devices, slots) if slots and hw.devices else _Nothing()
        with holding as devices, open(output_path, "wb") as out:
            env = shell_env(block, scheduling.pinned_env(devices) if devices else dict(os.environ))
            child = subprocess.Popen([*interpreter, ".block.sh"], cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            status = execution._wait(child.pid, timeout)
            child.returncode = 0
        output = output_path.read_text("utf-8", errors="backslashreplace")
    if status is None:
        return (f"{block.where}: Failed: Timeout >{timeout:g}s: the commands ran past their timeout and were killed "
                f"(raise it with timeout=N)\n  last lines of their output:\n{execution.tail(output)}", output)
    if status != 0:
        failed = _last_console_line(output)
        return (f"{block.where}: {failed or 'the script'} failed: {execution.describe_status(status)}\n"
                f"  last lines of its output:\n{execution.tail(output)}", output)
    return "", output


def page_snippets(page: Path) -> Path | None:
    """docs/<section>/<page>.md -> snippets/<section>/<page>/ of the same tree."""
    page = page.resolve()
    docs = next((p for p in page.parents if p.name == "docs"), None)
    return docs.parent / "snippets" / page.relative_to(docs).with_suffix("") if docs else None


def _last_console_line(output: str) -> str:
    started = [line for line in output.splitlines() if line.startswith("$ ") and line.endswith(")")]
    return f"`{started[-1][2:]}`" if started else ""


class _Nothing:
    def __enter__(self):
        return []

    def __exit__(self, *exc):
        return False


# ---- nvidia-smi usage on the pages --------------------------------------------------------------------------

INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def nvidia_smi_uses(page: Path, snippet_dir: Path = SNIPPETS) -> list[tuple[int, list[str]]]:
    """(page line, argv after `nvidia-smi`) of every nvidia-smi command in the page's shell fences and inline code."""
    uses = []
    fence_lines = set()
    for block in blocks.parse_page(page, snippet_dir):
        fence_lines.update(range(block.line, block.end_line + 1))
        if block.lang not in blocks.SHELL:
            continue
        if block.lang == "console":
            commands = console_commands(block)
        else:
            commands = [(n, line) for n, line in enumerate(block.code.splitlines(), block.line + 1)]
        for number, command in commands:
            uses += [(number, argv) for argv in _nvidia_smi_argvs(command)]
    for number, line in enumerate(page.read_text("utf-8").splitlines(), 1):
        if number in fence_lines:
            continue
        for span in INLINE_CODE.findall(line):
            uses += [(number, argv) for argv in _nvidia_smi_argvs(span)]
    return uses


def _nvidia_smi_argvs(command: str) -> list[list[str]]:
    command = command.replace("\\\n", " ")
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    found, current = [], None
    for word in words:
        if word in ("|", "&&", "||", ";", "|&") or word.endswith(";"):
            current = None
            continue
        if word == "nvidia-smi" or word.endswith("/nvidia-smi"):
            current = []
            found.append(current)
        elif current is not None:
            current.append(word)
    return found


def query_fields(argv: list[str], option: str = "--query-gpu") -> list[str]:
    fields = []
    for i, word in enumerate(argv):
        value = None
        if word.startswith(option + "="):
            value = word.partition("=")[2]
        elif word == option and i + 1 < len(argv):
            value = argv[i + 1]
        if value:
            fields += [f.strip() for f in value.split(",") if f.strip()]
    return fields


def display_sections(argv: list[str]) -> list[str]:
    """The -d/--display sections of an `nvidia-smi -q` command (dmon/pmon's -d is a delay, not a section)."""
    if not ({"-q", "--query"} & set(argv)) or (argv and argv[0] in ("dmon", "pmon", "topo", "mig", "nvlink")):
        return []
    sections = []
    for i, word in enumerate(argv):
        value = None
        if word.startswith("--display="):
            value = word.partition("=")[2]
        elif word in ("-d", "--display") and i + 1 < len(argv):
            value = argv[i + 1]
        if value:
            sections += [s.strip() for s in value.split(",") if s.strip()]
    return sections


def nvidia_smi_help():
    """The recorded field and section lists ({"query_gpu_fields": [...], "display_sections": [...]}), with the
    recording's provenance line; None while nothing is recorded yet."""
    from handbook import recordings

    path = recordings.path_for(HELP_SNIPPET)
    if not path.exists():
        return None
    data = recordings.load(path)
    artifact = data["artifacts"].get(HELP_ARTIFACT, {}).get("json")
    if not artifact:
        raise recordings.RecordingError(f"{path}: has no {HELP_ARTIFACT}; re-record {HELP_SNIPPET.name}")
    return artifact, recordings.provenance_line(data["provenance"], data["wall_seconds"])


def check_nvidia_smi(page: Path, known: dict, snippet_dir: Path = SNIPPETS) -> list[str]:
    """`docs/page.md:LINE: ...` for every field or section nvidia-smi does not know."""
    problems = []
    fields, sections = set(known["query_gpu_fields"]), {s.upper() for s in known["display_sections"]}
    for number, argv in nvidia_smi_uses(page, snippet_dir):
        for field in query_fields(argv):
            if field not in fields:
                close = sorted(f for f in fields if f.split(".")[0] == field.split(".")[0])[:6]
                problems.append(f"{blocks.rel(page)}:{number}: nvidia-smi --query-gpu field {field!r} is not one "
                                f"that nvidia-smi --help-query-gpu lists" + (f" (near: {', '.join(close)})" if close else ""))
        apps = set(known.get("query_compute_apps_fields", ()))
        for field in query_fields(argv, "--query-compute-apps"):
            if apps and field not in apps:
                problems.append(f"{blocks.rel(page)}:{number}: nvidia-smi --query-compute-apps field {field!r} is not "
                                f"one that nvidia-smi --help-query-compute-apps lists")
        for section in display_sections(argv):
            if section.upper() not in sections:
                problems.append(f"{blocks.rel(page)}:{number}: nvidia-smi -q -d {section!r} is not a section "
                                f"(known: {', '.join(sorted(sections))})")
    return problems


def shellcheck_args(block: blocks.Block) -> list[str]:
    return ["shellcheck", "--format=json1", f"--shell={'sh' if block.lang == 'sh' else 'bash'}", "-"]


def shellcheck(block: blocks.Block) -> list[str]:
    """`docs/page.md:LINE: SCnnnn message` for each finding of shellcheck on a bash/sh fence; for a fence that
    includes a script, the finding names the script's own line."""
    import subprocess

    done = subprocess.run(shellcheck_args(block), input=block.runs, capture_output=True, text=True, timeout=60)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"shellcheck failed on {block.where}: {done.stderr.strip()}")
    findings = json.loads(done.stdout or '{"comments": []}')["comments"]
    if block.snippet:
        where = lambda line: f"{blocks.rel(block.snippet.path)}:{block.snippet.first_line - 1 + line}"  # noqa: E731
    else:
        where = lambda line: f"{blocks.rel(block.page)}:{block.line + line}"  # noqa: E731
    return [f"{where(c['line'])}: SC{c['code']} ({c['level']}): {c['message']}" for c in findings]
