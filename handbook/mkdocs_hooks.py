"""MkDocs hooks (mkdocs.yml `hooks:`): what learners see of the harness and the recorder.

- Fence options only the harness reads (requires, timeout, record, sim, notest, continuation, fixture:) are
  removed, so superfences sees plain display options; a snippet block is titled with its file name and a
  block with requires= says so in its title.
- Under each `record` block: the recorded output, its provenance line and any chart (a recording's JSON
  `chart` object, drawn as SVG at build time) — or a notice that it is stale or not recorded yet.
- docs/demos/index.md: `<!-- recordings-index -->` becomes a table of every recording with card, date,
  freshness and environment drift.
"""
import base64
import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

from handbook import blocks, charts, notebooks, recordings

FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INDEX_MARKER = "<!-- recordings-index -->"


def on_page_markdown(markdown, page, config, files):
    docs = Path(config.docs_dir)
    snippet_dir = Path(config.config_file_path).parent / "snippets"
    try:
        page_blocks = page_fences(Path(page.file.abs_src_path), markdown, snippet_dir)
        lines = markdown.split("\n")
        for block in reversed(page_blocks):  # bottom-up, so earlier line numbers stay valid
            indent = FENCE_OPEN.match(lines[block.line - 1])["indent"]
            if block.recorded:
                shown = recording_markdown(block)
                lines[block.end_line:block.end_line] = [indent + line if line else "" for line in shown]
            m = FENCE_OPEN.match(lines[block.line - 1])
            lines[block.line - 1] = f"{m['indent']}{m['fence']}{display_info(block)}"
        markdown = "\n".join(lines)
        if INDEX_MARKER in markdown:
            markdown = markdown.replace(INDEX_MARKER, recordings_index(docs, snippet_dir, Path(page.file.src_path)))
        return markdown
    except (blocks.BlockError, recordings.RecordingError, charts.ChartError) as err:
        raise PluginError(str(err)) from None


def page_fences(path: Path, markdown: str, snippet_dir: Path) -> list[blocks.Block]:
    return [blocks.parse_block(path, t, snippet_dir) for t in blocks.PageParser().parse(markdown) if t.type == "fence" and t.map]


def display_info(block: blocks.Block) -> str:
    shown = {k: v for k, v in block.options.items() if k in blocks.DISPLAY_OPTIONS}
    title = shown.get("title") or (block.snippet and block.snippet.path.name) or ""
    if block.requires:
        title = f"{title} · requires {block.requires.text}".lstrip(" ·")
    if title:
        shown["title"] = title
    return " ".join([block.lang] + [f'{k}="{v}"' for k, v in shown.items()])


def recording_markdown(block: blocks.Block) -> list[str]:
    """The lines shown under a recorded block, unindented."""
    rec = recordings.state(block.snippet.path)
    rerecord = f"`python -m handbook.record {blocks.rel(block.page)}` on a GPU machine"
    if rec.kind == "missing":
        return ["", '!!! note recording-missing "Not recorded yet"',
                f"    This block runs on a GPU and has no recording yet. Record it with {rerecord}.", ""]
    data = rec.data
    head = ['!!! example recording "Recorded output"'] if rec.kind == "fresh" else [
        '!!! warning recording "Recorded output · stale"',
        f"    The code changed after this was recorded; the output below is from the older code. Refresh with {rerecord}.", ""]
    out = ["", *head, f"    {rec.provenance_line}", "", "    ```text"]
    out += [f"    {line}" for line in data["stdout"].rstrip("\n").split("\n")]
    out += ["    ```", ""]
    for spec in charts.charts_in(data["artifacts"]):
        uri = "data:image/svg+xml;base64," + base64.b64encode(charts.svg(spec).encode()).decode()
        out += [f"    ![{spec['title']}]({uri}){{ .recording-chart }}", ""]
    images = {name: f"data:{a['media_type']};base64,{a['base64']}" for name, a in data["artifacts"].items() if "media_type" in a}
    reports = {name: a["text"] for name, a in data["artifacts"].items() if name.endswith(".md") and "text" in a}
    shown_in_reports = set()
    for name, text in reports.items():
        # A markdown report the program wrote (e.g. Lab 2's REPORT.md), its images inlined from the recording.
        for image, uri in images.items():
            if f"]({image})" in text:
                text, _ = text.replace(f"]({image})", f"]({uri})"), shown_in_reports.add(image)
        out += [f'    ??? abstract "{name}, as the program wrote it"', ""]
        out += [f"        {line}" if line else "" for line in demote_headings(text).split("\n")] + [""]
    for name, uri in images.items():
        if name not in shown_in_reports:
            out += [f"    ![{name}]({uri}){{ .recording-chart }}", ""]
    return out


def demote_headings(markdown: str) -> str:
    """A report's own headings go below the page's, so the page's table of contents stays the page's."""
    return re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m[1]) + 2) + " ", markdown, flags=re.M)


def recordings_index(docs: Path, snippet_dir: Path, index_src: Path) -> str:
    rows = []
    for page in blocks.pages(docs):
        for block in blocks.parse_page(page, snippet_dir):
            if block.recorded:
                rows.append((page, block, recordings.state(block.snippet.path)))
    recorded = [r.data["provenance"] for _, _, r in rows if r.data]
    newest = max(recorded, key=lambda p: p["date"], default={})
    depth = "../" * (len(index_src.parts) - 1)
    table = ["| Page | Snippet | Card | Recorded | Code | Environment |", "|---|---|---|---|---|---|"]
    for page, block, rec in rows:
        link = f"[{page.relative_to(docs).as_posix()}]({depth}{page.relative_to(docs).as_posix()})"
        if not rec.data:
            table.append(f"| {link} | `{block.snippet.path.name}` | — | not recorded | — | — |")
            continue
        p = rec.data["provenance"]
        env = f"torch {p['torch_version']}, driver {p['driver_version']}"
        drift = [k for k in ("torch_version", "driver_version", "cuda_version") if p.get(k) != newest.get(k)]
        if drift:
            env += " (differs from the newest recording: " + ", ".join(f"{k.split('_')[0]} {newest.get(k)}" for k in drift) + ")"
        card = f"{p['gpu_count']}× {p['gpu_model']}" if p.get("gpu_count", 1) > 1 else p["gpu_model"]
        table.append(f"| {link} | `{block.snippet.path.name}` | {card} | {p['date'][:10]} | {rec.kind} | {env} |")
    for notebook in sorted(docs.rglob("*.ipynb")):
        rel = notebook.relative_to(docs).as_posix()
        rec = json.loads(notebook.read_text(encoding="utf-8"))["metadata"].get(notebooks.KEY)
        if not rec:
            table.append(f"| [{rel}]({depth}{rel}) | the notebook's outputs | — | not recorded | — | — |")
            continue
        p = rec["provenance"]
        table.append(f"| [{rel}]({depth}{rel}) | the notebook's outputs | {p['gpu_model']} | {p['date'][:10]} | "
                     f"{notebooks.state(notebook)} | torch {p['torch_version']}, driver {p['driver_version']} |")
    return "\n".join(table)
