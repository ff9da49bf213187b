"""The published site in a real browser: headless Chromium from Debian (/usr/bin/chromium, installed by
checks/install-system-deps.sh) driven by Playwright from PyPI. Nothing here downloads a browser: never run
`playwright install`.

Once per module, a scratch git repository releases two cohorts with `python -m handbook.release` (the real
command, --no-checks): a small older cohort, then the working tree; its gh-pages tree is served on 127.0.0.1.
Requests to other hosts are answered empty and recorded (there must be none: test_no_console_errors), so the checks
are offline.
Screenshots go to $HANDBOOK_ARTIFACTS (default: a pytest temporary directory).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from handbook.site import crawl
from site_builds import trim_docs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)  # whole-site builds, several per module; pyproject default is 120 s
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
OLD, NEW = "2026-q4", "2027-q1"
OLD_LAB = "labs/lab1.md"  # a page both cohorts have: the version selector switches between them
SEARCH_WORDS = {"Xid": "the monitoring pages", "busbw": "the Lab 3 / distributed pages"}
RECORDING = re.compile(r'class="(?:[^"]*\s)?recording(?:\s[^"]*)?"')
COPY_BUTTON = "button.md-code__button[data-md-type=copy], button.md-clipboard"


def run_release(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "handbook.release", *args], cwd=repo, env=crawl.git_env(),
                          capture_output=True, text=True, timeout=600)


def release(repo: Path, *args: str) -> str:
    proc = run_release(repo, *args)
    assert proc.returncode == 0, f"python -m handbook.release {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two cohorts released into a scratch repository and served over HTTP: the older one a small handbook of two
    pages (what the checks read of it: its home and the lab page the version selector switches to), the newer one
    the working tree."""
    tmp = tmp_path_factory.mktemp("browser-site")
    repo = crawl.copy_working_tree(ROOT, tmp / "handbook")
    full_docs, full_config = shutil.copytree(repo / "docs", tmp / "docs"), (repo / "mkdocs.yml").read_bytes()
    trim_docs(repo, {"index.md": f"# Cohort {OLD}\n\nThe [first lab]({OLD_LAB}).\n",
                     OLD_LAB: "# Lab 1\n\nThe lab as this cohort ran it.\n"})
    crawl.init_repo(repo, f"cohort {OLD}")
    release(repo, OLD, "--no-checks")
    shutil.rmtree(repo / "docs")
    shutil.copytree(full_docs, repo / "docs")
    (repo / "mkdocs.yml").write_bytes(full_config)
    crawl.commit_all(repo, f"cohort {NEW}")
    release(repo, NEW, "--no-checks")
    pages = crawl.export_branch(repo, "gh-pages", tmp / "gh-pages")
    with crawl.serve(pages) as base:
        found = crawl.crawl(base + f"{NEW}/")
        yield {"repo": repo, "dir": pages, "base": base, "crawl": found}


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps, as root)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (never run `playwright install`)",
                    pytrace=False)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tab:
    """A fresh browser context and page; records console errors, page errors and failed local requests."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base.rstrip("/"))
        self.external: set[str] = set()
        self.context.route(lambda url: not url.startswith(base), self._offline)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text} ({m.location})"))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} ({r.failure})"))

    def _offline(self, route):
        self.external.add(urllib.parse.urlsplit(route.request.url).netloc)
        route.fulfill(status=200, body="", content_type="text/css" if "css" in route.request.url else "text/plain")

    def goto(self, path: str):
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return self.page


@pytest.fixture
def tab(browser, site):
    t = Tab(browser, site["base"])
    yield t
    t.context.close()


def local(site, url: str) -> str:
    return url.removeprefix(site["base"])


def pages_matching(site, pattern) -> list[str]:
    return [local(site, u) for u, html in sorted(site["crawl"].html.items()) if re.search(pattern, html)]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    path = Path(os.environ.get("HANDBOOK_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- versions ------------------------------------------------------------------------------------------------

def test_root_and_latest_lead_to_the_newest_cohort(tab):
    page = tab.goto("")
    assert page.url == tab.base + f"{NEW}/"
    page = tab.goto("latest/")
    assert page.locator(".md-version__current").inner_text().strip() == NEW
    assert not tab.errors, tab.errors


def test_version_selector_lists_both_cohorts_and_switches(tab, site):
    lab = f"{NEW}/{OLD_LAB.removesuffix('.md')}/"
    assert lab in pages_matching(site, ""), f"{lab} is not a page of cohort {NEW}"
    page = tab.goto(lab)
    current = page.locator(".md-version__current")
    assert current.inner_text().strip() == NEW
    assert [t.strip() for t in page.locator(".md-version__link").all_inner_texts()] == [NEW, OLD]
    current.hover(force=True)
    page.locator(".md-version__link", has_text=OLD).click()
    page.wait_for_url(f"**/{OLD}/**")
    # the same page in the other cohort, not just its home
    assert page.url == tab.base + lab.replace(f"{NEW}/", f"{OLD}/", 1)
    assert page.locator(".md-version__current").inner_text().strip() == OLD
    assert not tab.errors, tab.errors


def test_retired_banner_only_on_retired_cohorts(browser, site):
    repo, served = site["repo"], site["dir"] / "versions.json"
    original = served.read_bytes()

    def banner(version: str) -> bool:
        t = Tab(browser, site["base"])  # a new context: fresh cache and sessionStorage
        try:
            t.goto(f"{version}/")
            box = t.page.locator("[data-md-component=outdated]")
            visible = box.is_visible()
            assert not visible or "retired cohort" in box.inner_text()
            assert not t.errors, t.errors
            return visible
        finally:
            t.context.close()

    # Material alone would show it on every version but `latest`; the handbook shows it on retired ones only.
    assert not banner(OLD) and not banner(NEW)
    try:
        release(repo, OLD, "--retire")
        served.write_text(crawl.run_git(repo, "show", "gh-pages:versions.json"))
        assert banner(OLD) and not banner(NEW)
    finally:
        release(repo, OLD, "--unretire")
        served.write_bytes(original)


# ---- reading -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("word", sorted(SEARCH_WORDS))
def test_search_finds(tab, site, word):
    index = (site["dir"] / NEW / "search" / "search_index.json").read_text(encoding="utf-8")
    assert re.search(rf"\b{re.escape(word)}\b", index, re.IGNORECASE), f"{word!r} is on no page: expected on {SEARCH_WORDS[word]}"
    page = tab.goto(f"{NEW}/")
    box = page.locator("input.md-search__input")
    box.click()
    box.press_sequentially(word)
    results = page.locator(".md-search-result__item")
    results.first.wait_for()
    meta = page.locator(".md-search-result__meta").inner_text()
    assert re.match(r"\d+ matching document", meta), meta
    # the first hit is a page of this cohort that really contains the word
    href = results.first.locator("a").first.get_attribute("href")
    target = urllib.parse.urljoin(page.url, href).split("#")[0].split("?")[0]
    assert target.startswith(tab.base + f"{NEW}/"), target
    html = site["crawl"].html.get(target, "")
    assert word.lower() in html.lower(), f"search hit {target} does not contain {word!r}"
    assert not tab.errors, tab.errors


def test_copy_button_copies_the_exact_code(tab, site):
    with_code = pages_matching(site, r'<div class="[^"]*\bhighlight\b')
    assert with_code, "no page with a code block: the copy button cannot be checked"
    page = tab.goto(with_code[0])
    block = page.locator("div.highlight").filter(has=page.locator("pre > code")).first
    code = block.locator("pre > code").evaluate("e => e.textContent")
    block.hover()
    button = block.locator(COPY_BUTTON)
    assert button.count() == 1, f"no copy button on the first code block of {with_code[0]}"
    page.evaluate("navigator.clipboard.writeText('clipboard before the click')")
    button.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.rstrip("\n") == code.rstrip("\n") and copied.strip(), (copied[:200], code[:200])
    assert "Copied to clipboard" in page.locator(".md-dialog").inner_text()
    assert not tab.errors, tab.errors


def test_recorded_demo_shows_provenance_and_chart(tab, site):
    recorded = pages_matching(site, RECORDING)
    if not recorded:
        pytest.skip('no page contains class="recording" yet: recordings are not published (see handbook/recordings/recorder.py)')
    recorded = [p for p in recorded if "/labs/" in p][:2] + [p for p in recorded if "/labs/" not in p][:1]  # a sample
    charts = 0
    for path in recorded:
        page = tab.goto(path)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # solutions fold recordings away
        boxes = page.locator(".recording")
        assert boxes.count() >= 1, path
        for i in range(boxes.count()):
            box = boxes.nth(i)
            box.scroll_into_view_if_needed()
            assert box.is_visible()
            lines = [t.strip() for t in box.locator("p").all_inner_texts()]
            assert any(t.startswith("Recorded on") for t in lines), f"{path}: recording #{i} has no provenance line: {lines}"
            for img in box.locator("img").all():
                img.scroll_into_view_if_needed()
                size = img.evaluate("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])")
                assert size[0] > 0 and size[1] > 0, f"{path}: a chart of recording #{i} does not load"
                charts += 1
    assert charts, f"none of the recordings on {recorded} shows a chart (<img>)"
    assert not tab.errors, tab.errors


def test_no_console_errors(tab, site):
    paths = {f"{NEW}/", f"{NEW}/release-notes/", f"{OLD}/"}
    paths |= set(pages_matching(site, RECORDING)[:1]) | set(pages_matching(site, r'class="[^"]*\bhighlight\b')[:1])
    paths |= {p for p in pages_matching(site, "") if "/labs/" in p}
    for path in sorted(paths):
        tab.goto(path)
    assert not tab.errors, "\n".join(tab.errors)
    # everything is served by the site itself: no web fonts, no repository facts (the site works offline)
    assert not tab.external, tab.external


def test_every_internal_link_resolves(site):
    found, base = site["crawl"], site["base"]
    assert len(found.pages) >= 10, f"only {len(found.pages)} pages crawled from {base}{NEW}/"
    notes = crawl.crawl(base + f"{NEW}/release-notes/")
    broken = found.broken + notes.broken
    assert not broken, f"{len(broken)} broken internal link(s) in cohort {NEW}:\n" + "\n".join(broken)
    for path in ("", "versions.json", "latest/", f"{OLD}/", f"{NEW}/release-manifest.json"):
        assert crawl._fetch(base + path)[0] == 200, path
    versions = json.loads((site["dir"] / "versions.json").read_text())
    assert [v["version"] for v in versions] == [NEW, OLD]


def test_screenshots(tab, site, artifacts):
    lab = next((p for p in pages_matching(site, "") if "/labs/lab" in p), None)
    assert lab, "no lab page found in the site"
    for name, path in (("home", f"{NEW}/"), ("lab", lab)):
        out = artifacts / f"{name}.png"
        tab.goto(path).screenshot(path=str(out), full_page=True)
        assert out.stat().st_size > 10_000, out
