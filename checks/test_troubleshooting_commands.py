"""The runbooks' commands are real: every console example with `<!-- sim: SCENARIO -->` above it is run against
the simulator-driven nvidia-smi/dmesg stand-ins and the diagnostic, and its shown output must be what they print;
every other shell command on the chapter's pages must pass shellcheck.

`python checks/test_troubleshooting_commands.py --write` refreshes the shown outputs from a run (never by hand).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from troubleshooting_matrix import environment

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs" / "troubleshooting").glob("*.md"))
SNIPPET_DIRS = sorted((ROOT / "snippets" / "troubleshooting").iterdir())
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>console|bash|sh)\b[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
SIM = re.compile(r"<!-- sim: (?P<spec>\S+) -->\s*$")


def examples(page: Path):
    """(line, scenario or None, lang, [(command, shown output)], (body start, body end)) per shell fence."""
    text = page.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").splitlines()
        sim = SIM.search(before[-1]) if before else None
        body = [line[len(m["indent"]):] for line in m["body"].splitlines()]
        steps = []
        if m["lang"] == "console":
            for line in body:
                if line.startswith("$ "):
                    steps.append([line[2:], []])
                elif steps:
                    steps[-1][1].append(line)
        else:
            steps = [["\n".join(body), []]]
        yield (text.count("\n", 0, m.start()) + 1, sim["spec"] if sim else None, m["lang"],
               [(c, "\n".join(o)) for c, o in steps], m.span("body"), m["indent"])


ALL = [(page, *ex) for page in PAGES for ex in examples(page)]
SIMULATED = [e for e in ALL if e[2]]
PLAIN = [e for e in ALL if not e[2]]


def workdir(tmp: Path) -> Path:
    """A working directory holding the chapter's snippets, with `python` meaning this interpreter."""
    for folder in SNIPPET_DIRS:
        for f in folder.glob("*.py"):
            shutil.copy(f, tmp / f.name)
    (tmp / ".bin").mkdir()
    launcher = tmp / ".bin" / "python"  # a script, not a symlink: a venv's python must be started by its own path
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    return tmp


def play(spec: str, command: str, cwd: Path) -> str:
    env = environment(spec)
    env["PATH"] = f"{cwd / '.bin'}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(["bash", "-c", command.split("  # ")[0]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)
    return "\n".join(line.rstrip() for line in proc.stdout.rstrip("\n").splitlines())


def ident(e):
    return f"{e[0].name}:{e[1]}"


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """(spec, command) -> stdout for every simulated example, eight at a time (most of a run waits in its windows)."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = sorted({(e[2], command) for e in SIMULATED for command, _ in e[4]})

    # Folders made here, one thread: mktemp's first call creates the worker's base folder, and two threads doing
    # that at once make one of them fail (FileExistsError) when this is the worker's first use of tmp_path.
    folders = {pair: workdir(tmp_path_factory.mktemp("cmd")) for pair in pairs}

    def one(pair):
        return pair, play(pair[0], pair[1], folders[pair])

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, pairs))


@pytest.mark.parametrize("example", SIMULATED, ids=ident)
def test_shown_output_is_what_the_command_prints(example, printed):
    page, line, spec, _, steps, _, _ = example
    for command, shown in steps:
        out = printed[spec, command]
        assert out == "\n".join(s.rstrip() for s in shown.splitlines()), (
            f"{page.name}:{line}: `{command}` on {spec} printed:\n{out}\n"
            "refresh with `python checks/test_troubleshooting_commands.py --write`")


@pytest.mark.parametrize("example", PLAIN, ids=ident)
def test_shell_commands_pass_shellcheck(example, tmp_path):
    page, line, _, lang, steps, _, _ = example
    script = tmp_path / "commands.sh"
    script.write_text("#!/usr/bin/env bash\n" + "\n".join(c for c, _ in steps) + "\n", encoding="utf-8")
    proc = subprocess.run(["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, f"{page.name}:{line}: shellcheck:\n{proc.stdout}"


def test_every_query_field_the_runbooks_use_is_one_nvidia_smi_knows(tmp_path):
    cwd = workdir(tmp_path)
    queries = {q for e in ALL for c, _ in e[4] for q in re.findall(r"--query-(?:gpu|compute-apps)=\S+", c)}
    assert queries, "the runbooks query nothing?"
    for query in sorted(queries):
        printed = play("busy-training", f"nvidia-smi {query} --format=csv", cwd)
        assert "is not a valid field" not in printed, f"{query}: {printed}"


def test_the_stand_in_refuses_unknown_fields_like_the_real_tool(tmp_path):
    printed = play("busy-training", "nvidia-smi --query-gpu=index,temperature.average --format=csv; echo exit=$?",
                   workdir(tmp_path))
    assert printed.splitlines()[0] == 'Field "temperature.average" is not a valid field to query.'
    assert printed.splitlines()[-1] == "exit=2"


def test_the_stand_in_fails_the_way_the_real_tool_does(tmp_path):
    cwd = workdir(tmp_path)
    cases = {  # command -> (scenario, first line, exit status), from nvidia-smi's documented messages and codes
        "nvidia-smi -q -d BOGUS": ("busy-training", "Invalid combination of input arguments.", 2),
        "nvidia-smi -i 9 --query-gpu=index --format=csv": ("busy-training", "No devices were found", 6),
        "nvidia-smi --query-gpu=index --format=csv,noheader": ("gpu-lost@40", "Unable to determine the device handle", 15),
        "nvidia-smi": ("driver-not-loaded", "NVIDIA-SMI has failed because it couldn't communicate", 9),
        "nvidia-smi -L": ("no-gpu", "NVIDIA-SMI couldn't find libnvidia-ml.so", 12),
    }
    for command, (spec, first, status) in cases.items():
        lines = play(spec, f"{command}; echo exit=$?", cwd).splitlines()
        assert lines[0].startswith(first) and lines[-1] == f"exit={status}", (command, lines)


def test_the_stand_in_knows_only_fields_the_real_tool_lists():
    """Once a real nvidia-smi's field list is recorded (authors/index/01_nvidia_smi_help), the stand-in must not
    accept a field the real tool would refuse."""
    from handbook import gpusim
    from handbook.harness import shell_blocks
    from handbook.gpusim import nvidia_smi

    recorded = shell_blocks.nvidia_smi_help()
    if recorded is None:
        pytest.skip("no recording of nvidia-smi --help-query-gpu yet (snippets/authors/index/01_nvidia_smi_help.py)")
    real = set(recorded[0]["query_gpu_fields"])
    ours = set(nvidia_smi.fields(gpusim.simulated_module("healthy-idle", banner=False)))
    assert not ours - real, f"fields the stand-in plays that a real nvidia-smi does not list: {sorted(ours - real)}"


# Lines of the health check whose verdict depends on where it runs (host or container), detected from the
# machine: a shown output with one of them is only reproducible, and only right for the reader, if the command
# names the place with --where.
WHERE_DEPENDENT = ("), host:", "), container:", "no such process exists", "not visible here",
                   "held by no process NVML lists", "no process visible from this container")


def test_a_verdict_that_depends_on_host_or_container_says_which():
    unstated = [f"{page.name}:{line}: `{command}`" for page, line, _, _, steps, _, _ in SIMULATED
                for command, shown in steps
                if "01_gpu_health.py" in command and "--where" not in command
                and any(phrase in shown for phrase in WHERE_DEPENDENT)]
    assert not unstated, ("these outputs differ on a host and in a container; add --where host or --where container:\n"
                          + "\n".join(unstated))


def test_every_runbook_has_a_simulated_example():
    runbooks = [p for p in PAGES if p.stem not in ("index", "drills", "evidence", "symptoms")]
    without = [p.name for p in runbooks if not any(e[0] == p for e in SIMULATED)]
    assert not without, f"runbooks whose triage output is not proven on a scenario: {without}"


def write() -> None:
    import tempfile

    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for _, spec, lang, steps, (start, end), indent in reversed(list(examples(page))):
            if not spec:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                cwd = workdir(Path(tmp))
                body = []
                for command, _ in steps:
                    body.append(f"$ {command}")
                    body += play(spec, command, cwd).splitlines()
            text = text[:start] + "".join(f"{indent}{line}\n" if line else "\n" for line in body) + text[end:]
        page.write_text(text, encoding="utf-8")
        print(f"refreshed {page.relative_to(ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python checks/test_troubleshooting_commands.py --write")
    write()
