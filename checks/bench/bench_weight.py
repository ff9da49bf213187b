"""Page weight: what each page of the learner edition costs a browser on a cold load, gzip-equivalent.

    .venv/bin/python checks/bench/bench_weight.py [--site DIR] [--instructor]

Builds the edition (strict) unless --site names a built one, serves it on 127.0.0.1 and opens every page in a fresh
browser context (an empty cache: a cold load) in Debian's Chromium, offline. A page's weight is the page and every
file it asked for until the load event (stylesheets, scripts, the search index, the images in view; images further
down load lazily), each at its gzip -6 size, the size a web server sends. The budget is 512 KiB a page (issue 31);
the table shows where each page's bytes go, and the exit status is 1 if any page is over it.
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # checks/: a11y_audit, site_builds

import a11y_audit  # noqa: E402
from handbook.site import crawl  # noqa: E402


def kind(rel: str) -> str:
    if rel.endswith(".css"):
        return "css"
    if rel.endswith(".js"):
        return "js"
    if rel.endswith("search_index.json"):
        return "index"
    if rel.endswith((".svg", ".png", ".jpg", ".gif", ".webp")):
        return "images"
    return "html" if rel == "" or rel.endswith(("/", ".html")) else "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, help="a built site (default: build mkdocs.yml now)")
    parser.add_argument("--instructor", action="store_true", help="build mkdocs.instructor.yml instead")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = args.site
        if site is None:
            from site_builds import strict_build
            site = strict_build("mkdocs.instructor.yml" if args.instructor else "mkdocs.yml", Path(tmp) / "site")
        rows, over = [], []
        with crawl.serve(site) as base, sync_playwright() as p:
            browser = a11y_audit.launch(p)
            for page in a11y_audit.site_pages(site):
                auditor = a11y_audit.Auditor(browser, base, site, axe=False)
                try:
                    auditor.load(page)
                    auditor.page.wait_for_load_state("networkidle")
                    result = a11y_audit.PageResult(page)
                    auditor.weigh(result)
                finally:
                    auditor.close()
                parts = {}
                for rel in result.requested:
                    parts[kind(rel)] = parts.get(kind(rel), 0) + auditor.sizes(rel)
                rows.append((page or "(home)", result.weight, parts, sorted(auditor.external)))
                if result.weight > a11y_audit.BUDGET_BYTES:
                    over.append(page or "(home)")
            browser.close()
    cols = ("html", "css", "js", "index", "images", "other")
    print(f"{'page':45} {'KiB':>6}  " + " ".join(f"{c:>6}" for c in cols) + "  other hosts")
    for page, weight, parts, external in sorted(rows, key=lambda r: -r[1]):
        print(f"{page:45} {weight / 1024:6.0f}  " + " ".join(f"{parts.get(c, 0) / 1024:6.0f}" for c in cols)
              + ("  " + ", ".join(external) if external else ""))
    print(f"\n{len(rows)} pages; budget {a11y_audit.BUDGET_BYTES // 1024} KiB; heaviest {max(r[1] for r in rows) / 1024:.0f} KiB"
          + (f"; OVER: {', '.join(over)}" if over else "; all within"))
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
