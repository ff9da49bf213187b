"""MkDocs hook (mkdocs.yml `hooks:`): page weight and keyboard access, applied to every built page.

- An image inlined as a `data:` URI (a recorded chart, a calculator's chart, a PNG a lab program drew, a notebook's
  output) becomes a file under assets/recorded/, named by the sha256 of its bytes: the browser caches it, pages that
  show the same chart share it, and the page's HTML stops carrying it as base64. It loads lazily.
- The notebook page's inline stylesheets (mkdocs-jupyter pastes ~600 KB of JupyterLab CSS into each notebook page)
  become one shared stylesheet under assets/stylesheets/, linked where the first one stood, so the cascade is
  unchanged and the browser downloads it once.
- A notebook's code and output blocks scroll sideways, so each takes keyboard focus (tabindex="0"), as Material's
  own code blocks do: a keyboard user can scroll them.
"""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

ASSETS = "assets/recorded"
STYLES = "assets/stylesheets"
DATA_IMG = re.compile(r'<img\b(?P<before>[^>]*?)\ssrc="data:(?P<type>image/(?:png|svg\+xml|jpeg|gif|webp));base64,'
                      r'(?P<data>[A-Za-z0-9+/=\s]+)"(?P<after>[^>]*)>')
EXTENSIONS = {"image/png": ".png", "image/svg+xml": ".svg", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}
NOTEBOOK = '<div class="jupyter-wrapper">'
STYLE = re.compile(r'<style(?:\s+type="text/css")?\s*>(?P<css>.*?)</style>', re.S)
PRE = re.compile(r"<pre(?=[\s>])(?![^>]*\btabindex=)")


def site_root(page_url: str) -> str:
    """The relative path from a page's URL (`labs/lab2/`, ``) to the site's root."""
    return "../" * page_url.count("/")


def write_once(site_dir: str, rel: str, data: bytes) -> None:
    path = Path(site_dir) / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def content_name(data: bytes, suffix: str) -> str:
    return hashlib.sha256(data).hexdigest()[:20] + suffix


def images_as_files(html: str, site_dir: str, root: str) -> str:
    def replace(m: re.Match) -> str:
        data = base64.b64decode(re.sub(r"\s", "", m["data"]))
        rel = f"{ASSETS}/{content_name(data, EXTENSIONS[m['type']])}"
        write_once(site_dir, rel, data)
        attrs = m["before"] + m["after"]
        extra = "" if "loading=" in attrs else ' loading="lazy"'
        return f'<img{m["before"]} src="{root}{rel}"{m["after"]}{extra}>'

    return DATA_IMG.sub(replace, html)


def notebook_styles_shared(html: str, site_dir: str, root: str) -> str:
    """The notebook's <style> blocks (they follow the notebook marker's article) as one linked stylesheet."""
    start = html.find('<article class="md-content__inner')
    end = html.find("</article>", start)
    if start < 0 or end < 0:
        return html
    article = html[start:end]
    blocks = [m["css"] for m in STYLE.finditer(article)]
    if not blocks:
        return html
    unique = list(dict.fromkeys(b.strip() for b in blocks))  # mkdocs-jupyter pastes the pygments CSS twice
    css = "\n".join(unique).encode()
    rel = f"{STYLES}/notebook-{content_name(css, '.css')}"
    write_once(site_dir, rel, css)
    first = [True]

    def replace(m: re.Match) -> str:
        if first[0]:
            first[0] = False
            return f'<link rel="stylesheet" href="{root}{rel}">'
        return ""

    article = STYLE.sub(replace, article)
    return html[:start] + article + html[end:]


def focusable_notebook_blocks(html: str) -> str:
    start = html.find(NOTEBOOK)
    if start < 0:
        return html
    return html[:start] + PRE.sub('<pre tabindex="0"', html[start:])


def on_post_page(output: str, page, config) -> str:
    root = site_root(page.url)
    site_dir = config["site_dir"]
    if "data:image/" in output:
        output = images_as_files(output, site_dir, root)
    if NOTEBOOK in output:
        output = notebook_styles_shared(output, site_dir, root)
        output = focusable_notebook_blocks(output)
    return output
