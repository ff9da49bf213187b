"""Every learner can use the handbook (issue 31), and find every section (issue 21): in Debian's Chromium, offline,
on the shared strict builds of both editions (checks/conftest.py).

- WCAG 2.1 A/AA with axe-core (checks/a11y_audit.py): every page of the learner edition, and of the instructor
  edition the pages it adds and its home page; its other pages are the learner pages with the instructor edition's
  header and nav, which its own pages carry (test_instructor_edition_shows_the_learner_pages_unchanged proves the
  rest identical). Both palettes, by clicking the palette toggle on the loaded page.
- Offline: every request to another host is refused and named.
- Weight: each page's cold load <= 512 KiB gzip-equivalent (checks/bench/bench_weight.py prints the table).
- Keyboard: Tab through the home page, a lab and a runbook; every focused element visible with a focus ring;
  search results and notebook cells reachable.
- Navigation: every top-level entry of mkdocs.yml's nav visible at 1280 px, reachable from the menu at 390 px.
- Charts: every image states its data in words, every chart has its numbers as a table one click away.
"""
import re
from pathlib import Path

import pytest

import a11y_audit
from handbook.site import crawl

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)
LAB, RUNBOOK, NOTEBOOK = "labs/lab2/", "troubleshooting/oom/", "optimization/profiling/"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (never run `playwright install`)",
                    pytrace=False)
    with sync_playwright() as p:
        try:
            chromium = a11y_audit.launch(p)
        except RuntimeError as err:
            pytest.fail(str(err), pytrace=False)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def learner(learner_site):
    with crawl.serve(learner_site) as base:
        yield {"site": learner_site, "base": base}


@pytest.fixture(scope="module")
def instructor(instructor_site):
    with crawl.serve(instructor_site) as base:
        yield {"site": instructor_site, "base": base}


def instructor_pages(site: Path) -> list[str]:
    return [""] + [p for p in a11y_audit.site_pages(site) if p.startswith("instructor/")]


def audit_pass(browser, learner, instructor, half: int) -> dict:
    """One pass over half the learner pages (every other one: 0 or 1) and, with half 0, the instructor edition's
    own: {edition: [PageResult]} and the hosts asked for, by page. Two halves in two files, so that two workers
    share the browser's work (checks/test_a11y_other_half.py audits half 1)."""
    results, external, seen = {}, {}, None
    editions = [("learner", learner, a11y_audit.site_pages(learner["site"])[half::2])]
    if half == 0:
        editions.append(("instructor", instructor, instructor_pages(instructor["site"])))
    for name, served, pages in editions:
        auditor = a11y_audit.Auditor(browser, served["base"], served["site"])
        if seen is not None:
            auditor.seen = seen  # a colour context checked in one edition is not checked again in the other
        try:
            results[name] = [auditor.audit(page, name) for page in pages]
        finally:
            auditor.close()
        seen = auditor.seen
        external.update({host: f"{name} {page}" for host, page in auditor.external.items()})
    return {"results": results, "external": external}


@pytest.fixture(scope="module")
def audited(browser, learner, instructor):
    return audit_pass(browser, learner, instructor, half=0)


# ---- WCAG 2.1 AA, offline, weight -------------------------------------------------------------------------------

@pytest.mark.parametrize("edition", ["learner", "instructor"])
def test_every_page_meets_wcag21_aa_in_both_palettes(audited, edition):
    results = audited["results"][edition]
    assert len(results) >= (30 if edition == "learner" else 5), [r.path for r in results]
    problems = [p for r in results for p in r.problems]
    assert not problems, (f"axe-core {a11y_audit.axe_version()}: {len(problems)} WCAG 2.1 A/AA violation(s):\n"
                          + "\n".join(problems[:40]))


def test_no_page_asks_another_host(audited):
    assert not audited["external"], ("pages ask other hosts (an air-gapped cluster cannot answer): "
                                     + ", ".join(f"{h} (first by {p})" for h, p in audited["external"].items()))


def test_every_page_loads_within_the_weight_budget(audited):
    heavy = [f"{r.path or '(home)'}: {r.weight / 1024:.0f} KiB" for rs in audited["results"].values() for r in rs
             if r.weight > a11y_audit.BUDGET_BYTES]
    assert not heavy, f"cold loads over {a11y_audit.BUDGET_BYTES // 1024} KiB gzip-equivalent: {heavy}"
    # the weight is real: every page counts its HTML, Material's bundle and the search index it asks for
    for r in audited["results"]["learner"]:
        assert any(f.endswith(".min.js") for f in r.requested) and r.weight > 50_000, (r.path, sorted(r.requested))


def test_instructor_edition_shows_the_learner_pages_unchanged(learner, instructor):
    """The instructor edition's copy of each learner page has the same article: its content is audited once, in the
    learner edition, and its header and nav on the instructor edition's own pages."""
    article = re.compile(r'<article class="md-content__inner md-typeset">.*?</article>', re.S)
    differ = []
    for page in a11y_audit.site_pages(learner["site"]):
        if page == "" or page.endswith(".html"):
            continue
        mine = article.search((learner["site"] / page / "index.html").read_text(encoding="utf-8"))
        theirs = article.search((instructor["site"] / page / "index.html").read_text(encoding="utf-8"))
        if not mine or not theirs or " ".join(mine[0].split()) != " ".join(theirs[0].split()):
            differ.append(page)
    assert not differ, f"learner pages whose content differs in the instructor edition (audit them there too): {differ}"


def test_a_bad_page_fails_naming_the_page_and_the_element(browser, learner):
    """A chart without a text alternative and a mid-grey warning (4.48:1 on white, 3.6:1 on slate), planted in a copy of a real page."""
    path = "fundamentals/planted/"
    html = (learner["site"] / "fundamentals/compute/index.html").read_text(encoding="utf-8")
    html = re.sub(r'(<img class="recording-chart"[^>]*?) alt="[^"]*"', r"\1", html, count=1)
    html = html.replace("</article>", '<p id="faint-warning" style="color:#777777">Drain the node first.</p></article>')
    auditor = a11y_audit.Auditor(browser, learner["base"], learner["site"])
    try:
        auditor.context.route(learner["base"] + path, lambda route: route.fulfill(
            status=200, content_type="text/html", body=html))
        problems = auditor.audit(path, "planted").problems
    finally:
        auditor.close()
    assert any(p.startswith(f"planted {path} [light] image-alt") and "recording-chart" in p for p in problems), problems
    assert any(p.startswith(f"planted {path} [light] color-contrast") and "#faint-warning" in p for p in problems), problems
    assert any(p.startswith(f"planted {path} [dark] color-contrast") and "#faint-warning" in p for p in problems), problems


# ---- charts state their data -----------------------------------------------------------------------------------

IMG = re.compile(r"<img\b[^>]*>")


def chart_problems(site: Path) -> list[str]:
    """Every content image needs a text alternative that states figures; every drawn chart (class recording-chart
    with a chart spec) needs its data table right after it."""
    problems = []
    for page in a11y_audit.site_pages(site):
        text = a11y_audit.Sizes(site).file_for(page).read_text(encoding="utf-8")
        body = text[text.find('<article class="md-content__inner'):text.find("</article>")]
        for m in IMG.finditer(body):
            alt = re.search(r'\salt="([^"]*)"', m[0])
            src = re.search(r'\ssrc="([^"]*)"', m[0])
            where = f"{page or '(home)'}: <img src={src[1] if src else '?'}>"
            if not alt or not alt[1].strip():
                problems.append(f"{where} has no text alternative")
            elif "recording-chart" in m[0] and not re.search(r"\d", alt[1]):
                problems.append(f"{where}: its text alternative states no figure: {alt[1]!r}")
            elif "recording-chart" in m[0] and alt[1].startswith("Chart:"):
                after = body[m.end():m.end() + 600]
                if "Chart data:" not in after or "<table" not in body[m.end():m.end() + 20000].split("</details>")[0]:
                    problems.append(f"{where}: its numbers are not in a table one click away")
            if src and src[1].startswith("data:"):
                problems.append(f"{where}: inlined as a data: URI (not cached, weighs on every load)")
    return problems


@pytest.mark.parametrize("edition", ["learner", "instructor"])
def test_charts_state_their_data(edition, learner, instructor):
    site = {"learner": learner, "instructor": instructor}[edition]["site"]
    compute = (site / "fundamentals/compute/index.html").read_text(encoding="utf-8")
    assert re.search(r'<img class="recording-chart" src="\.\./\.\./assets/recorded/[0-9a-f]{20}\.svg" '
                     r'alt="Chart: Matmul throughput, NVIDIA H\d00\. throughput \(TFLOP/s\) against matrix size n', compute)
    problems = chart_problems(site)
    assert not problems, "\n".join(problems)


def test_chart_check_catches_a_bare_title_and_a_missing_table(tmp_path):
    page = tmp_path / "lab" / "index.html"
    page.parent.mkdir()
    page.write_text('<article class="md-content__inner md-typeset">'
                    '<img class="recording-chart" src="a.svg" alt="Utilization timeline">'
                    '<img class="recording-chart" src="b.svg" alt="Chart: t. y against x. a: 1 at x = 2.">'
                    '<img src="data:image/png;base64,AAAA"></article>')
    problems = chart_problems(tmp_path)
    assert len(problems) == 4, problems
    assert "states no figure" in problems[0] and "a table one click away" in problems[1]
    assert "no text alternative" in problems[2] and "data: URI" in problems[3]


# ---- keyboard --------------------------------------------------------------------------------------------------

FOCUSED = """() => {
  const focused = document.activeElement;
  if (!focused || focused === document.body) return null;
  // Material's toggles (palette, drawer) are visually hidden inputs drawn by the label after them
  let el = focused;
  const next = focused.nextElementSibling;
  if (focused.tagName === "INPUT" && !focused.getBoundingClientRect().width && next && next.tagName === "LABEL") el = next;
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  const ring = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== "none";
  return {tag: el.tagName.toLowerCase(), cls: el.className && el.className.baseVal === undefined ? el.className : "",
          text: (el.innerText || el.getAttribute("aria-label") || el.title || "").trim().slice(0, 40),
          w: r.width, h: r.height, x: r.x, y: r.y, vw: innerWidth, vh: innerHeight, ring,
          id: el.id, href: el.getAttribute("href"), inSearch: !!el.closest(".md-search-result")};
}"""


def tab_through(page, limit: int = 400) -> list[dict]:
    """Tab from the top of the page until focus comes back round; every stop on the way."""
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    stops, first = [], None
    for _ in range(limit):
        page.keyboard.press("Tab")
        stop = page.evaluate(FOCUSED)
        if stop is None:
            continue
        key = (stop["tag"], stop["id"], stop["href"], stop["text"], stop["cls"])
        if key == first:
            break
        first = first or key
        stops.append(stop)
    return stops


def invisible(stops: list[dict]) -> list[str]:
    bad = []
    for s in stops:
        where = f"<{s['tag']} class={s['cls']!r} href={s['href']!r}> {s['text']!r}"
        if s["w"] < 1 or s["h"] < 1:
            bad.append(f"{where}: {s['w']:.0f}x{s['h']:.0f} px")
        elif s["x"] + s["w"] <= 0 or s["y"] + s["h"] <= 0 or s["x"] >= s["vw"] or s["y"] >= s["vh"]:
            bad.append(f"{where}: off screen at ({s['x']:.0f}, {s['y']:.0f})")
        elif not s["ring"]:
            bad.append(f"{where}: no visible focus style")
    return bad


@pytest.mark.parametrize("path", ["", LAB, RUNBOOK])
def test_tab_reaches_everything_with_a_visible_focus(browser, learner, path):
    auditor = a11y_audit.Auditor(browser, learner["base"], learner["site"])
    try:
        page = auditor.load(path)
        stops = tab_through(page)
        links = page.evaluate("document.querySelectorAll('article a[href]:not(.headerlink)').length")
    finally:
        auditor.close()
    assert len(stops) >= 10, f"{path or '(home)'}: only {len(stops)} tab stops"
    bad = invisible(stops)
    assert not bad, f"{path or '(home)'}: focused elements a keyboard user cannot see:\n" + "\n".join(bad[:20])
    reached = sum(1 for s in stops if s["tag"] == "a" and s["href"] and "md-content" not in s["cls"])
    assert reached >= min(links, 5), f"{path or '(home)'}: Tab reached {reached} links, the article has {links}"


def test_notebook_cells_take_focus(browser, learner):
    auditor = a11y_audit.Auditor(browser, learner["base"], learner["site"])
    try:
        page = auditor.load(NOTEBOOK)
        cells = page.evaluate("document.querySelectorAll('.jupyter-wrapper .jp-CodeCell pre').length")
        stops = tab_through(page)
    finally:
        auditor.close()
    focused = [s for s in stops if s["tag"] == "pre"]
    assert cells and len(focused) == cells, f"{NOTEBOOK}: {len(focused)} of {cells} notebook code blocks take focus"
    assert not invisible(focused), invisible(focused)


def test_search_results_are_reachable_with_tab(browser, learner):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route(lambda url: not url.startswith(learner["base"]), lambda route: route.abort())
    try:
        page = context.new_page()
        page.goto(learner["base"], wait_until="load")
        box = page.locator("input.md-search__input")
        box.click()
        box.press_sequentially("Xid")
        page.locator(".md-search-result__item").first.wait_for()
        stops = []
        for _ in range(4):
            page.keyboard.press("Tab")
            stops.append(page.evaluate(FOCUSED))
        assert all(s and s["inSearch"] for s in stops), f"Tab left the search results: {stops}"
        assert "md-search-result__link" in stops[0]["cls"], stops[0]
        assert not invisible(stops), invisible(stops)
        assert page.evaluate("document.getElementById('__search').checked"), "Tab closed the search"
        page.keyboard.press("Shift+Tab")  # and back: still in the results, the search still open
        back = page.evaluate(FOCUSED)
        assert back and back["inSearch"] and back["text"] == stops[-2]["text"], (back, stops[-2])
        assert page.evaluate("document.getElementById('__search').checked"), "Shift+Tab closed the search"
        target = stops[0]["href"]
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(FOCUSED)["href"] == target
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: url.split("?")[0] == target.split("?")[0], timeout=10_000)
    finally:
        context.close()


# ---- navigation (issue 21) --------------------------------------------------------------------------------------

def top_level_titles(config_nav) -> list[str]:
    titles = []
    for entry in config_nav:
        if isinstance(entry, dict):
            titles.append(next(iter(entry)))
        else:
            raise AssertionError(f"a top-level nav entry without a title: {entry!r}")
    return titles


NAV_TITLES = top_level_titles(crawl.load_mkdocs_yml(ROOT)["nav"])
SPACES = "(s) => s.replace(/\\s+/g, ' ').trim()"


def test_nav_entries_are_read_from_mkdocs_yml():
    assert len(NAV_TITLES) >= 12 and NAV_TITLES[0] == "Home" and "Labs" in NAV_TITLES, NAV_TITLES


@pytest.mark.parametrize("edition", ["learner", "instructor"])
def test_every_section_is_visible_at_1280_px(browser, learner, instructor, edition):
    served = {"learner": learner, "instructor": instructor}[edition]
    titles = NAV_TITLES + (["Instructor edition"] if edition == "instructor" else [])
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.route(lambda url: not url.startswith(served["base"]), lambda route: route.abort())
    try:
        page = context.new_page()
        page.goto(served["base"] + "labs/", wait_until="load")
        tabs = page.evaluate(f"""() => Array.from(document.querySelectorAll('.md-tabs__link')).map(a => {{
            const r = a.getBoundingClientRect(), hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
            return {{text: ({SPACES})(a.textContent), left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                     hit: !!hit && (hit === a || a.contains(hit))}}; }})""")
        sideways = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    finally:
        context.close()
    by_text = {t["text"]: t for t in tabs}
    missing = [t for t in titles if t not in by_text]
    assert not missing, f"{edition}: top-level sections with no tab: {missing} (tabs: {list(by_text)})"
    hidden = [t for t in titles if not (0 <= by_text[t]["left"] and by_text[t]["right"] <= 1280
                                        and 0 <= by_text[t]["top"] and by_text[t]["bottom"] <= 800 and by_text[t]["hit"])]
    assert not hidden, f"{edition}: tabs not visible at 1280x800 without scrolling sideways: {hidden}"
    assert sideways[0] <= sideways[1], f"{edition}: the page scrolls sideways at 1280 px: {sideways}"


def test_every_section_is_reachable_from_the_menu_at_390_px(browser, learner):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.route(lambda url: not url.startswith(learner["base"]), lambda route: route.abort())
    try:
        page = context.new_page()
        page.goto(learner["base"], wait_until="load")  # the menu opens on the sections (on a section's page,
        page.add_style_tag(content=a11y_audit.NO_MOTION)  # on that section, whose back arrow leads here)
        page.locator("label.md-header__button[for=__drawer]").click()
        page.wait_for_function("document.getElementById('__drawer').checked")
        items = page.locator("nav.md-nav--primary > ul.md-nav__list > li.md-nav__item > .md-nav__link")
        found = {}
        for i in range(items.count()):
            item = items.nth(i)
            text = item.evaluate("e => e.textContent.replace(/\\s+/g, ' ').trim()")
            if item.is_visible():
                found[text] = item
        missing = [t for t in NAV_TITLES if t not in found]
        assert not missing, f"sections missing from the 390 px menu: {missing} (menu: {list(found)})"
        for title in NAV_TITLES:
            item = found[title]
            item.scroll_into_view_if_needed()
            box = item.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] > 0, (title, box)
            assert item.evaluate("e => { const r = e.getBoundingClientRect(); const h = document.elementFromPoint("
                                 "r.x + Math.min(r.width / 2, 100), r.y + r.height / 2); return !!h && (h === e || e.contains(h)); }"), \
                f"{title!r} is covered in the 390 px menu"
        # and a section opens from it: its pages show
        found["Labs"].click()
        page.wait_for_timeout(400)
        lab = page.locator("nav.md-nav--primary a.md-nav__link", has_text="Lab 3")
        assert lab.first.is_visible(), "opening Labs in the 390 px menu does not show its pages"
    finally:
        context.close()
