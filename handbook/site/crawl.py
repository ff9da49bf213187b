"""Test helpers for the built site: copy the handbook into a scratch git repository, serve a folder over HTTP on
127.0.0.1, and crawl a served site for broken links and anchors. Used by checks/test_links.py,
checks/test_browser.py and checks/test_release.py; nothing here touches the real repository's git.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import shutil
import subprocess
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

# Never copied into a scratch repository: git metadata, environments, build output, caches.
SKIP_DIRS = {".git", ".venv", "venv", "site", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
             "node_modules", ".cache"}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "handbook checks", "GIT_AUTHOR_EMAIL": "checks@handbook.invalid",
    "GIT_COMMITTER_NAME": "handbook checks", "GIT_COMMITTER_EMAIL": "checks@handbook.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git_env() -> dict:
    return {**os.environ, **GIT_ENV}


def run_git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, env=git_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo} failed: {proc.stderr.strip()}")
    return proc.stdout


def copy_working_tree(src: Path, dst: Path) -> Path:
    """Copy what a commit of src would hold (tracked and untracked files git does not ignore) into dst.
    Only reads src's git; outside a git repository, copies everything but SKIP_DIRS."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=src,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True,
                        ignore=lambda d, names: {n for n in names if n in SKIP_DIRS or n.endswith(".egg-info")})
        return dst
    for rel in filter(None, listed.stdout.split("\0")):
        source = src / rel
        if rel.startswith(".release-mkdocs-") or not (source.is_file() or source.is_symlink()):
            continue  # a release's temporary config, or a tracked file deleted in the working tree
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dst / rel, follow_symlinks=False)
    return dst


def init_repo(repo: Path, message: str = "handbook snapshot") -> str:
    """git init + commit everything on a `main` branch; returns the commit."""
    run_git(repo, "init", "--quiet", "--initial-branch=main")
    return commit_all(repo, message)


def commit_all(repo: Path, message: str) -> str:
    run_git(repo, "add", "--all")
    run_git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    return run_git(repo, "rev-parse", "HEAD").strip()


def nav_pages(nav) -> list[str]:
    """Every docs-relative page (.md or notebook) that mkdocs.yml's nav names."""
    found = []
    if isinstance(nav, str):
        if nav.endswith((".md", ".ipynb")) and "://" not in nav:
            found.append(nav)
    elif isinstance(nav, list):
        for item in nav:
            found += nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            found += nav_pages(value)
    return found


def load_mkdocs_yml(root: Path) -> dict:
    import yaml
    from mike import mkdocs_utils

    with open(root / "mkdocs.yml", "rb") as f:
        return yaml.load(f, Loader=mkdocs_utils.RoundTripLoader)


def export_branch(repo: Path, branch: str, dst: Path) -> Path:
    """The files of `branch` (symlinks kept, as a web host serves them) unpacked into dst."""
    data = subprocess.run(["git", "archive", "--format=tar", branch], cwd=repo, capture_output=True, check=True).stdout
    dst.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dst, filter="data")
    return dst


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve directory on 127.0.0.1 at a free port; yields the base URL (ending in /)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---- the crawler ---------------------------------------------------------------------------------------------

class _PageParser(HTMLParser):
    LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src", "iframe": "src"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        key = self.LINK_ATTRS.get(tag)
        if key and attrs.get(key) is not None:
            self.links.append((tag, attrs[key]))


@dataclass
class Crawl:
    pages: dict[str, set[str]] = field(default_factory=dict)  # page URL -> its element ids
    checked: dict[str, int] = field(default_factory=dict)  # every internal URL fetched -> HTTP status
    broken: list[str] = field(default_factory=list)  # "page: <tag> url: why"
    html: dict[str, str] = field(default_factory=dict)  # page URL -> its HTML


def _fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, "", b""


def crawl(start: str, scope: str | None = None) -> Crawl:
    """Fetch every page reachable from `start` whose URL starts with `scope` (default: start's folder); check that
    every internal link, image, stylesheet and script of those pages loads (HTTP 200) and that every #anchor
    exists on its target page. Links to other hosts are not followed."""
    scope = scope or start.rsplit("/", 1)[0] + "/"
    origin = urllib.parse.urlsplit(start)[:2]
    result, queue, anchors = Crawl(), [start], []
    while queue:
        url = queue.pop()
        if url in result.checked:
            continue
        status, ctype, body = _fetch(url)
        result.checked[url] = status
        if status != 200 or ctype != "text/html" or not url.startswith(scope):
            continue
        parser = _PageParser()
        html = body.decode("utf-8", errors="replace")
        parser.feed(html)
        result.pages[url], result.html[url] = parser.ids, html
        for tag, link in parser.links:
            absolute = urllib.parse.urljoin(url, link)
            parts = urllib.parse.urlsplit(absolute)
            if parts.scheme not in ("http", "https") or (parts.scheme, parts.netloc) != origin:
                continue
            target = urllib.parse.urlunsplit(parts._replace(fragment="", query=""))
            if target not in result.checked:
                queue.append(target)
            if parts.fragment and tag == "a":
                anchors.append((url, link, target, urllib.parse.unquote(parts.fragment)))
            result.__dict__.setdefault("_sources", {}).setdefault(target, (url, tag, link))
    sources = result.__dict__.pop("_sources", {})
    for target, status in result.checked.items():
        if status != 200:
            page, tag, link = sources.get(target, (start, "start", target))
            hint = ""
            if urllib.parse.urlsplit(link).path.endswith((".md", ".ipynb")):
                hint = (" (a source-file link left unrewritten: in a notebook, mkdocs-jupyter keeps links as written,"
                        " so link the page's URL, e.g. ../metrics/ for metrics.md)")
            result.broken.append(f"{page}: <{tag}> {link} -> HTTP {status}{hint}")
    for page, link, target, fragment in anchors:
        if result.checked.get(target) == 200 and target in result.pages and fragment not in result.pages[target]:
            result.broken.append(f"{page}: <a> {link} -> no element with id {fragment!r} on {target}")
    return result
