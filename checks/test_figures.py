"""Measured figures are rendered from recordings, never typed: references resolve, the typed-figure check finds what
it must and passes what it may, a changed recording changes the built page, and waiting recordings say so."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from handbook import DOCS, ROOT, SNIPPETS, recordings
from handbook.harness import blocks
from handbook.recordings import figures, typed_figures
from handbook.site import hooks

PAGES = blocks.checked_pages()  # the learner's pages and the instructor edition's


# Every page's figure references and typed figures are checked by its own page-checks item (handbook/harness/page_checks.py),
# in the author's loop and in the full suite alike; the tests below prove the two checks themselves.


def test_every_recording_has_a_headline_that_resolves():
    headlines = hooks.load_headlines(DOCS)
    for page in PAGES:
        for block in blocks.parse_page(page):
            if block.recorded and recordings.state(block.snippet.path).data:
                key = block.snippet.path.relative_to(SNIPPETS).with_suffix("").as_posix()
                assert hooks.render_headline(headlines, key, DOCS, SNIPPETS)


# ---- the typed-figure check on planted pages ---------------------------------------------------------------

def planted(tmp_path, text: str) -> list[str]:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text))
    return [f"{f.line}:{f.figure}" for f in typed_figures.findings(page)]


def test_a_planted_typed_figure_is_found_with_its_line(tmp_path):
    found = planted(tmp_path, """\
        # Copy bandwidth

        On our card the copy reached
        4.28 TB/s, and the matmul 749.9 TFLOP/s. The loop ran at 99 % utilization with a 126.9× speedup.
        """)
    assert found == ["4:4.28 TB/s", "4:749.9 TFLOP/s", "4:99 %", "4:126.9×"]


def test_bound_cited_threshold_and_waived_figures_pass(tmp_path):
    assert planted(tmp_path, """\
        The copy reached {{ rec:x:y.json/z | .2f }} TB/s on our card.
        NVLink 4 moves 450 GB/s per direction ([NVIDIA](https://www.nvidia.com/en-us/data-center/nvlink/)).
        Pass at ≥ 80 % and keep the step < 5 ms, or at least 90 % busy.
        A 100 ms step with 20 ms of data loading is a worked example. <!-- figure-ok: example input -->
        Code is not prose: `--target 90%` and

        ```text
        4.28 TB/s
        ```
        """) == []


def test_a_waiver_needs_a_reason_and_the_next_sentence_needs_its_own_citation(tmp_path):
    assert planted(tmp_path, """\
        A 100 ms step. <!-- figure-ok: -->

        The card has 4.8 TB/s ([datasheet](https://example.org/h200)). Ours reached 4.28 TB/s.
        """) == ["1:100 ms", "3:4.28 TB/s"]


def test_counts_are_not_speedups(tmp_path):
    assert planted(tmp_path, "Recorded on 2× H200 and 8 × H100 nodes.\n") == []


# ---- rendering, through a real MkDocs build of a scratch site ----------------------------------------------

SNIPPET = "import json\njson.dump({'bw': {'best': 4275.4}}, open('bw.json', 'w'))\n"
PAGE = """\
# Bandwidth

```python record
--8<-- "p/bw/01_copy.py"
```

The copy reached {{ rec:01_copy:bw.json/best/best_GBps | /1000 .2f }} TB/s on {{ rec:01_copy:card }}.
"""


@pytest.fixture
def scratch_site(tmp_path):
    (tmp_path / "docs/p").mkdir(parents=True)
    (tmp_path / "snippets/p/bw").mkdir(parents=True)
    snippet = tmp_path / "snippets/p/bw/01_copy.py"
    snippet.write_text(SNIPPET)
    (tmp_path / "docs/p/bw.md").write_text(PAGE.replace("/best/best_GBps", "/bw/best"))
    (tmp_path / "docs/index.md").write_text("# Home\n")
    recording = json.loads((ROOT / "snippets/fundamentals/memory/01_copy_bandwidth.rec.json").read_text())
    recording.update(snippet="p/bw/01_copy.py", code_sha256=recordings.code_sha256(snippet),
                     artifacts={"bw.json": {"json": {"bw": {"best": 4275.4}}}})
    recordings.write_atomic(recordings.path_for(snippet), recording)
    (tmp_path / "mkdocs.yml").write_text(textwrap.dedent(f"""\
        site_name: scratch
        strict: true
        hooks: [{ROOT / 'handbook/site/hooks.py'}]
        markdown_extensions: [admonition, attr_list, pymdownx.superfences]
        nav: [index.md, p/bw.md]
        """))
    return tmp_path


def build(site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q"], cwd=site,
                          capture_output=True, text=True, timeout=120)


def test_changing_a_recorded_value_changes_the_built_page(scratch_site):
    assert build(scratch_site).returncode == 0
    html = (scratch_site / "site/p/bw/index.html").read_text()
    assert ">4.28</span> TB/s on <span" in html and "NVIDIA H200" in html
    rec_path = scratch_site / "snippets/p/bw/01_copy.rec.json"
    data = json.loads(rec_path.read_text())
    data["artifacts"]["bw.json"]["json"]["bw"]["best"] = 3999.0
    rec_path.write_text(json.dumps(data))
    assert build(scratch_site).returncode == 0
    assert ">4.00</span> TB/s" in (scratch_site / "site/p/bw/index.html").read_text()


def test_a_missing_key_fails_the_strict_build_with_page_and_line(scratch_site):
    page = scratch_site / "docs/p/bw.md"
    page.write_text(PAGE)  # names bw.json/best/best_GBps, which the recording does not hold
    result = build(scratch_site)
    assert result.returncode != 0
    assert "docs/p/bw.md:7: figure reference" in result.stdout + result.stderr
    assert "no key 'best' in bw.json (it has: bw)" in result.stdout + result.stderr  # it names the keys there are


def test_a_figure_not_recorded_yet_is_pending_and_a_reference_nothing_records_fails(scratch_site):
    """Pending: the recording of a record block that has none yet, or a key the code wrote only after its recording
    went stale. Dangling: a snippet no record block shows, or a key a fresh recording lacks."""
    docs, snippets = scratch_site / "docs", scratch_site / "snippets"
    page = docs / "p/bw.md"
    rec = snippets / "p/bw/01_copy.rec.json"
    stale = json.loads(rec.read_text())
    rec.unlink()
    shown = figures.render(page.read_text(), page, docs, snippets)
    assert "⟨not recorded yet⟩</span> TB/s" in shown and "4.28" not in shown
    page.write_text(page.read_text().replace("```python record", "```python"))
    with pytest.raises(figures.FigureError, match=r"bw\.md:7: .*01_copy\.py is not shown by any `record` block"):
        figures.render(page.read_text(), page, docs, snippets)
    page.write_text(page.read_text().replace("```python\n", "```python record\n", 1))
    rec.write_text(json.dumps(dict(stale, code_sha256="older code")))
    new_key = page.read_text().replace("bw.json/bw/best", "bw.json/bw/newest")
    assert "⟨not recorded yet⟩" in figures.render(new_key, page, docs, snippets)


@pytest.mark.parametrize("spec, value, shown", [
    (".1f", 4.2754, "4.3"), ("/1000 .2f", 4275.4, "4.28"), ("*100 .0f", 0.931, "93"), (".1%", 0.7761, "77.6 %"),
    (",.0f", 651096.3, "651,096"), ("", "NVIDIA H200", "NVIDIA H200"), (".0f", "1,024", "1024"),
])
def test_format_specs(spec, value, shown):
    assert figures.render_value(value, spec) == shown


@pytest.mark.parametrize("spec, value", [(".1f", "fast"), ("/2", "fast"), ("q", 3.0)])
def test_a_spec_that_does_not_apply_says_so(spec, value):
    with pytest.raises(LookupError):
        figures.render_value(value, spec)


# ---- recordings awaiting a re-recording on more GPUs ---------------------------------------------------------

def test_awaiting_state_holds_for_exactly_the_marked_code(scratch_site):
    snippet = scratch_site / "snippets/p/bw/01_copy.py"
    with pytest.raises(recordings.RecordingError, match="matches its code"):
        recordings.mark_awaiting(snippet, 2, "needs 2 GPUs", gpus_here=1)
    snippet.write_text(SNIPPET + "# changed\n")
    with pytest.raises(recordings.RecordingError, match="--reason is empty"):
        recordings.mark_awaiting(snippet, 2, " ", gpus_here=1)
    with pytest.raises(recordings.RecordingError, match="re-record it instead"):
        recordings.mark_awaiting(snippet, 2, "needs 2 GPUs", gpus_here=2)
    recordings.mark_awaiting(snippet, 2, "the lent runner has 1 GPU", gpus_here=1)
    state = recordings.state(snippet)
    assert state.kind == "awaiting"
    assert state.awaiting_line == "recorded before this change, awaiting re-recording on 2 GPUs: the lent runner has 1 GPU"
    snippet.write_text(SNIPPET + "# changed twice\n")
    state = recordings.state(snippet)
    assert state.kind == "stale"
    assert "changed again since" in recordings.stale_message(snippet, "docs/p/bw.md", state.data)


def test_an_awaiting_recording_is_shown_as_such_on_its_page(scratch_site):
    snippet = scratch_site / "snippets/p/bw/01_copy.py"
    snippet.write_text(SNIPPET + "# changed\n")
    recordings.mark_awaiting(snippet, 4, "needs 4 GPUs", gpus_here=0)
    assert build(scratch_site).returncode == 0
    html = (scratch_site / "site/p/bw/index.html").read_text()
    assert "awaiting re-recording on 4 GPUs" in html and "needs 4 GPUs" in html
    assert "awaiting re-recording" in html.split(">4.28<")[0].rsplit("title=", 1)[1]  # the figure's own title says so


def test_a_recording_of_what_became_another_program_is_neither_shown_nor_quoted(scratch_site):
    docs, snippets = scratch_site / "docs", scratch_site / "snippets"
    page, snippet = docs / "p/bw.md", snippets / "p/bw/01_copy.py"
    snippet.write_text(snippet.read_text() + "# now another program\n")
    recordings.mark_awaiting(snippet, 1, "no runner", gpus_here=0, another_program=True)
    shown = figures.render(page.read_text(), page, docs, snippets)
    assert "4.28" not in shown and shown.count("⟨not recorded yet⟩") == 2
    block = blocks.parse_page(page, snippets)[0]
    notice = "\n".join(hooks.recording_markdown(block))
    assert "Not recorded since it changed" in notice and "4275" not in notice
    assert "recorded when it was another program" in recordings.state(snippet).awaiting_line


def test_the_recorder_refuses_an_awaiting_mark_without_a_gpu_count():
    result = subprocess.run([sys.executable, "-m", "handbook.record", "--await-gpus", "0", "docs/index.md", "--only", "a.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "1 or more" in result.stderr


def test_an_awaiting_mark_is_refused_where_the_gpus_are_here_and_fails_a_gpu_runner_that_has_them(tmp_path):
    snippet = tmp_path / "01_p.py"
    snippet.write_text("print(1)\n")
    recordings.write_atomic(recordings.path_for(snippet), {
        "schema": recordings.SCHEMA, "snippet": "01_p.py", "code_sha256": "old", "exit_status": 0, "wall_seconds": 1.0,
        "stdout": "1\n", "artifacts": {}, "provenance": {"date": "2026-01-01", "gpu_model": "NVIDIA H200"}})
    with pytest.raises(recordings.RecordingError, match="this machine has 1 GPU, enough for 1: re-record it instead"):
        recordings.mark_awaiting(snippet, 1, "no runner", gpus_here=1)
    recordings.mark_awaiting(snippet, 1, "the runner could not be started", gpus_here=0)
    assert recordings.state(snippet).awaiting_line == ("recorded before this change, awaiting re-recording on 1 GPU: "
                                                       "the runner could not be started")
