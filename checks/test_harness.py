"""The harness itself: planted pages in a scratch copy of the project, checked by a real pytest run."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = "```"


@pytest.fixture
def project(tmp_path):
    """A minimal handbook: the real conftest.py and pyproject.toml, empty docs/ and snippets/."""
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "docs").mkdir()
    (tmp_path / "snippets").mkdir()
    return tmp_path


def write(project: Path, rel: str, text: str) -> Path:
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).replace("'''", FENCE))
    return path


def run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "HANDBOOK_GPU_RUNNER"} | env
    return subprocess.run([sys.executable, "-m", "pytest", "-n0", *args], cwd=project, env=environ,
                          capture_output=True, text=True, timeout=120)


def gpu_here() -> bool:
    from handbook.harness import requirements

    return requirements.detect().gpus > 0


def test_failing_block_points_at_page_and_line(project):
    write(project, "docs/guide.md", """\
        # Guide

        '''python
        x = 1
        '''

        Prose.

        '''python
        y = 1
        y = y / 0
        '''
        """)
    result = run(project, "docs/guide.md")
    assert result.returncode == 1
    assert "docs/guide.md:9: ZeroDivisionError: division by zero" in result.stdout
    assert 'File "docs/guide.md", line 11' in result.stdout  # the traceback is in the page's own lines
    assert "docs/guide.md  ran 1  skipped 0  failed 1  notest 0" in result.stdout


def test_failing_snippet_points_at_page_and_snippet_line(project):
    write(project, "snippets/part/page/01_prog.py", """\
        def main():
            raise RuntimeError("broken on purpose")


        if __name__ == "__main__":
            main()
        """)
    write(project, "docs/part/page.md", """\
        # Page

        '''python
        --8<-- "part/page/01_prog.py"
        '''
        """)
    result = run(project, "docs/part/page.md")
    assert result.returncode == 1
    assert "docs/part/page.md:3: RuntimeError: broken on purpose" in result.stdout
    assert "the block runs snippets/part/page/01_prog.py" in result.stdout
    assert 'File "snippets/part/page/01_prog.py", line 2, in main' in result.stdout


def test_blocks_in_admonitions_tabs_and_details_run(project):
    write(project, "docs/nested.md", """\
        # Nested

        !!! note "Admonition"

            '''python
            print("admonition")
            '''

        === "Tab A"

            '''python
            print("tab")
            '''

        ??? tip "Details"

            ??? note "Details inside details"

                '''python
                value = 2
                '''

            '''python continuation
            assert value == 2
            '''

        '''python notest
        this is shown, never run
        '''
        """)
    result = run(project, "docs/nested.md")
    assert result.returncode == 0, result.stdout
    assert "docs/nested.md  ran 4  skipped 0  failed 0  notest 1" in result.stdout


@pytest.mark.skipif(gpu_here(), reason="checks the behaviour of a machine without a GPU")
def test_requires_gpu_skips_with_reason_and_fails_in_gpu_runner_mode(project):
    write(project, "docs/gpu.md", """\
        # GPU

        '''python requires="gpu"
        import torch
        assert torch.cuda.is_available()
        '''
        """)
    plain = run(project, "docs/gpu.md")
    assert plain.returncode == 0
    assert "skipped 1: requires gpu (this machine: no GPU" in plain.stdout
    for runner in (run(project, "--gpu-runner", "docs/gpu.md"), run(project, "docs/gpu.md", HANDBOOK_GPU_RUNNER="1")):
        assert runner.returncode == 1
        assert "docs/gpu.md:3: GPU-runner mode, but this block requires gpu" in runner.stdout


@pytest.mark.parametrize("fence, message", [
    ('python requiers="gpu"', "docs/bad.md:3: unknown fence option 'requiers=gpu' on a python block; did you mean "
                              "'requires=\"...\"'? (options here: requires=\"...\", timeout=N, sim=\"SCENARIO\", "
                              "record, notest, continuation, fixture:NAME, fold,"),
    ("python recrod", "docs/bad.md:3: unknown fence option 'recrod' on a python block; did you mean 'record'?"),
    ("python timeout", "did you mean 'timeout=N'?"),
    ('python requires="gpu mem>=forty"', "docs/bad.md:3: malformed requirement 'mem>=forty'"),
    ('python requires="gpus>=0"', "docs/bad.md:3: malformed requirement 'gpus>=0'"),
    ("python timeout=soon", "docs/bad.md:3: timeout='soon' must be a whole number of seconds"),
    ('bash record', "docs/bad.md:3: unknown fence option 'record' on a bash block; record applies to python fences"),
    ('python title="unclosed', "docs/bad.md:3: cannot read fence options"),
])
def test_bad_fence_options_fail_collection_naming_the_line(project, fence, message):
    write(project, "docs/bad.md", f"# Bad\n\n'''{fence}\nprint(1)\n'''\n")
    result = run(project, "docs/bad.md")
    assert result.returncode != 0
    assert message in result.stdout
    assert "docs/bad.md  NOT COLLECTED" in result.stdout


def test_missing_snippet_or_section_is_an_error(project):
    write(project, "snippets/s/p/01_a.py", "print('a')\n")
    write(project, "docs/inc.md", """\
        # Includes

        '''python
        --8<-- "s/p/01_a.py:nosuchsection"
        '''
        """)
    result = run(project, "docs/inc.md")
    assert 'docs/inc.md:4: section "nosuchsection" of "s/p/01_a.py" needs' in result.stdout


@pytest.mark.parametrize("include, message", [
    ('--8<-- "s/p/01_a.py', "docs/inc.md:4: garbled include '--8<-- \"s/p/01_a.py': write --8<-- \"path/to/file.py\""),
    ("--8<-- s/p/01_a.py", "docs/inc.md:4: garbled include"),
    ('--8<-- "s/p/01_a.py:1:3"', "docs/inc.md:4: include 's/p/01_a.py:1:3' names lines"),
])
def test_a_garbled_include_or_a_line_range_names_its_line(project, include, message):
    write(project, "snippets/s/p/01_a.py", "print('a')\n")
    write(project, "docs/inc.md", f"# Includes\n\n'''python\n{include}\n'''\n")
    result = run(project, "docs/inc.md")
    assert result.returncode != 0 and message in result.stdout, result.stdout


def test_single_quoted_includes_run_like_double_quoted_ones(project):
    write(project, "snippets/s/p/01_a.py", "print('from the snippet')\n")
    write(project, "docs/inc.md", "# Includes\n\n'''python\n--8<-- 's/p/01_a.py'\n'''\n")
    result = run(project, "docs/inc.md", "-s")
    assert result.returncode == 0 and "from the snippet" in result.stdout, result.stdout


def test_the_page_checks_item_names_each_problem_with_its_line(project):
    """`pytest docs/PAGE.md` checks more than blocks: a dangling figure reference, a typed figure, a broken link or
    anchor, and a line the site would drop each fail the page's page-checks item with page:line."""
    write(project, "docs/other.md", "# Other\n\n## Real heading\n")
    write(project, "docs/page.md", """\
        # Page

        It ran at {{ rec:01_nothing:result.json/x }} on the card.

        The copy reached 3.9 TB/s on our machine.

        See [the other page](other.md#no-such-heading), [a real one](other.md#real-heading) and [gone](gone.md).

        Mark it with # --8<-- [start:x] in the file.
        """)
    result = run(project, "docs/page.md")
    out = result.stdout
    assert result.returncode == 1, out
    assert "docs/page.md:3: {{ rec:01_nothing:result.json/x }}" in out
    assert "docs/page.md:5: " in out and "3.9 TB/s" in out
    assert "docs/page.md:7: link to other.md#no-such-heading: docs/other.md has no heading" in out
    assert "docs/page.md:7: link to gone.md: no such page" in out
    assert "other.md#real-heading:" not in out
    assert "docs/page.md:9: the site drops this line" in out


def test_markdown_docs_flag_does_not_collect_blocks_twice(project):
    write(project, "docs/once.md", "# Once\n\n'''python\nprint('hello')\n'''\n")
    plain, flagged = run(project, "docs/once.md"), run(project, "docs/once.md", "--markdown-docs")
    assert "2 passed" in plain.stdout and "2 passed" in flagged.stdout, flagged.stdout


def test_notebook_cells_are_items_that_fail_in_plain_text_and_never_touch_the_file(project):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# N"), nbformat.v4.new_code_cell("x = 6 * 7"),
        nbformat.v4.new_code_cell("def f():\n    return x / 0\nf()"), nbformat.v4.new_code_cell("print(x)")])
    path = project / "docs" / "n.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    result = run(project, "docs/n.ipynb", "-rA")
    out = result.stdout
    assert result.returncode == 1, out
    assert "PASSED docs/n.ipynb::cell2" in out and "not run: cell 3 failed" in out
    assert "docs/n.ipynb:cell3: ZeroDivisionError: division by zero" in out
    assert 'File "n.ipynb:cell3", line 2, in f\n    return x / 0' in out
    assert "\x1b[" not in out  # no ANSI colour codes
    assert path.read_bytes() == before


def test_per_block_timeout_turns_a_hang_into_a_failure(project):
    write(project, "docs/slow.md", """\
        # Slow

        '''python timeout=1
        import time
        time.sleep(30)
        '''
        """)
    result = run(project, "docs/slow.md")
    assert result.returncode == 1
    assert "docs/slow.md:3: Failed: Timeout" in result.stdout


def test_section_include_runs_the_section_with_snippet_line_numbers(project):
    write(project, "snippets/s/p/01_b.py", """\
        import math

        # --8<-- [start:core]
        def area(r):
            return math.pi * r * r
        assert area(1) == math.pi
        raise ValueError("line 7 of the snippet")
        # --8<-- [end:core]
        """)
    write(project, "docs/sec.md", """\
        # Section

        '''python
        import math
        '''

        '''python
        --8<-- "s/p/01_b.py:core"
        '''
        """)
    result = run(project, "docs/sec.md")
    # The section runs without the lines above it (`math` is not imported there): a NameError at snippet line 6.
    assert 'File "snippets/s/p/01_b.py", line 6' in result.stdout
    assert "NameError: name 'math' is not defined" in result.stdout


def test_a_block_runs_as_main_in_a_scratch_directory(project):
    write(project, "docs/main.md", """\
        # Main

        '''python
        import os, sys
        assert __name__ == "__main__" and sys.modules["__main__"].__dict__ is globals()
        open("left-behind.txt", "w").write("x")
        print("cwd", os.getcwd())
        '''
        """)
    result = run(project, "docs/main.md", "-s")
    assert result.returncode == 0, result.stdout
    assert not (project / "left-behind.txt").exists()


def test_file_is_the_snippet_for_a_snippet_block_and_never_the_page(project):
    write(project, "snippets/s/p/01_where.py", "print('file', __file__)\n")
    write(project, "docs/where.md", """\
        # Where

        '''python
        --8<-- "s/p/01_where.py"
        '''

        '''python
        import os
        assert not __file__.endswith(".md"), __file__
        open(os.path.join(os.path.dirname(__file__), "out.txt"), "w").write("x")
        '''
        """)
    result = run(project, "docs/where.md", "-s")
    assert result.returncode == 0, result.stdout
    assert f"file {project / 'snippets/s/p/01_where.py'}" in result.stdout
    assert not any(p.name == "out.txt" for p in (project / "docs").rglob("*")), "a block wrote into docs/"


def test_fence_forms_superfences_accepts_are_collected(project):
    """The brace form and tilde fences run like the plain form (they once raised a KeyError during collection)."""
    write(project, "docs/forms.md", """\
        # Forms

        '''{.python timeout=30}
        print("brace")
        '''

        ~~~python
        print("tilde")
        ~~~

        ````python
        print("four backticks")
        ````
        """)
    result = run(project, "docs/forms.md")
    assert result.returncode == 0, result.stdout
    assert "docs/forms.md  ran 3  skipped 0  failed 0" in result.stdout


def test_auto_starts_three_workers_per_two_cores_and_none_for_one_page(monkeypatch):
    from handbook.harness import plugin

    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)

    class Config:
        def __init__(self, *args):
            self.args = list(args)

    cores = os.cpu_count() or 1
    assert plugin.pytest_xdist_auto_num_workers(Config("docs/page.md")) == 0
    assert plugin.pytest_xdist_auto_num_workers(Config()) == max(1, 3 * cores // 2)
    assert plugin.pytest_xdist_auto_num_workers(Config("docs", "checks")) == max(1, 3 * cores // 2)
