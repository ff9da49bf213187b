"""Text alternatives for the images a recorded program drew itself (the PNG charts in Lab 2's and Lab 3's reports).

A `chart` object in a recording carries its data, so handbook/recordings/charts.py describes it. A PNG has only pixels: its
description is written once, in docs/demos/image-text.toml, as prose whose figures are figure references
(`{{ rec:SNIPPET:KEYPATH | SPEC }}`, handbook/recordings/figures.py) into the same recording, so the words say what the image
shows with the numbers of the run that drew it:

    ["labs/lab2/04_experiment"."stage_gains.png"]
    alt = "Bar chart: samples/s per stage ... {{ rec:04_experiment:lab2_results.json/stages/0/samples_per_s | ,.0f }} ..."

A recorded image without an entry fails the build naming the image, the snippet and the entry to add.
"""
from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from handbook.recordings import figures

FILE = "demos/image-text.toml"  # under docs/ (mkdocs.yml exclude_docs: data, not a page)


class ImageTextError(figures.FigureError):
    """An image with no text alternative, or one whose figure references do not resolve."""


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ImageTextError(f"docs/{FILE}: {err}") from None


def entries(docs: Path) -> dict:
    path = docs / FILE
    return _load(path, path.stat().st_mtime if path.exists() else 0.0) if path.exists() else {}


def alt(snippet: Path, image: str) -> str:
    """The text alternative of IMAGE, an image file in SNIPPET's recording (snippets/<section>/<page>/NN_x.py)."""
    snippet_dir = snippet.parents[2]
    docs = snippet_dir.parent / "docs"
    key = snippet.relative_to(snippet_dir).with_suffix("").as_posix()
    entry = entries(docs).get(key, {}).get(image)
    if not isinstance(entry, dict) or not isinstance(entry.get("alt"), str) or not entry["alt"].strip():
        raise ImageTextError(f"docs/{FILE}: {image} in the recording of snippets/{key}.py has no text alternative: "
                             f'add ["{key}"."{image}"] alt = "..." saying what it shows, its figures as '
                             "{{ rec:... }} references")
    page = docs / f"{Path(key).parent}.md"  # bare NN_name references resolve in the snippet's own folder

    def figure(m) -> str:
        try:
            return figures.resolve(m["body"], page, docs, snippet_dir).text
        except LookupError as err:
            raise ImageTextError(f"docs/{FILE}: [\"{key}\".\"{image}\"]: figure reference {m[0]}: {err}") from None

    return " ".join(figures.REF.sub(figure, entry["alt"]).split())
