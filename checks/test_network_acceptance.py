"""The network-acceptance page's judge of nccl-tests output (snippets/distributed/network-acceptance/
01_busbw_acceptance.py): a published run is accepted against its own fabric's published figure and rejected
against a faster one, wrong results fail whatever the speed, bad arguments are one line, and the page's table
states the same bands as the program."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "snippets" / "distributed/network-acceptance/01_busbw_acceptance.py"
FOLDER = PROGRAM.parent
PUBLISHED = (FOLDER / "nccl-tests-a100-hdr.txt").read_text()


@pytest.fixture
def judge(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("busbw_acceptance", PROGRAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(tmp_path)

    def run(text: str, *args: str) -> int:
        (tmp_path / "run.txt").write_text(text)
        monkeypatch.setattr(sys, "argv", ["01_busbw_acceptance.py", str(tmp_path / "run.txt"), *args])
        try:
            return module.main()
        except SystemExit as exit_:
            return exit_.code
    run.module = module
    return run


def test_the_published_hdr_run_meets_its_own_band_and_not_a_faster_ones(judge, capsys):
    assert judge(PUBLISHED, "--fabric", "ib-hdr-200", "--nics", "4") == 0  # 95.7 of 96 GB/s (4 x 24)
    out = capsys.readouterr().out
    assert "ACCEPTED" in out and "under 1 GiB" in out
    assert judge(PUBLISHED, "--fabric", "ib-ndr-400", "--nics", "4") == 1  # the same numbers on 400G NICs
    assert "REJECTED" in capsys.readouterr().out


def test_a_wrong_result_fails_whatever_the_speed(judge, capsys):
    corrupted = PUBLISHED.replace("95.74      0   2660.4", "95.74      3   2660.4")
    assert corrupted != PUBLISHED
    assert judge(corrupted, "--fabric", "ib-hdr-200", "--nics", "4") == 1
    assert "corrupted" in capsys.readouterr().out


def test_rows_tagged_by_mpirun_are_read(judge):
    tagged = "\n".join(f"[0] {line.strip()}" if line.strip()[:1].isdigit() else line for line in PUBLISHED.splitlines())
    rows = judge.module.parse(tagged)
    assert len(rows) == 6 and rows[-1]["busbw_out"] == 95.74


@pytest.mark.parametrize("text, args, words", [
    (PUBLISHED, [], "--fabric is required"),
    (PUBLISHED, ["--fabric", "ib-hdr-200", "--nics", "0"], "--nics 0"),
    (PUBLISHED, ["--fabric", "nvlink4", "--nics", "8"], "only with the per-NIC fabrics"),
    (PUBLISHED, ["--fabric", "nvlink5"], "invalid choice: 'nvlink5'"),
    ("NCCL version 2.27.3\n", ["--fabric", "nvlink4"], "no all_reduce_perf result rows"),
])
def test_bad_input_is_one_line(judge, capsys, text, args, words):
    assert judge(text, *args) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and words in err[0], err


def test_the_page_states_the_programs_bands(judge):
    page = (ROOT / "docs/distributed/network-acceptance.md").read_text()
    for name, (_, figure, unit, source) in judge.module.BANDS.items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"the page's table has no row for {name}"
        assert re.search(rf"\b{figure:.0f} GB/s", row) and source in row, row
