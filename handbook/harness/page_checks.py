"""What `pytest docs/PAGE.md` checks of a page besides running its blocks, so the author's loop catches what the
full suite would: figure references, typed figures, nvidia-smi query fields and sections, internal links.

Each problem is one line, `docs/page.md:LINE: what is wrong`. The full suite collects every page, so these run for
every page there too; the site crawl (checks/test_site.py) still follows the built site's links.
"""
import functools
import re
from pathlib import Path

from markdown.extensions.toc import slugify

from handbook import ROOT, recordings
from handbook.harness import blocks, shell_blocks, includes
from handbook.recordings import figures, typed_figures

LINK = re.compile(r"(?<!!)\[(?:[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*(?:\{[^}]*#(?P<id>[\w-]+)[^}]*\})?\s*#*\s*$")
ATTR_ID = re.compile(r"\{[^}]*#(?P<id>[\w-]+)[^}]*\}")


def problems(page: Path, root: Path = ROOT) -> list[str]:
    """Every problem of the page, in a handbook tree at `root` (docs/, snippets/, instructor/)."""
    text = page.read_text(encoding="utf-8")
    found = figure_problems(page, text, root) + [str(f) for f in typed_figures.findings(page, text)]
    found += nvidia_smi_problems(page, root)
    found += link_problems(page, text, root) + vanishing_lines(page, text)
    return found


def vanishing_lines(page: Path, text: str) -> list[str]:
    """Lines pymdownx.snippets would silently drop (a section marker) or swallow (bare scissors) on the site."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if includes.UNESCAPED_SECTION.search(line):
            out.append(f"{blocks.rel(page)}:{number}: the site drops this line (pymdownx.snippets removes any line "
                       f"holding a section marker): write ;--8<-- to show the marker")
        elif includes.BARE_SCISSORS.match(line):
            out.append(f"{blocks.rel(page)}:{number}: a line of bare scissors makes pymdownx.snippets read the "
                       f"lines after it as files to include: write ;--8<-- to show it")
    return out


def figure_problems(page: Path, text: str, root: Path) -> list[str]:
    out = []
    for line, body in figures.references(text):
        try:
            figures.resolve(body, page, root / "docs", root / "snippets")
        except figures.PendingFigure:
            continue  # waits for its recording; the summary lists what is not recorded yet
        except (LookupError, recordings.RecordingError) as err:
            out.append(f"{blocks.rel(page)}:{line}: {{{{ rec:{body} }}}}: {err}")
    return out


def nvidia_smi_problems(page: Path, root: Path) -> list[str]:
    recorded = shell_blocks.nvidia_smi_help()
    return shell_blocks.check_nvidia_smi(page, recorded[0], root / "snippets") if recorded else []


def link_problems(page: Path, text: str, root: Path) -> list[str]:
    """Relative links to pages (.md, .ipynb) that do not exist, or to a heading or `{#id}` the target lacks."""
    out, fenced = [], figures.code_lines(text)
    for number, line in enumerate(text.splitlines(), 1):
        if number in fenced:
            continue
        for m in LINK.finditer(figures.INLINE_CODE.sub("", line)):
            target = m["target"]
            if "://" in target or target.startswith(("mailto:", "/")):
                continue
            path_part, _, anchor = target.partition("#")
            if not path_part:
                dest = page
            elif path_part.endswith((".md", ".ipynb")):
                dest = site_path(page, path_part, root)
                if not dest.is_file():
                    out.append(f"{blocks.rel(page)}:{number}: link to {path_part}: no such page")
                    continue
            else:
                continue  # a file download, a folder URL or an asset: the site crawl checks those
            if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                out.append(f"{blocks.rel(page)}:{number}: link to {target}: {blocks.rel(dest)} has no heading or "
                           f"{{#{anchor}}} with that anchor")
    return out


def site_path(page: Path, target: str, root: Path) -> Path:
    """The file a relative link resolves to on the site, where instructor/ pages sit at docs/instructor/."""
    docs, instructor = root / "docs", root / "instructor"
    here = docs / "instructor" / page.relative_to(instructor) if instructor in page.parents else page
    dest = (here.parent / target).resolve()
    if docs / "instructor" in dest.parents:
        return instructor / dest.relative_to(docs / "instructor")
    return dest


@functools.lru_cache(maxsize=256)
def _anchors(path: Path, mtime: float) -> frozenset:  # mtime: a changed file is read again
    text, ids = path.read_text(encoding="utf-8"), set()
    fenced = figures.code_lines(text)
    for number, line in enumerate(text.splitlines(), 1):
        if number in fenced:
            continue
        heading = HEADING.match(line)
        if heading:
            title = ATTR_ID.sub("", heading["title"]).strip()
            ids.add(heading["id"] or slugify(re.sub(r"[`*_]", "", title), "-"))
        ids.update(m["id"] for m in ATTR_ID.finditer(line))
    return frozenset(ids)


def anchors(path: Path) -> frozenset:
    return _anchors(path, path.stat().st_mtime)
