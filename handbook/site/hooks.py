"""MkDocs hooks (mkdocs.yml `hooks:`): what learners see of the harness and the recorder.

- Fence options only the harness reads (requires, timeout, record, sim, notest, continuation, fixture:) are
  removed, so superfences sees plain display options; a snippet block is titled with its file name and a
  block with requires= says so in its title.
- Under each `record` block: the recorded output, its provenance line and any chart (a recording's JSON
  `chart` object, drawn as SVG at build time) — or a notice that it is stale or not recorded yet.
- In prose, `{{ rec:SNIPPET:KEYPATH | SPEC }}` becomes the recorded figure (handbook/recordings/figures.py), so no measured
  figure is typed; a missing recording or key fails the build with docs/page.md:LINE.
- `{{ learner_repo }}` becomes the learner repository's clone URL (mkdocs.yml `extra.learner_repo`), so pages tell
  learners to clone that repository, never the instructors' source (handbook/site/learner_repo); with a backslash
  before it, the token shows as it is.
- docs/demos/index.md: `<!-- recordings-index -->` becomes a table of every recording with its headline figure
  (docs/demos/headlines.toml), card, date, freshness and environment drift.
"""
import json
import re
import tomllib
from pathlib import Path

from mkdocs.exceptions import PluginError

from handbook.harness import blocks, fence_options, includes
from handbook.site import calculators
from handbook.recordings import charts, figures, image_text, notebooks
from handbook import recordings

FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INDEX_MARKER = "<!-- recordings-index -->"
OPTIONS_MARKER = "<!-- fence-options -->"  # docs/authors/index.md: the fence options, from fence_options.py
GRAMMAR_MARKER = "<!-- include-grammar -->"  # docs/authors/index.md: the include grammar, from includes.py
HEADLINES = "demos/headlines.toml"
LEARNER_REPO = "{{ learner_repo }}"  # in a page: the learner repository's clone URL (mkdocs.yml extra.learner_repo)


def on_page_markdown(markdown, page, config, files):
    docs = Path(config.docs_dir)
    snippet_dir = Path(config.config_file_path).resolve().parent / "snippets"  # -f may name the config relatively
    if LEARNER_REPO in markdown:
        url = (config.extra or {}).get("learner_repo")
        escaped = markdown.count("\\" + LEARNER_REPO)  # \{{ learner_repo }} shows the token itself
        if not url and markdown.count(LEARNER_REPO) > escaped:
            raise PluginError(f"docs/{page.file.src_uri}: {LEARNER_REPO} needs extra.learner_repo in mkdocs.yml (the "
                              "learner repository's clone URL)")
        parts = markdown.split("\\" + LEARNER_REPO)
        markdown = LEARNER_REPO.join(part.replace(LEARNER_REPO, url or "") for part in parts)
    try:
        markdown = figures.render(markdown, Path(page.file.abs_src_path), docs, snippet_dir)
        page_blocks = page_fences(Path(page.file.abs_src_path), markdown, snippet_dir)
        lines = markdown.split("\n")
        for block in reversed(page_blocks):  # bottom-up, so earlier line numbers stay valid
            indent = FENCE_OPEN.match(lines[block.line - 1])["indent"]
            if block.recorded:
                shown = recording_markdown(block)
                lines[block.end_line:block.end_line] = [indent + line if line else "" for line in shown]
            m = FENCE_OPEN.match(lines[block.line - 1])
            lines[block.line - 1] = f"{m['indent']}{m['fence']}{display_info(block)}"
            if "fold" in block.options:
                lines[block.line - 1:block.end_line] = folded(block, lines[block.line - 1:block.end_line], indent)
        markdown = "\n".join(lines)
        markdown = calculators.expand(markdown, Path(page.file.abs_src_path), snippet_dir)  # docs/capacity/
        markdown = markdown.replace(OPTIONS_MARKER, fence_options.table())
        grammar = re.sub(r"^(\s*)--8<--|--8<--(?= \[(?:start|end):)", lambda m: (m[1] or "") + ";--8<--",
                         includes.GRAMMAR, flags=re.M)  # pymdownx's escape: shown, never included or removed
        markdown = markdown.replace(GRAMMAR_MARKER, f"```text\n{grammar}```")
        if INDEX_MARKER in markdown:
            markdown = markdown.replace(INDEX_MARKER, recordings_index(docs, snippet_dir, Path(page.file.src_path)))
        return markdown
    except (blocks.BlockError, recordings.RecordingError, charts.ChartError, figures.FigureError) as err:
        raise PluginError(str(err)) from None


def page_fences(path: Path, markdown: str, snippet_dir: Path) -> list[blocks.Block]:
    return [blocks.parse_block(path, t, snippet_dir) for t in blocks.PageParser().parse(markdown) if t.type == "fence" and t.map]


def folded(block: blocks.Block, fence: list[str], indent: str) -> list[str]:
    """A `fold` block inside a closed details box; its recorded output, inserted after the fence, stays outside.
    The whole program stays out of the search index too: its lines are no answer to a search, and every page would
    load their weight (the index is part of each page's cold load)."""
    if block.snippet:
        length = len(block.snippet.path.read_text(encoding="utf-8").splitlines())
        summary = f"The whole program: {block.snippet.path.name} ({length} lines)"
    else:
        summary = f"The whole {block.lang or 'block'} ({block.end_line - block.line - 1} lines)"
    inner = [f"{indent}    {line[len(indent):]}" if line.strip() else "" for line in fence]
    return [f"{indent}<div data-search-exclude markdown>", "", f'{indent}??? abstract "{summary}"', "", *inner, "",
            f"{indent}</div>", ""]


def display_info(block: blocks.Block) -> str:
    shown = {k: v for k, v in block.options.items() if k in fence_options.RENDERER}
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
    if rec.shows_nothing:
        return ["", '!!! note recording-missing "Not recorded since it changed"',
                f"    This program changed into another after its last recording ({data['provenance']['date'][:10]} on "
                f"{data['provenance']['gpu_model']}), whose output would describe something else; it awaits a "
                f"re-recording: {data['awaiting']['reason']}. Record it with {rerecord}.", ""]
    if rec.kind == "fresh":
        head = ['!!! example recording "Recorded output"']
    elif rec.kind == "awaiting":
        head = [f'!!! warning recording-awaiting "Recorded output · awaiting re-recording on {recordings.gpu_count(data["awaiting"]["gpus"])}"',
                f"    This output was {rec.awaiting_line}.", ""]
    else:
        head = ['!!! warning recording "Recorded output · stale"',
                f"    The code changed after this was recorded; the output below is from the older code. Refresh with {rerecord}.", ""]
    out = ["", *head, f"    {rec.provenance_line}", "", "    ```text"]
    out += [f"    {line}" for line in data["stdout"].rstrip("\n").split("\n")]
    out += ["    ```", ""]
    # Charts: the image with its data in words, then its numbers as a table (handbook/recordings/charts.py). The build inlines
    # them as data: URIs; handbook/site/a11y_hook.py turns every one into a cached file.
    for spec in charts.charts_in(data["artifacts"]):
        out += [f"    {line}" if line else "" for line in charts.markdown(spec)]
    images = {name: f"data:{a['media_type']};base64,{a['base64']}" for name, a in data["artifacts"].items() if "media_type" in a}
    # Images a program drew itself (Lab 2's REPORT.md charts) have no chart spec: their text alternative, with its
    # figures, is written in docs/demos/image-text.toml and rendered from this recording.
    alts = {name: image_text.alt(block.snippet.path, name) for name in images}
    reports = {name: a["text"] for name, a in data["artifacts"].items() if name.endswith(".md") and "text" in a}
    shown_in_reports = set()
    for name, text in reports.items():
        # A markdown report the program wrote (e.g. Lab 2's REPORT.md), its images inlined from the recording.
        for image, uri in images.items():
            pattern = re.compile(rf"!\[[^\]]*\]\({re.escape(image)}\)")
            if pattern.search(text):
                text = pattern.sub(lambda _: charts.image_html(uri, alts[image]), text)
                shown_in_reports.add(image)
        out += [f'    ??? abstract "{name}, as the program wrote it"', ""]
        out += [f"        {line}" if line else "" for line in demote_headings(text).split("\n")] + [""]
    for name, uri in images.items():
        if name not in shown_in_reports:
            out += [f"    {charts.image_html(uri, alts[name])}", ""]
    return out


def demote_headings(markdown: str) -> str:
    """A report's own headings go below the page's, so the page's table of contents stays the page's."""
    return re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m[1]) + 2) + " ", markdown, flags=re.M)


def recordings_index(docs: Path, snippet_dir: Path, index_src: Path) -> str:
    """One row a recording, narrow enough for a laptop: where, its headline figure, card and date, state."""
    headlines = load_headlines(docs)
    rows = []
    for page in blocks.pages(docs):
        for block in blocks.parse_page(page, snippet_dir):
            if block.recorded:
                rows.append((page, block, recordings.state(block.snippet.path)))
    recorded = [r.data["provenance"] for _, _, r in rows if r.data]
    newest = max(recorded, key=lambda p: p["date"], default={})
    depth = "../" * (len(index_src.parts) - 1)
    table = ["| Recording | Headline | Card · date | State |", "|---|---|---|---|"]
    for page, block, rec in rows:
        rel = page.relative_to(docs).as_posix()
        where = f"[{rel.removesuffix('.md')}]({depth}{rel})<br>`{block.snippet.path.name}`"
        if not rec.data:
            table.append(f"| {where} | — | — | not recorded |")
            continue
        key = block.snippet.path.relative_to(snippet_dir).with_suffix("").as_posix()
        headline = render_headline(headlines, key, docs, snippet_dir)
        p = rec.data["provenance"]
        card = figures.provenance_value(rec.data, "cards").replace("NVIDIA ", "")
        drift = [f"{k.split('_')[0]} {p.get(k)} (newest {newest.get(k)})" for k in ("torch_version", "driver_version", "cuda_version")
                 if p.get(k) != newest.get(k)]
        state = {"fresh": "fresh", "stale": "**stale**",
                 "awaiting": f"awaiting re-recording on {recordings.gpu_count(rec.data.get('awaiting', {}).get('gpus', 0))}"}[rec.kind]
        table.append(f"| {where} | {headline} | {card} · {p['date'][:10]} | {'<br>'.join([state, *drift])} |")
    for notebook in sorted(docs.rglob("*.ipynb")):
        rel = notebook.relative_to(docs).as_posix()
        rec = json.loads(notebook.read_text(encoding="utf-8"))["metadata"].get(notebooks.KEY)
        where = f"[{rel}]({depth}{rel})<br>the notebook's outputs"
        if not rec:
            table.append(f"| {where} | — | — | not recorded |")
            continue
        p = rec["provenance"]
        table.append(f"| {where} | the profiled step, cell by cell | {p['gpu_model'].replace('NVIDIA ', '')} · {p['date'][:10]} "
                     f"| {notebooks.state(notebook)} |")
    return "\n".join(table)


def load_headlines(docs: Path) -> dict:
    path = docs / HEADLINES
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PluginError(f"{blocks.rel(path)}: {err}") from None


def render_headline(headlines: dict, key: str, docs: Path, snippet_dir: Path) -> str:
    """A recording's headline: its `headline` template in headlines.toml, its figures resolved like a page's."""
    entry = headlines.get(key)
    source = blocks.rel(docs / HEADLINES)
    if not isinstance(entry, dict) or not isinstance(entry.get("headline"), str):
        raise PluginError(f'{source}: no headline for {key}: add ["{key}"] headline = "..." with its figure references')
    try:
        return figures.render(entry["headline"], docs / f"{Path(key).parent}.md", docs, snippet_dir)
    except figures.FigureError as err:
        raise PluginError(f"{source}: [{key}]: {str(err).partition(': ')[2]}") from None
