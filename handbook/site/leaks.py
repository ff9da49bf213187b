"""Prove that nothing a learner gets holds instructor material: the built learner site, and the learner repository
(its files and its whole git history).

    python -m handbook.site.leaks SITE_DIR                 a built learner site (pages, search index, sitemap, notebooks,
                                                      downloads): exit 0 when clean, else one line per leak, exit 1
    python -m handbook.site.leaks --repo REPO [SITE_DIR]   a learner repository (handbook/site/learner_repo): its working tree
                                                      and every object reachable from any of its refs: blobs, the
                                                      paths that name them, commit and tag messages

What counts as instructor material (`fragments()`): the marker every instructor page and the key carry; every
sentence of the instructor pages' prose; every explanation and every `id: answer` pair of the quiz key, and every
longer text the key holds (a graded drill's pager and explanation, a misconception); every line of instructor/'s
other files (the key, graded drills' hidden scenarios, item drafts) that no learner file shows; each of those files
whole; the course secret when this machine has it; every line of the snippets the instructor pages include (the
solutions' programs), less lines a learner page shows anyway (its other snippets, its own code blocks). Every file
is read as text the way a browser or a crawler would get it: HTML without tags, JSON (search/search_index.json) by
its strings, sitemap.xml(.gz), and every downloadable file. In a repository, a path under instructor/ or an
instructor-only config is a leak by its name alone, in the working tree or anywhere in the history.
"""
from __future__ import annotations

import gzip
import html
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from handbook import DOCS, INSTRUCTOR
from handbook.harness import blocks, includes

MARKER = "instructor edition only"  # in every instructor page's banner and in the key's header
BINARY = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".woff", ".woff2", ".ttf", ".eot", ".pdf", ".webp"}
MIN_SENTENCE = 40  # characters: shorter prose fragments ("Run it.") are not evidence of a leak
MIN_CODE_LINE = 24
# The quiz's course secret (handbook/course/quiz/variants.py): an environment variable, or a git-ignored file.
SECRET_ENV = "HANDBOOK_QUIZ_SECRET"
SECRET_FILE = Path("quiz") / "course-secret"  # under instructor/
MIN_SECRET = 16
# Paths that are instructor material by their name: in a learner repository's tree or history, a leak as such.
INSTRUCTOR_DIR = "instructor"
INSTRUCTOR_FILES = ("mkdocs.instructor.yml", "course-secret")


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


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def fragments(instructor: Path = INSTRUCTOR, docs: Path = DOCS) -> list[Fragment]:
    """Everything that marks instructor material, from the handbook tree that holds INSTRUCTOR and DOCS."""
    root = instructor.parent
    found: dict[str, str] = {MARKER: "instructor/ (the banner every instructor page carries)"}
    for page in blocks.pages(instructor):
        rel = _rel(page, root)
        for paragraph in _prose(page.read_text(encoding="utf-8")):
            for sentence in _sentences(paragraph):
                found.setdefault(sentence, rel)
    key = instructor / "quiz" / "key.yaml"
    if key.is_file():
        import yaml

        text = key.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        rel = _rel(key, root)
        # "id: answer: VALUE" as the key file writes it (a copied key.yaml, or a pasted entry)
        for m in re.finditer(r"^  ([a-z0-9-]+):\n    answer: (.+)$", text, re.M):
            found.setdefault(normalize(f"{m[1]}: answer: {m[2]}"), rel)
        for qid, entry in (data.get("answers") or {}).items():
            why = normalize(str((entry or {}).get("why", ""))) if isinstance(entry, dict) else ""
            if len(why) >= 20:  # whole: a why may reuse a public phrase, never the whole explanation
                found.setdefault(why, rel)
        # Every longer text of the key, wherever it sits: a graded drill's pager and explanation (which tie its
        # verdict and action to its hidden scenario), a misconception, a variant's explanation.
        for value in _strings(data):
            value = normalize(value)
            if len(value) >= MIN_SENTENCE:
                found.setdefault(value, rel)
    public = _public_lines(root, docs)
    for path in sorted(p for p in instructor.rglob("*") if p.is_file() and p.suffix != ".md"):
        if path == instructor / SECRET_FILE or path.suffix.lower() in BINARY:
            continue  # the course secret is looked for whole, below; images and PDFs are no text
        rel = _rel(path, root)
        text = path.read_text(encoding="utf-8", errors="replace")
        whole = normalize(text)
        if len(whole) >= MIN_CODE_LINE:
            found.setdefault(whole, rel)  # the file copied whole, even where each of its lines is public
        for line in text.splitlines():
            line = normalize(line)
            # a mapping key alone (a question's id: the bank publishes it) says nothing
            if len(line) >= MIN_CODE_LINE and line not in public and not re.fullmatch(r"[-\w\"'. ]+:", line):
                found.setdefault(line, rel)
    for secret, source in course_secrets(instructor):
        found.setdefault(normalize(secret), source)
    for line, source in solution_code_lines(instructor, docs).items():
        found.setdefault(line, source)
    return [Fragment(text, source) for text, source in found.items()]


def course_secrets(instructor: Path = INSTRUCTOR) -> list[tuple[str, str]]:
    """The quiz's course secret, where this machine holds it: $HANDBOOK_QUIZ_SECRET and instructor/quiz/course-secret."""
    out = []
    value = os.environ.get(SECRET_ENV, "").strip()
    if len(value) >= MIN_SECRET:
        out.append((value, f"${SECRET_ENV} (the course secret)"))
    path = instructor / SECRET_FILE
    if path.is_file():
        value = path.read_text(encoding="utf-8", errors="replace").strip()
        if len(value) >= MIN_SECRET:
            out.append((value, f"{_rel(path, instructor.parent)} (the course secret)"))
    return out


def _public_lines(root: Path, docs: Path) -> set[str]:
    """Normalized lines learners see anyway: every file under docs/, the snippets that are not solutions, and the
    handbook's machinery with the simulator's public scenarios and practice drills. A line of an instructor data
    file or program that is also here (a scenario's `[[gpu]]` table, a stem the bank publishes,
    `if __name__ == "__main__":`) is no evidence of a leak."""
    lines: set[str] = set()
    solutions = solution_snippets(root / "instructor")
    sources = [p for p in docs.rglob("*") if p.is_file()]
    sources += [p for p in (root / "snippets").rglob("*") if p.is_file() and p not in solutions
                and not p.name.endswith(".rec.json")]
    sources += [p for p in (root / "handbook").rglob("*") if p.suffix in (".py", ".toml") and p.is_file()]
    for path in sources:
        if path.suffix.lower() in BINARY:
            continue
        lines |= {normalize(line) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()}
    return lines


def _included(pages: list[Path], snippet_dir: Path) -> set[Path]:
    return {b.snippet.path for page in pages for b in blocks.parse_page(page, snippet_dir) if b.snippet}


def solution_snippets(instructor: Path = INSTRUCTOR) -> set[Path]:
    """The snippets the instructor pages include: the solutions' programs and configurations."""
    return _included(blocks.pages(instructor), instructor.parent / "snippets")


def solution_code_lines(instructor: Path = INSTRUCTOR, docs: Path = DOCS) -> dict[str, str]:
    """Lines of the solution snippets, less lines a learner page shows anyway (its other snippets, its own code).

    A learner page that includes a whole solution snippet does not make it shared: its lines stay secret, so the
    leak is found."""
    root = instructor.parent
    snippet_dir = root / "snippets"
    solutions = solution_snippets(instructor)
    shared = set()
    for page in blocks.pages(docs):
        shared |= {normalize(line) for line in _fenced(page.read_text(encoding="utf-8")) if "--8<--" not in line}
        for b in blocks.parse_page(page, snippet_dir):
            # What a learner page shows on purpose: other snippets whole, a solution's named excerpt (e.g. two rules
            # of Lab 1's rule file on the Prometheus page). A whole solution snippet is never "shown on purpose".
            if b.snippet and (b.snippet.path not in solutions or b.snippet.section):
                shared |= {normalize(line) for line in b.snippet.text.splitlines()}
    # The handbook's own machinery ships to learners too (handbook/site/learner_repo): a solution line that is also a
    # line of it (`except (OSError, ValueError):`) is common code, no evidence of a leak.
    for path in (root / "handbook").rglob("*.py"):
        shared |= {normalize(line) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()}
    shared_text = "\n".join(shared)  # a line shown inside a longer learner line is shown too
    lines = {}
    for path in sorted(solutions):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = normalize(line)
            if includes.MARKER.match(line):
                continue  # a section's marker line: the learner repository keeps it, so the section resolves
            if len(text) >= MIN_CODE_LINE and text not in shared_text:
                lines.setdefault(text, _rel(path, root))
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
    return text_of(path.name, path.read_bytes())


def text_of(name: str, data: bytes) -> str | None:
    """A file called NAME holding DATA, as text a reader or a crawler gets from it; None for images and fonts."""
    suffix = Path(name).suffix.lower()
    if suffix == ".gz":
        try:
            data, suffix = gzip.decompress(data), Path(Path(name).stem).suffix.lower()
        except (OSError, EOFError):
            pass  # not gzip after all: read it as it is
    if suffix in BINARY:
        return None
    text = data.decode("utf-8", errors="replace")
    if suffix in (".json", ".ipynb"):
        try:
            strings = "\n".join(_strings(json.loads(text)))
            text = strings if suffix == ".json" else text + "\n" + strings  # a notebook's cells, as its reader sees them
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


class _Matcher:
    def __init__(self, found: list[Fragment]):
        self.probed = [(f, _probe(f.text)) for f in found]

    def problem(self, label: str, text: str | None) -> str | None:
        """`LABEL: has instructor material "..." (from SOURCE)` when TEXT holds any fragment, else None."""
        if text is None:
            return None
        words = set(text.split(" "))
        hits = [f for f, probe in self.probed if (probe is None or probe in words) and f.text in text]
        if not hits:
            return None
        first = hits[0]
        shown = first.text if len(first.text) <= 70 else first.text[:67] + "..."
        more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
        return f"{label}: has instructor material \"{shown}\" (from {first.source}){more}"


def scan(site: Path, found: list[Fragment] | None = None) -> list[str]:
    """One line per file of SITE that holds instructor material: `PATH: has "..." (from SOURCE)`."""
    matcher = _Matcher(fragments() if found is None else found)
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
        problem = matcher.problem(rel, text)
        if problem:
            problems.append(problem)
    return problems


# ---- a learner repository: its files and its whole history -------------------------------------------------

def instructor_path(rel: str) -> bool:
    """A path that is instructor material by its name: instructor/..., mkdocs.instructor.yml, the course secret."""
    parts = rel.split("/")
    return parts[0] == INSTRUCTOR_DIR or parts[-1] in INSTRUCTOR_FILES


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"})
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise LeakScanError(f"{repo}: `git {' '.join(args)}` failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout


class LeakScanError(Exception):
    """A repository that cannot be read (not a git repository, a broken object); str() is one line."""


def _objects(repo: Path) -> list[tuple[str, str, str]]:
    """(sha, type, path) of every object reachable from any ref; path is '' for commits and tags."""
    listed = _git(repo, "rev-list", "--objects", "--all").decode(errors="replace").splitlines()
    entries = [(line[:40], line[41:]) for line in listed if line.strip()]
    if not entries:
        return []
    types = _git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                 data="".join(f"{sha}\n" for sha, _ in entries).encode()).decode().split("\n")
    kinds = dict(line.split(" ", 1) for line in types if " " in line)
    return [(sha, kinds.get(sha, "?"), path) for sha, path in entries]


def _contents(repo: Path, shas: list[str]) -> dict[str, bytes]:
    """The raw contents of SHAS, read through one `git cat-file --batch`."""
    if not shas:
        return {}
    out = _git(repo, "cat-file", "--batch", data="".join(f"{sha}\n" for sha in shas).encode())
    found, pos = {}, 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        sha, _kind, size = out[pos:end].decode().split(" ")
        start = end + 1
        found[sha] = out[start:start + int(size)]
        pos = start + int(size) + 1
    return found


def scan_repo(repo: Path, found: list[Fragment] | None = None) -> list[str]:
    """One line per leak in the learner repository REPO: its working tree (files git would commit: tracked and
    untracked, not ignored) and every object reachable from any of its refs (branches, tags, remotes): every
    version of every file, every path, every commit and tag message. A history line names the blob: `git log
    --all --find-object=BLOB` shows the commits that hold it."""
    matcher = _Matcher(fragments() if found is None else found)
    if not (repo / ".git").exists():
        raise LeakScanError(f"{repo} is not a git repository: pass the learner repository's folder")
    problems = []
    objects = _objects(repo)
    # The working tree's files that no commit holds as they are: untracked, or changed since HEAD.
    loose = _git(repo, "ls-files", "-z", "--others", "--modified", "--exclude-standard").decode(errors="replace")
    for rel in sorted(set(filter(None, loose.split("\0")))):
        path = repo / rel
        if not path.is_file():
            continue
        if instructor_path(rel):
            problems.append(f"{rel}: an instructor file ({rel}) is in the learner repository")
            continue
        problem = matcher.problem(rel, readable_text(path))
        if problem:
            problems.append(problem)
    named: dict[str, str] = {}  # blob -> the first path that names it
    flagged_paths = set()
    for sha, kind, path in objects:
        if kind == "blob" and instructor_path(path) and path not in flagged_paths:
            flagged_paths.add(path)
            problems.append(f"history: {path}: an instructor file is in the history ({kind} {sha[:12]})")
        if kind == "blob":
            named.setdefault(sha, path)
    messages = [sha for sha, kind, _ in objects if kind in ("commit", "tag")]
    contents = _contents(repo, list(named) + messages)
    for sha in named:
        path = named[sha]
        problem = matcher.problem(f"history: {path} (blob {sha[:12]})", text_of(path, contents[sha]))
        if problem:
            problems.append(problem)
    for sha in messages:
        raw = contents[sha]
        message = raw.split(b"\n\n", 1)[1] if b"\n\n" in raw else b""
        problem = matcher.problem(f"history: the message of {sha[:12]}", normalize(message.decode(errors="replace")))
        if problem:
            problems.append(problem)
    return problems


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m handbook.site.leaks", description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", type=Path, help="a built learner site")
    parser.add_argument("--repo", type=Path, help="a learner repository (python -m handbook.site.learner_repo OUT)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.site is None and args.repo is None:
        parser.error("name a built learner site, a learner repository (--repo DIR), or both")
    for path, what in ((args.site, "site"), (args.repo, "repository")):
        if path is not None and not path.is_dir():
            print(f"leaks: error: {path} is not a folder (the learner {what} to scan)", file=sys.stderr)
            return 2
    found = fragments()
    problems = []
    try:
        if args.site is not None:
            problems += scan(args.site, found)
        if args.repo is not None:
            problems += [f"{args.repo}/{line}" for line in scan_repo(args.repo, found)]
    except LeakScanError as err:
        print(f"leaks: error: {err}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"leak: {line}")
    if not problems:
        scanned = " and ".join(str(p) for p in (args.site, args.repo) if p is not None)
        print(f"leaks: none in {scanned} ({len(found)} instructor fragments looked for)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
