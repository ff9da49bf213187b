"""The accessibility audit the browser checks and the weight benchmark share: axe-core (from the axe-playwright-python
package, never a copy in this repository) in Debian's Chromium, on pages served from a built site, offline.

One page load serves three audits:
- axe-core's WCAG 2.1 A/AA rules (tags wcag2a, wcag2aa, wcag21a, wcag21aa). The structural rules (names, labels,
  ARIA, landmarks, focusable scroll regions...) run on the whole page once: they do not depend on the palette. The
  colour rules (color-contrast, link-in-text-block) run in the light palette, then again after the palette toggle is
  clicked (no reload), in the dark one.
  Colour checks cost ~1 ms per text element in axe, and the handbook has ~100,000 of them (mostly highlighted code
  tokens that share a handful of styles), so axe's colour rules run on one representative element per *colour
  context*: the element's computed colour, font size and weight, opacity, text decoration, the computed
  backgrounds, images, filters and opacities of every ancestor up to the first opaque one, and for a link the colour
  of the text around it. Two elements with the same colour context get the same verdict from both rules; a page's
  element whose context no earlier page showed is checked on that page, so every distinct context of every page is
  checked, in each palette. A planted low-contrast element has its own context and is caught (checks/test_a11y.py).
- Every request to another host is refused and recorded (the site must work on an air-gapped cluster).
- The cold-load weight: the page and every file it asked for, each counted at its gzip -6 size.

The audit's context answers search/search_index.json with an empty index: Material's search worker otherwise builds
the whole site's full-text index on every page load (half a CPU-second each), and the index's words are no part of
any page's DOM. The file still counts in the page's weight (it is asked for, and weighed from disk); the search
itself is checked with its real index by test_a11y.py's keyboard check and test_browser.py.
"""
from __future__ import annotations

import gzip
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
COLOUR_RULES = ["color-contrast", "link-in-text-block"]
BUDGET_BYTES = 512 * 1024  # issue 31: every page's cold load, gzip-equivalent
NO_MOTION = "*, *::before, *::after { transition: none !important; animation: none !important; }"

# In the page: structural rules on the whole document, then the colour rules on new colour contexts only.
AUDIT_JS = """
async ({seen, structural, colour, tags, colourRules}) => {
  const problems = [];
  const report = (result) => {
    for (const v of result.violations) for (const n of v.nodes)
      problems.push({rule: v.id, impact: v.impact, target: n.target.join(" "), html: (n.html || "").slice(0, 160),
                     summary: (n.failureSummary || v.help).replace(/\\s+/g, " ").trim()});
  };
  if (structural) {
    const rules = Object.fromEntries(colourRules.map(r => [r, {enabled: false}]));
    report(await axe.run(document, {runOnly: {type: "tag", values: tags}, rules, resultTypes: ["violations"]}));
  }
  if (!colour) return {problems, fresh: [], checked: 0};
  const chains = new Map();
  const opaque = (c) => /^rgb\\(/.test(c) || /^rgba\\(.*,\\s*1\\)$/.test(c);
  const chain = (el) => {
    if (!el) return "";
    if (chains.has(el)) return chains.get(el);
    const s = getComputedStyle(el);
    let own = [s.backgroundColor, s.backgroundImage, s.opacity, s.filter, s.mixBlendMode].join("/");
    const key = (s.backgroundImage === "none" && opaque(s.backgroundColor) && s.opacity === "1")
      ? own : own + "<" + chain(el.parentElement);
    chains.set(el, key);
    return key;
  };
  const ownText = (el) => Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  const known = new Set(seen);
  const fresh = [], reps = [];
  for (const el of document.body.querySelectorAll("*")) {
    const link = el.tagName === "A";
    if (!link && !ownText(el)) continue;
    if (!el.getClientRects().length) continue;
    const s = getComputedStyle(el);
    if (s.visibility !== "visible") continue;
    const around = link && el.parentElement ? getComputedStyle(el.parentElement).color : "";
    const key = [link, s.color, s.fontSize, s.fontWeight, s.opacity, s.textShadow, s.textDecorationLine,
                 s.textDecorationColor, s.borderBottomStyle, s.borderBottomColor, around, chain(el)].join("|");
    if (known.has(key)) continue;
    known.add(key); fresh.push(key); reps.push(el);
  }
  if (colour && reps.length) {
    report(await axe.run({include: reps}, {runOnly: {type: "rule", values: colourRules}, resultTypes: ["violations"]}));
  }
  return {problems, fresh, checked: reps.length};
}
"""

PALETTE_TOGGLE = "form[data-md-component=palette] label:visible"
EMPTY_INDEX = '{"config": {"lang": ["en"], "separator": "[\\\\s\\\\-]+", "pipeline": ["stopWordFilter"]}, "docs": []}'


@dataclass
class PageResult:
    path: str
    problems: list[str] = field(default_factory=list)
    requested: set[str] = field(default_factory=set)  # site-relative files this page asked for
    weight: int = 0  # gzip bytes of the page and every file it asked for


def axe_script() -> str:
    from axe_playwright_python.base import AXE_FILE_PATH

    return AXE_FILE_PATH.read_text(encoding="utf-8")


def axe_version() -> str:
    head = axe_script()[:200]
    return head.split("axe v", 1)[1].split()[0] if "axe v" in head else "unknown"


def site_pages(site: Path) -> list[str]:
    """Every page of a built site, as URL paths relative to its root ('' for the home page)."""
    found = []
    for path in sorted(site.rglob("index.html")):
        rel = path.parent.relative_to(site).as_posix()
        if rel.split("/")[0] != "assets":
            found.append("" if rel == "." else rel + "/")
    return found + (["404.html"] if (site / "404.html").exists() else [])


class Sizes:
    """gzip -6 size of each file of a site, computed once."""

    def __init__(self, site: Path):
        self.site, self.cache = site, {}

    def file_for(self, rel: str) -> Path:
        rel = urllib.parse.unquote(rel.split("#")[0].split("?")[0])
        path = self.site / rel
        return path / "index.html" if rel == "" or rel.endswith("/") else path

    def __call__(self, rel: str) -> int:
        if rel not in self.cache:
            path = self.file_for(rel)
            self.cache[rel] = len(gzip.compress(path.read_bytes(), 6)) if path.is_file() else 0
        return self.cache[rel]


class Auditor:
    """One browser context on one served site: loads pages offline, audits them, weighs them."""

    def __init__(self, browser, base: str, site: Path, viewport=(1280, 900), axe: bool = True):
        self.base, self.site, self.sizes = base, site, Sizes(site)
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                           reduced_motion="reduce")
        if axe:
            self.context.add_init_script(script=axe_script())
        self.external: dict[str, str] = {}  # host -> the page that asked for it
        self.current = ""
        self.context.route(lambda url: not url.startswith(base), self._refuse)
        self.context.route(base + "search/search_index.json", lambda route: route.fulfill(
            status=200, content_type="application/json", body=EMPTY_INDEX))
        self.page = self.context.new_page()
        self.requested: set[str] = set()
        self.page.on("request", lambda r: r.url.startswith(base) and self.requested.add(r.url[len(base):]))
        self.seen: dict[str, list[str]] = {"light": [], "dark": []}

    def _refuse(self, route):
        self.external.setdefault(urllib.parse.urlsplit(route.request.url).netloc, self.current)
        route.abort()

    def load(self, path: str):
        self.current, self.requested = path, set()
        self.page.goto(self.base + path, wait_until="load")
        self.page.add_style_tag(content=NO_MOTION)
        return self.page

    def weigh(self, result: PageResult) -> None:
        entries = self.page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        files = {result.path} | self.requested | {u[len(self.base):] for u in entries if u.startswith(self.base)}
        result.requested = files
        result.weight = sum(self.sizes(f) for f in files)

    def audit(self, path: str, label: str = "") -> PageResult:
        """Load PATH and audit it in both palettes; problems read `LABEL PATH [palette] rule: element: why`."""
        result = PageResult(path)
        self.load(path)
        self.weigh(result)
        name = f"{label} {path or '(home)'}".strip()
        for palette in ("light", "dark"):
            if palette == "dark":
                self.page.locator(PALETTE_TOGGLE).click()
                scheme = self.page.evaluate("document.body.getAttribute('data-md-color-scheme')")
                assert scheme == "slate", f"{name}: the palette toggle did not switch to the dark scheme ({scheme})"
            out = self.page.evaluate(AUDIT_JS, {"seen": self.seen[palette], "structural": palette == "light",
                                                "colour": True, "tags": TAGS, "colourRules": COLOUR_RULES})
            self.seen[palette] += out["fresh"]
            result.problems += [f"{name} [{palette}] {p['rule']} ({p['impact']}): {p['target']} {p['html']}: {p['summary']}"
                                for p in out["problems"]]
        self.page.locator(PALETTE_TOGGLE).click()  # back to light for the next page (Material remembers it)
        return result

    def close(self):
        self.context.close()


def launch(playwright):
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps, as root)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
