"""Draw a recorded result as a chart: a `chart` object in a snippet's JSON output becomes an SVG.

    {"chart": {"title": "...", "x": {"label": "matrix size n", "unit": "", "log": true},   # "log" on y too
               "y": {"label": "throughput", "unit": "TFLOP/s"},
               "series": {"bf16": [[1024, 512.0], [2048, 700.1]], "fp32": [...]}}}
"""
import functools
import importlib.metadata
import io
import json
from pathlib import Path

from handbook import build_cache

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
