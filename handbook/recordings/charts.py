"""Draw a recorded result as a chart: a `chart` object in a snippet's JSON output becomes an SVG, with its data in
words and as a table.

    {"chart": {"title": "...", "x": {"label": "matrix size n", "unit": "", "log": true},   # "log" on y too
               "y": {"label": "throughput", "unit": "TFLOP/s"},
               "series": {"bf16": [[1024, 512.0], [2048, 700.1]], "fp32": [...]}}}

markdown(spec) is what a page shows: the image, whose text alternative states what the chart plots and each series'
key figures (first, last and peak value, read from the recording like every figure), then the numbers one click
away as a table in a folded box. A screen-reader user gets the data, not the title.
"""
import functools
import html
import importlib.metadata
import io
import json
import math
from pathlib import Path

from handbook.site import build_cache

REQUIRED = ("title", "x", "y", "series")


class ChartError(ValueError):
    pass


def axis_label(axis: dict) -> str:
    return f"{axis['label']} ({axis['unit']})" if axis.get("unit") else axis["label"]


@functools.lru_cache(maxsize=64)
def _svg(spec_json: str) -> str:
    """The SVG, from the disk cache when this spec was drawn before by this code and this matplotlib."""
    entry = build_cache.key(spec_json, Path(__file__).read_bytes(), importlib.metadata.version("matplotlib"))
    return build_cache.cached("charts", entry, lambda: _draw(spec_json))


def _draw(spec_json: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "mod107"  # fixed clip-path ids: the same data gives the same bytes
    from matplotlib import pyplot as plt

    spec = json.loads(spec_json)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    for name, points in spec["series"].items():
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", label=name)
    if spec["x"].get("log"):
        ax.set_xscale("log", base=2)
    if spec["y"].get("log"):  # a roofline spans orders of magnitude on both axes
        ax.set_yscale("log", base=10)
    ax.set_xlabel(axis_label(spec["x"]))
    ax.set_ylabel(axis_label(spec["y"]))
    ax.set_title(spec["title"])
    ax.grid(True, alpha=0.3)
    if len(spec["series"]) > 1:
        ax.legend()
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})  # and no date
    plt.close(fig)
    return out.getvalue()


def svg(spec: dict) -> str:
    missing = [k for k in REQUIRED if k not in spec]
    if missing or not all("label" in spec[a] for a in ("x", "y")):
        raise ChartError(f"chart spec needs {', '.join(REQUIRED)} and axis labels (missing {', '.join(missing) or 'a label'})")
    return _svg(json.dumps(spec, sort_keys=True))


def charts_in(artifacts: dict) -> list[dict]:
    return [a["json"]["chart"] for a in artifacts.values() if isinstance(a.get("json"), dict) and "chart" in a["json"]]


def number(value) -> str:
    """A recorded value as the page states it: thousands separated, about four significant figures."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".") if size < 10 else f"{value:.1f}"
    return f"{value:.3g}"


def _with_unit(value, axis: dict) -> str:
    unit = axis.get("unit")
    if not unit:
        return number(value)
    return f"{number(value)} {unit}" if unit != "%" else f"{number(value)} %"


def description(spec: dict) -> str:
    """The text alternative: what is plotted against what, then each series' first, last and peak point."""
    x, y = spec["x"], spec["y"]
    scale = ", logarithmic scale" if x.get("log") else ""
    parts = [f"Chart: {spec['title']}. {axis_label(y)} against {axis_label(x)}{scale}."]
    for name, points in spec["series"].items():
        points = [p for p in points if len(p) == 2]
        if not points:
            parts.append(f"{name}: no points.")
            continue
        (x0, y0), (x1, y1) = points[0], points[-1]
        at = lambda value: f"at {x['label']} = {_with_unit(value, x)}"  # noqa: E731
        text = f"{name}: {_with_unit(y0, y)} {at(x0)}"
        if len(points) > 1:
            text += f", {_with_unit(y1, y)} {at(x1)}"
        numeric = [p for p in points if isinstance(p[1], (int, float)) and not isinstance(p[1], bool)]
        if len(points) > 2 and numeric:
            top = max(numeric, key=lambda p: p[1])
            if top not in (points[0], points[-1]):
                text += f"; peak {_with_unit(top[1], y)} {at(top[0])}"
        parts.append(text + ".")
    parts.append("The numbers are in the table under the chart.")
    return " ".join(parts)


def table(spec: dict) -> list[str]:
    """The chart's numbers: one row per x value, one column per series."""
    xs = list(dict.fromkeys(p[0] for points in spec["series"].values() for p in points if len(p) == 2))
    values = {name: {p[0]: p[1] for p in points if len(p) == 2} for name, points in spec["series"].items()}
    unit = f" ({spec['y']['unit']})" if spec["y"].get("unit") else ""
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    head = [cell(axis_label(spec["x"]))] + [cell(f"{name}{unit}") for name in spec["series"]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for xv in xs:
        row = [number(xv)] + [number(values[name][xv]) if xv in values[name] else "—" for name in spec["series"]]
        rows.append("| " + " | ".join(cell(c) for c in row) + " |")
    return rows


def image_html(uri: str, alt: str) -> str:
    """An <img> with its text alternative (raw HTML: any character of a title or a label is safe in it)."""
    return f'<img class="recording-chart" src="{uri}" alt="{html.escape(alt, quote=True)}">'


def markdown(spec: dict) -> list[str]:
    """What a page shows for a chart: the image with its description, then the data table one click away."""
    import base64

    uri = "data:image/svg+xml;base64," + base64.b64encode(svg(spec).encode()).decode()
    return [image_html(uri, description(spec)), "",
            f'??? info "Chart data: {spec["title"].replace(chr(34), chr(39))} (table)"', "",
            *(f"    {row}" for row in table(spec)), ""]
