"""Internal links and anchors: the working tree builds with `mkdocs build --strict` (a broken link between pages
fails it), and a crawl of the built site, served on 127.0.0.1, finds every link, image, stylesheet and script
(HTTP 200) and every #anchor (an element with that id on the target page). MkDocs leaves anchors unchecked at
its default `validation.anchors: info`, so the crawl is what catches a heading renamed under a link.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handbook import site_crawl

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    site = tmp_path_factory.mktemp("links") / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=600)
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("WARNING", "ERROR"))]
    return proc, problems, site


def test_strict_build(built):
    proc, problems, _ = built
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems or proc.stderr.splitlines()[-30:])


def test_internal_links_and_anchors(built):
    proc, _, site = built
    if proc.returncode != 0:
        pytest.skip("the strict build failed (see test_strict_build)")
    with site_crawl.serve(site) as base:
        crawl = site_crawl.crawl(base)
    nav = site_crawl.nav_pages(site_crawl.load_mkdocs_yml(ROOT).get("nav", []))
    assert len(crawl.pages) >= len(nav), f"crawled {len(crawl.pages)} pages, the nav has {len(nav)}"
    broken = crawl.broken
    assert not broken, f"{len(broken)} broken internal link(s):\n" + "\n".join(broken)


def test_crawler_catches_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "index.html").write_text('<h1 id="top">x</h1><a href="gone/">gone</a> <a href="#nowhere">a</a>'
                                         '<a href="#top">ok</a><img src="img.png"><a href="other.html#here">o</a>')
    (tmp_path / "other.html").write_text('<p id="elsewhere">no anchor "here"</p>')
    with site_crawl.serve(tmp_path) as base:
        broken = site_crawl.crawl(base).broken
    assert len(broken) == 4, broken
    assert any("gone/ -> HTTP 404" in b for b in broken) and any("img.png -> HTTP 404" in b for b in broken)
    assert any("'nowhere'" in b for b in broken) and any("'here'" in b for b in broken)
