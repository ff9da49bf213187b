"""Prove a built learner site holds no instructor material: no quiz key, no lab solution, in any file it serves.

    python -m handbook.leaks SITE_DIR        exit 0 when clean; otherwise one line per leak, exit 1

What counts as instructor material (`fragments()`): the marker every instructor page and the key carry; every
sentence of the instructor pages' prose; every explanation and every `id: answer` pair of the quiz key; every
line of the snippets the instructor pages include (the solutions' programs), less lines a learner page shows
anyway (its other snippets, its own code blocks). Every file of the site is read as text the way a browser or a crawler would get it:
HTML without tags, JSON (search/search_index.json) by its strings, sitemap.xml(.gz), and every downloadable file.
"""
from __future__ import annotations

import gzip
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import DOCS, INSTRUCTOR, ROOT, blocks

MARKER = "instructor edition only"  # in every instructor page's banner and in the key's header
BINARY = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".woff", ".woff2", ".ttf", ".eot", ".pdf", ".webp"}
MIN_SENTENCE = 40  # characters: shorter prose fragments ("Run it.") are not evidence of a leak
MIN_CODE_LINE = 24


@dataclass(frozen=True)
class Fragment:
    text: str  # normalized
    source: str  # where it comes from, repo-relative


def normalize(text: str) -> str:
    """Lower case, markdown emphasis and code marks dropped, whitespace collapsed: source and HTML compare equal."""
    text = re.sub(r"[*`]", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def _prose(markdown: str) -> list[str]:
    """Paragraphs and list items of a page, outside code fences, with links reduced to their text."""
    out, para, fence = [], [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        if re.match(r"^(`{3,}|~{3,})", stripped):
            fence = None if fence and stripped.startswith(fence) else (fence or stripped[:3])
            continue
        if fence:
            continue
        if not stripped or stripped.startswith(("#", "!!!", "???", "|", "<!--")) or re.match(r"^([-*]|\d+\.)\s", stripped):
            if para:
                out.append(" ".join(para))
            para = [re.sub(r"^([-*]|\d+\.)\s+", "", stripped)] if re.match(r"^([-*]|\d+\.)\s", stripped) else []
            continue
        para.append(stripped)
    if para:
        out.append(" ".join(para))
    cleaned = []
    for p in out:
        p = re.sub(r"<!--.*?-->", "", p)
        p = re.sub(r"\{\{.*?\}\}", ". ", p)  # a figure reference renders as its value: split the sentence there
        p = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", p)
        cleaned.append(p)
    return cleaned


def _sentences(paragraph: str) -> list[str]:
    parts = re.split(r"(?<=[.;:!?])\s+|\s+\(|\)\s+", normalize(paragraph))
    return [p.strip(" .;:,()") for p in parts if len(p.strip(" .;:,()")) >= MIN_SENTENCE]


def fragments(instructor: Path = INSTRUCTOR, docs: Path = DOCS) -> list[Fragment]:
    found: dict[str, str] = {MARKER: "instructor/ (the banner every instructor page carries)"}
    for page in blocks.pages(instructor):
        rel = page.relative_to(ROOT).as_posix()
        for paragraph in _prose(page.read_text(encoding="utf-8")):
            for sentence in _sentences(paragraph):
                found.setdefault(sentence, rel)
    key = instructor / "quiz" / "key.yaml"
    if key.is_file():
        import yaml

        text = key.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        rel = key.relative_to(ROOT).as_posix()
        # "id: answer: VALUE" as the key file writes it (a copied key.yaml, or a pasted entry)
        for m in re.finditer(r"^  ([a-z0-9-]+):\n    answer: (.+)$", text, re.M):
            found.setdefault(normalize(f"{m[1]}: answer: {m[2]}"), rel)
        for qid, entry in (data.get("answers") or {}).items():
            why = normalize(str(entry.get("why", "")))
            if len(why) >= 20:  # whole: a why may reuse a public phrase, never the whole explanation
                found.setdefault(why, rel)
    for line, source in solution_code_lines(instructor, docs).items():
        found.setdefault(line, source)
    return [Fragment(text, source) for text, source in found.items()]


def _included(pages: list[Path]) -> set[Path]:
    return {b.snippet.path for page in pages for b in blocks.parse_page(page) if b.snippet}


def solution_snippets(instructor: Path = INSTRUCTOR) -> set[Path]:
    """The snippets the instructor pages include: the solutions' programs and configurations."""
    return _included(blocks.pages(instructor))


def solution_code_lines(instructor: Path = INSTRUCTOR, docs: Path = DOCS) -> dict[str, str]:
    """Lines of the solution snippets, less lines a learner page shows anyway (its other snippets, its own code).

    A learner page that includes a whole solution snippet does not make it shared: its lines stay secret, so the
    leak is found."""
    solutions = solution_snippets(instructor)
    shared = set()
    for page in blocks.pages(docs):
        shared |= {normalize(line) for line in _fenced(page.read_text(encoding="utf-8")) if "--8<--" not in line}
        for b in blocks.parse_page(page):
            # What a learner page shows on purpose: other snippets whole, a solution's named excerpt (e.g. two rules
            # of Lab 1's rule file on the Prometheus page). A whole solution snippet is never "shown on purpose".
            if b.snippet and (b.snippet.path not in solutions or b.snippet.section):
                shared |= {normalize(line) for line in b.snippet.text.splitlines()}
    shared_text = "\n".join(shared)  # a line shown inside a longer learner line is shown too
    lines = {}
    for path in sorted(solutions):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = normalize(line)
            if len(text) >= MIN_CODE_LINE and text not in shared_text:
                lines.setdefault(text, path.relative_to(ROOT).as_posix())
    return lines


def _fenced(markdown: str) -> list[str]:
    out, fence = [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        if re.match(r"^(`{3,}|~{3,})", stripped):
            fence = None if fence and stripped.startswith(fence) else (fence or stripped[:3])
        elif fence:
            out.append(line)
    return out


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def readable_text(path: Path) -> str | None:
    """What SITE/path serves, as text a reader or a crawler gets from it; None for images and fonts."""
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix == ".gz":
        data, suffix = gzip.decompress(data), Path(path.stem).suffix.lower()
    if suffix in BINARY:
        return None
    text = data.decode("utf-8", errors="replace")
    if suffix == ".json":
        try:
            text = "\n".join(_strings(json.loads(text)))
        except json.JSONDecodeError:
            pass
    if suffix in (".html", ".htm", ".json", ".xml", ".svg"):
        inline = re.sub(r"</?(?:a|abbr|b|code|em|i|kbd|mark|span|strong|sub|sup)\b[^>]*>", "", text)
        text = text + "\n" + html.unescape(re.sub(r"<[^>]+>", " ", inline))  # as served, and as read
    return normalize(text)


def _probe(fragment: str) -> str | None:
    """A word the text must hold whole if it holds the fragment: texts are normalized to single spaces, so a word
    with a space on each side in the fragment is a whole word of the text (the longest such, the rarest); None for
    fragments of one or two words. It spares most fragments a substring search of every file."""
    inner = fragment.split(" ")[1:-1]
    return max(inner, key=len) if inner else None


def scan(site: Path, found: list[Fragment] | None = None) -> list[str]:
    """One line per file of SITE that holds instructor material: `PATH: has "..." (from SOURCE)`."""
    found = fragments() if found is None else found
    probed = [(f, _probe(f.text)) for f in found]
    problems = []
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        rel = path.relative_to(site).as_posix()
        if rel.split("/", 1)[0] == "instructor":
            problems.append(f"{rel}: the instructor edition's folder is in this site")
            continue
        text = readable_text(path)
        if rel.startswith("sitemap.xml") and text and re.search(r"<loc>[^<]*/instructor/", text):
            problems.append(f"{rel}: lists an instructor page")
            continue
        if text is None:
            continue
        words = set(text.split(" "))
        hits = [f for f, probe in probed if (probe is None or probe in words) and f.text in text]
        if hits:
            first = hits[0]
            shown = first.text if len(first.text) <= 70 else first.text[:67] + "..."
            more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
            problems.append(f"{rel}: has instructor material \"{shown}\" "
                            f"(from {first.source}){more}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m handbook.leaks SITE_DIR (a built learner site)", file=sys.stderr)
        return 2
    problems = scan(Path(args[0]))
    for line in problems:
        print(f"leak: {line}")
    if not problems:
        print(f"leaks: none in {args[0]} ({len(fragments())} instructor fragments looked for)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
