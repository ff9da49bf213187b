"""The built site: a strict build, HTML in which every fence rendered as code and every include expanded, and a
crawl, on 127.0.0.1, that finds every internal link, image, stylesheet and script (HTTP 200) and every #anchor.
MkDocs leaves anchors unchecked at its default `validation.anchors: info`, so the crawl is what catches a heading
renamed under a link."""
import html
import re
from pathlib import Path

import pytest

from handbook.site import leaks, crawl

ROOT = Path(__file__).resolve().parent.parent
PRE = re.compile(r"<pre\b.*?</pre>", re.S)
TAG = re.compile(r"<[^>]+>")


@pytest.fixture(scope="module")
def site(learner_site) -> Path:
    return learner_site  # checks/conftest.py: one strict build of mkdocs.yml, shared with test_editions.py


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("index.html") if "assets" not in p.parts and p.parent.name != "404")


def code_blocks(page_html: str):
    """(language, text) of each highlighted code block."""
    for m in re.finditer(r'<div class="language-(?P<lang>[\w-]+) highlight">(?P<body>.*?)</pre>', page_html, re.S):
        yield m["lang"], html.unescape(TAG.sub("", m["body"]))


def test_no_fence_rendered_as_plain_text(site):
    """A fence whose header superfences cannot read becomes a paragraph or an unhighlighted block."""
    for page in pages(site):
        text = page.read_text()
        outside = PRE.sub("", text)
        broken = [m for m in re.findall(r"<code>([^<]*)</code>", outside) if "\n" in m]  # inline code spanning lines
        assert not broken, f"{page.relative_to(site)}: a fence rendered as inline code: {broken[0][:80]!r}"
        assert "```" not in outside, f"{page.relative_to(site)}: a literal ``` outside code blocks"
        for lang, body in code_blocks(text):
            if lang not in ("markdown", "md", "text"):
                assert not re.search(r"^\s*(```|~~~)", body, re.M), f"{page.relative_to(site)}: a fence inside a {lang} block"


def test_no_raw_include_left(site):
    for page in pages(site):
        for lang, body in code_blocks(page.read_text()):
            if lang != "markdown":
                assert not re.search(r"^\s*-+8<-+\s+\"", body, re.M), f"{page.relative_to(site)}: an unexpanded --8<-- include"


def test_harness_options_are_not_shown_and_snippets_are_titled(site):
    text = (site / "fundamentals/compute/index.html").read_text()
    assert '<span class="filename">01_matmul_throughput.py</span>' in text
    assert "02_busy_vs_utilized.py · requires gpu cc&gt;=9.0" in text
    assert "record" not in re.findall(r'<span class="filename">([^<]*)</span>', text)[0]


def test_recorded_blocks_show_output_provenance_and_chart(site):
    text = (site / "fundamentals/compute/index.html").read_text()
    recording = text[text.index('class="admonition example recording"'):]
    assert re.search(r"Recorded on NVIDIA H\d00.*? · driver [\d.]+ · CUDA [\d.]+ · torch [\w.+]+ · Python [\d.]+ · "
                     r"\d{4}-\d\d-\d\d · commit [0-9a-f]{10}", recording)
    assert "TFLOP/s (median)" in recording
    # the chart: a cached file (handbook/site/a11y_hook.py), its data in words and as a table (handbook/recordings/charts.py)
    assert re.search(r'<img class="recording-chart" src="\.\./\.\./assets/recorded/[0-9a-f]{20}\.svg" '
                     r'alt="Chart: Matmul throughput, NVIDIA H\d00\. [^"]*TFLOP/s at matrix size n = ', recording)
    assert "data:image/" not in text and "Chart data: Matmul throughput" in recording


def test_demos_index_lists_every_recording(site):
    text = (site / "demos/index.html").read_text()
    solutions = leaks.solution_snippets()  # recorded lab solutions show in the instructor edition only
    for rec in ROOT.glob("snippets/**/*.rec.json"):
        if rec.with_name(rec.name.replace(".rec.json", ".py")) in solutions:
            assert f"<code>{rec.name.replace('.rec.json', '.py')}</code>" not in text
            continue
        assert f"<code>{rec.name.replace('.rec.json', '.py')}</code>" in text


def test_internal_links_and_anchors(site):
    with crawl.serve(site) as base:
        found = crawl.crawl(base)
    nav = crawl.nav_pages(crawl.load_mkdocs_yml(ROOT).get("nav", []))
    assert len(found.pages) >= len(nav), f"crawled {len(found.pages)} pages, the nav has {len(nav)}"
    assert not found.broken, f"{len(found.broken)} broken internal link(s):\n" + "\n".join(found.broken)


def test_crawler_catches_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "index.html").write_text('<h1 id="top">x</h1><a href="gone/">gone</a> <a href="#nowhere">a</a>'
                                         '<a href="#top">ok</a><img src="img.png"><a href="other.html#here">o</a>')
    (tmp_path / "other.html").write_text('<p id="elsewhere">no anchor "here"</p>')
    with crawl.serve(tmp_path) as base:
        broken = crawl.crawl(base).broken
    assert len(broken) == 4, broken
    assert any("gone/ -> HTTP 404" in b for b in broken) and any("img.png -> HTTP 404" in b for b in broken)
    assert any("'nowhere'" in b for b in broken) and any("'here'" in b for b in broken)
