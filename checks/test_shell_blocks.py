"""Shell fences: bash/sh pass shellcheck, `run` blocks execute, and nvidia-smi fields/sections exist for real."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handbook.harness import blocks, shell_blocks
from test_harness import gpu_here, project, run, write  # noqa: F401 - `project` is a fixture

ROOT = Path(__file__).resolve().parent.parent
PAGES = blocks.pages(ROOT / "docs")


def test_shellcheck_is_installed():
    assert shutil.which("shellcheck"), "install Debian's shellcheck: bash checks/install-system-deps.sh"


def test_every_bash_and_sh_fence_passes_shellcheck():
    problems = [p for page in PAGES for b in blocks.parse_page(page) if b.lang in ("bash", "sh")
                for p in shell_blocks.shellcheck(b)]
    assert not problems, "\n".join(problems)


def test_shellcheck_findings_point_at_the_page_line(tmp_path):
    page = tmp_path / "docs" / "s.md"
    page.parent.mkdir()
    page.write_text('# S\n\n```bash\nfor f in $(ls *.log); do\n  echo $f\ndone\n```\n')
    (block,) = blocks.parse_page(page, tmp_path)
    found = shell_blocks.shellcheck(block)
    assert any(p.startswith(f"{blocks.rel(page)}:5: SC2086") for p in found), found


def test_console_commands_join_continuations_and_skip_output():
    page = Path("docs/x.md")
    code = "$ nvidia-smi --query-gpu=name \\\n    --format=csv\nname\nNVIDIA H200\n$ echo done\ndone\n"
    block = blocks.Block(page, 10, 17, "console", {}, code=code)
    assert shell_blocks.console_commands(block) == [(11, "nvidia-smi --query-gpu=name \\\n    --format=csv"),
                                                    (15, "echo done")]


def test_run_blocks_execute_and_a_failing_command_fails_with_its_line(project):  # noqa: F811
    write(project, "snippets/part/page/hello.txt", "from the snippet folder\n")
    write(project, "docs/part/page.md", """\
        # Shell

        '''console run
        $ cat hello.txt
        from the snippet folder
        $ echo one \\
            two
        one two
        '''

        '''bash run timeout=20
        test "$(echo ok)" = ok
        '''

        '''console run
        $ true
        $ ls /no/such/dir
        '''

        '''console run requires="gpu"
        $ nvidia-smi
        '''

        '''console
        $ not run at all
        '''
        """)
    result = run(project, "docs/part/page.md")
    out = result.stdout
    assert result.returncode == 1, out
    assert "docs/part/page.md:15: `ls /no/such/dir  (line 17)` failed: exit status 2" in out
    expected = "ran 3  skipped 0  failed 1" if gpu_here() else "ran 2  skipped 1  failed 1"  # nvidia-smi runs on a GPU
    assert f"docs/part/page.md  {expected}" in out


def test_sim_puts_the_simulators_nvidia_smi_first_on_path():
    block = blocks.Block(Path("docs/x.md"), 3, 6, "console", {"run": True, "sim": "healthy-idle"}, code="$ nvidia-smi\n")
    env = shell_blocks.shell_env(block, {"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(shell_blocks.GPUSIM_BIN)
    assert env["HANDBOOK_GPUSIM"] == "healthy-idle"


FAKE_HELP = {  # the shape of nvidia-smi's help texts, as test input for the recorder's parser
    "--help-query-gpu": 'List of valid properties to query for the switch "--query-gpu=":\n\n"timestamp"\nThe '
                        'timestamp of the query.\n\n' + "".join(f'"{f}"\nSomething.\n\n' for f in (
                            "index", "uuid", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu",
                            "power.draw", "clocks.sm", "clocks.max.sm", "pstate", "ecc.mode.current", "fan.speed",
                            "pci.bus_id", "driver_version", "count", "serial", "vbios_version", "display_mode")) +
                        '"pcie.link.gen.current" or "pcie.link.gen.gpucurrent"\nPCIe generation.\n',
    "--help-query-compute-apps": '"pid"\nProcess id.\n\n"used_memory" or "used_gpu_memory"\nMemory.\n',
    "-h": "NVIDIA System Management Interface -- v580.00\n\n    -d,   --display=        Display only selected "
          "information: MEMORY,\n                           UTILIZATION, ECC, TEMPERATURE, POWER, CLOCK,\n"
          "                           PERFORMANCE, ROW_REMAPPER\n                           Flags can be combined "
          "with comma e.g. ECC,POWER.\n",
}


@pytest.fixture
def recorded_help(tmp_path):
    """The recorder snippet run against a fake nvidia-smi: what it would write on the GPU runner."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    cases = "\n".join(f"    {arg!r}: print({text!r}, end='')," for arg, text in FAKE_HELP.items())
    fake.write_text(f"#!{sys.executable}\nimport sys\n{{\n{cases}\n}}[sys.argv[1]]\n".replace(": print(", ": lambda: print(")
                    .replace("}[sys.argv[1]]", "}[sys.argv[1]]()"))
    fake.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, str(shell_blocks.HELP_SNIPPET)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    return json.loads((work / "nvidia_smi_help.json").read_text())


def test_the_recorder_snippet_reads_fields_and_sections(recorded_help):
    assert "utilization.gpu" in recorded_help["query_gpu_fields"]
    assert "pcie.link.gen.gpucurrent" in recorded_help["query_gpu_fields"]  # the alias too
    assert recorded_help["display_sections"] == sorted(["MEMORY", "UTILIZATION", "ECC", "TEMPERATURE", "POWER",
                                                        "CLOCK", "PERFORMANCE", "ROW_REMAPPER"])
    assert recorded_help["query_compute_apps_fields"] == ["pid", "used_memory", "used_gpu_memory"]


def test_a_misspelt_query_field_or_section_fails_with_page_line(tmp_path, recorded_help):
    page = tmp_path / "docs" / "smi.md"
    page.parent.mkdir()
    page.write_text("# smi\n\nRun `nvidia-smi --query-gpu=utilisation.gpu --format=csv` for one value.\n\n"
                    "```console\n$ nvidia-smi -q -d PERFORMANCE,TEMPERATURES\n$ nvidia-smi dmon -d 5\n```\n")
    problems = shell_blocks.check_nvidia_smi(page, recorded_help)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{blocks.rel(page)}:6: nvidia-smi -q -d 'TEMPERATURES' is not a section")
    assert problems[1].startswith(f"{blocks.rel(page)}:3: nvidia-smi --query-gpu field 'utilisation.gpu'")


# Every page's nvidia-smi commands are checked against the recorded lists by its page-checks item
# (handbook/harness/page_checks.py); test_a_misspelt_query_field_or_section_fails_with_page_line proves the check.


@pytest.mark.skipif(not (shell_blocks.GPUSIM_BIN / "nvidia-smi").exists(), reason="the simulator's nvidia-smi "
                    "stand-in (handbook/gpusim/bin/nvidia-smi) is not there yet")
def test_a_sim_block_runs_the_simulators_nvidia_smi(project):  # noqa: F811
    write(project, "docs/smi.md", """\
        # smi

        '''console run sim="thermal-throttle@200"
        $ nvidia-smi --query-gpu=name,temperature.gpu --format=csv,noheader
        '''

        '''console run sim="healthy-idle"
        $ nvidia-smi --query-gpu=temperature.core --format=csv
        '''
        """)
    result = run(project, "docs/smi.md", "-rA")
    assert "(simulated)" in result.stdout  # the first block's output, from the stand-in
    assert "docs/smi.md:7: `nvidia-smi --query-gpu=temperature.core --format=csv  (line 8)` failed" in result.stdout
    assert "docs/smi.md  ran 1  skipped 0  failed 1" in result.stdout
