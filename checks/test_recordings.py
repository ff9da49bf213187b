"""Recordings stay honest: fresh for the code they show, from a real GPU, and written safely by the recorder."""
import json
import textwrap
import warnings

import pytest

from handbook import ROOT, SNIPPETS, recordings
from handbook.harness import blocks, requirements
from handbook.recordings import recorder

RECORDED = [b for page in blocks.checked_pages() for b in blocks.parse_page(page) if b.recorded]


@pytest.mark.parametrize("block", RECORDED, ids=lambda b: b.snippet.path.relative_to(SNIPPETS).as_posix())
def test_recording_matches_its_code(block, request):
    state = recordings.state(block.snippet.path)
    if state.kind == "missing":
        warnings.warn(f"{block.where}: not recorded yet ({block.snippet.path.name})")
        return
    if state.kind == "awaiting":  # allowed with its reason, and only while no machine with its GPUs runs the checks
        awaiting = state.data["awaiting"]
        assert awaiting["reason"].strip() and awaiting["gpus"] >= 1, f"{state.path.name}: awaiting needs a GPU count and a reason"
        here = requirements.detect().gpus
        assert not (request.config.getoption("gpu_runner") and here >= awaiting["gpus"]), (
            f"{state.path.name} awaits a re-recording on {recordings.gpu_count(awaiting['gpus'])} and this GPU runner has "
            f"{here}: re-record it now (python -m handbook.record {blocks.rel(block.page)} --only {block.snippet.path.name})")
        warnings.warn(f"{block.where}: {state.awaiting_line}")
        return
    assert state.kind == "fresh", recordings.stale_message(block.snippet.path, blocks.rel(block.page), state.data)


def test_committed_recordings_come_from_a_gpu_and_belong_to_a_record_block():
    owned = {recordings.path_for(b.snippet.path) for b in RECORDED}
    for path in SNIPPETS.rglob("*.rec.json"):
        data = recordings.load(path)
        assert data["provenance"]["gpu_model"], f"{path.relative_to(ROOT)} was recorded without a GPU (--allow-cpu): delete it"
        assert data["exit_status"] == 0, f"{path.relative_to(ROOT)} records a failed run"
        assert path in owned, f"{path.relative_to(ROOT)} belongs to no `record` block: delete it or mark the block"


# ---- the recorder, on a scratch page, without a GPU (--allow-cpu) ---------------------------------------------

PROGRAM = '''\
import json, sys
print("measured 42 units")
with open("result.json", "w") as f:
    json.dump({"value": 42, "chart": {"title": "t", "x": {"label": "n", "unit": ""}, "y": {"label": "v", "unit": "u"},
               "series": {"s": [[1, 2], [2, 4]]}}}, f)
'''


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "snippets/p/q").mkdir(parents=True)
    (tmp_path / "snippets/p/q/01_prog.py").write_text(PROGRAM)
    page = tmp_path / "docs/q.md"
    page.write_text(textwrap.dedent('''\
        # Q

        ```python record
        --8<-- "p/q/01_prog.py"
        ```
        '''))
    return tmp_path


def test_recorder_writes_output_artifacts_and_provenance(scratch):
    assert recorder.record_blocks([scratch / "docs/q.md"], allow_cpu=True, snippet_dir=scratch / "snippets") == 0
    snippet = scratch / "snippets/p/q/01_prog.py"
    data = recordings.load(recordings.path_for(snippet))
    assert data["stdout"] == "measured 42 units\n"
    assert data["exit_status"] == 0 and data["snippet"] == "p/q/01_prog.py"
    assert data["artifacts"]["result.json"]["json"]["value"] == 42
    assert data["code_sha256"] == recordings.code_sha256(snippet)
    for key in ("gpu_model", "gpu_count", "driver_version", "cuda_version", "torch_version", "python_version",
                "commit", "date", "command"):
        assert key in data["provenance"]
    assert recordings.state(snippet).kind == "fresh"


def test_one_edited_character_makes_a_recording_stale_and_rerecording_fixes_it(scratch):
    snippet = scratch / "snippets/p/q/01_prog.py"
    recorder.record_blocks([scratch / "docs/q.md"], allow_cpu=True, snippet_dir=scratch / "snippets")
    snippet.write_text(PROGRAM.replace("42 units", "43 units"))
    state = recordings.state(snippet)
    assert state.kind == "stale"
    message = recordings.stale_message(snippet, "docs/q.md", state.data)
    assert message.startswith("stale recording: 01_prog.rec.json no longer matches 01_prog.py (recorded")
    assert "python -m handbook.record docs/q.md --only 01_prog.py" in message
    recorder.record_blocks([scratch / "docs/q.md"], allow_cpu=True, snippet_dir=scratch / "snippets")
    assert recordings.state(snippet).kind == "fresh"


def test_a_failed_run_never_replaces_a_good_recording(scratch):
    snippet = scratch / "snippets/p/q/01_prog.py"
    recorder.record_blocks([scratch / "docs/q.md"], allow_cpu=True, snippet_dir=scratch / "snippets")
    good = recordings.path_for(snippet).read_bytes()
    snippet.write_text("raise SystemExit('the GPU fell off the bus')\n")
    assert recorder.record_blocks([scratch / "docs/q.md"], allow_cpu=True, snippet_dir=scratch / "snippets") == 1
    assert recordings.path_for(snippet).read_bytes() == good
    failed = json.loads(recordings.failed_path_for(snippet).read_text())
    assert failed["exit_status"] == 1 and "the GPU fell off the bus" in failed["stderr_tail"]


def test_the_recorder_refuses_to_record_without_a_gpu(scratch, monkeypatch):
    monkeypatch.setattr(recorder, "provenance", lambda command: {"gpu_model": None, "why_no_gpu": "NVML: not found"})
    with pytest.raises(SystemExit, match="no GPU here .* recordings come from real GPU runs"):
        recorder.record_blocks([scratch / "docs/q.md"], snippet_dir=scratch / "snippets")


def test_the_recorder_rejects_a_path_that_is_not_a_page(tmp_path, capsys):
    with pytest.raises(SystemExit):
        recorder.main([str(tmp_path / "nope.md")])
    assert "not a page" in capsys.readouterr().err


def test_an_unreadable_recording_names_the_file(tmp_path):
    bad = tmp_path / "01_x.rec.json"
    bad.write_text("{ half a recording")
    with pytest.raises(recordings.RecordingError, match=r"01_x.rec.json: unreadable recording"):
        recordings.load(bad)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "r.rec.json"
    target.write_text('{"old": true}')
    with pytest.raises(TypeError):
        recordings.write_atomic(target, {"not json": object()})
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["r.rec.json"]


def test_a_change_to_a_file_the_snippet_runs_makes_its_recording_stale(scratch):
    helper = scratch / "snippets/p/q/02_helper.py"
    helper.write_text("print('helper v1')\n")
    snippet = scratch / "snippets/p/q/01_prog.py"
    snippet.write_text(PROGRAM + "import runpy, pathlib\nrunpy.run_path(str(pathlib.Path(__file__).parent / '02_helper.py'))\n")
    recorder.record_blocks([scratch / "docs/q.md"], allow_cpu=True, snippet_dir=scratch / "snippets")
    assert recordings.load(recordings.path_for(snippet))["code_files"] == ["01_prog.py", "02_helper.py"]
    helper.write_text("print('helper v2')\n")
    assert recordings.state(snippet).kind == "stale"
    assert "no longer matches 01_prog.py + 02_helper.py" in recordings.stale_message(
        snippet, "docs/q.md", recordings.load(recordings.path_for(snippet)))
