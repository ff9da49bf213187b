"""Build-time output of the CPU calculators (docs/capacity/): a marker in a page becomes what the program prints.

    <!-- calculator: capacity/cost/01_cost_per_useful_hour.py --utilization 0.5 --json cost.json -->
        the command, run now with these arguments in a scratch directory, its printed table in a console block,
        and every `chart` object in the JSON files it wrote, drawn as SVG (handbook/recordings/charts.py)
    <!-- price-table: capacity/cost/prices.toml -->
        the price file as tables: each price with its source link and "as of" date, then the example inputs
    <!-- calculator-markdown: security/exposure/01_node_security.py --table toolkit -->
        like calculator:, but what the program prints is Markdown (a table rendered from a data file), shown as is

Calculators are deterministic and take well under a second, so the page always shows what the code it includes
prints today: no output is typed or committed. A calculator that fails, or a price without a source or date,
fails the build with docs/page.md:LINE.
"""
import functools
import json
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import urlparse

from mkdocs.exceptions import PluginError

from handbook.harness import blocks
from handbook.site import build_cache
from handbook.recordings import charts
from handbook import recordings

CALCULATOR = "<!-- calculator:"
MARKDOWN = "<!-- calculator-markdown:"
PRICE_TABLE = "<!-- price-table:"
TIMEOUT_S = 60


def expand(markdown: str, page: Path, snippet_dir: Path) -> str:
    if CALCULATOR not in markdown and PRICE_TABLE not in markdown and MARKDOWN not in markdown:
        return markdown
    out = []
    for number, line in enumerate(markdown.split("\n"), start=1):
        stripped = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        where = f"{blocks.rel(page)}:{number}"
        if stripped.startswith(CALCULATOR) and stripped.endswith("-->"):
            shown = calculator_markdown(stripped[len(CALCULATOR):-3].strip(), snippet_dir, where)
        elif stripped.startswith(MARKDOWN) and stripped.endswith("-->"):
            shown = calculator_markdown(stripped[len(MARKDOWN):-3].strip(), snippet_dir, where, as_markdown=True)
        elif stripped.startswith(PRICE_TABLE) and stripped.endswith("-->"):
            shown = price_tables(snippet_dir / stripped[len(PRICE_TABLE):-3].strip(), where)
        else:
            out.append(line)
            continue
        out += [indent + s if s else "" for s in shown]
    return "\n".join(out)


def calculator_markdown(spec: str, snippet_dir: Path, where: str, as_markdown: bool = False) -> list[str]:
    words = shlex.split(spec)
    if not words:
        raise PluginError(f"{where}: a calculator marker names a snippet path, then its arguments")
    program = snippet_dir / words[0]
    if not program.is_file():
        raise PluginError(f"{where}: no calculator snippets/{words[0]}")
    # An argument naming a file of the repository (a recording) is shown as written, relative to the repository
    # root where a learner runs the command, and passed as an absolute path to the scratch-directory run.
    root = snippet_dir.parent
    waiting = [w for w in words[1:] if w.endswith(".rec.json") and pending_recording(root / w)]
    if waiting:  # the run would quote a recording that awaits a GPU run: say so instead of quoting it
        return [f'!!! note "Run when this page was built: waits for a recording"',
                f"    `python snippets/{words[0]}` reads `{waiting[0]}`, which awaits a re-recording on a GPU; its "
                "output will show here once the recording is made.", ""]
    args = tuple(str(root / w) if not w.startswith("-") and (root / w).is_file() else w for w in words[1:])
    # Everything the run can read: the program, the files beside it (its default price file) and the files it is
    # given, named as the marker names them, so that a copy of the repository elsewhere shares the cache entries.
    inputs = sorted(p for p in program.parent.iterdir() if p.is_file()) + [Path(a) for a in args if Path(a).is_file()]
    digest = build_cache.key(spec, *(part for f in inputs for part in (f.relative_to(root).as_posix(), f.read_bytes())))
    returncode, stdout, stderr, written = run(str(program), args, digest)
    if returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise PluginError(f"{where}: snippets/{words[0]} exited {returncode}: {last}")
    command = shlex.join(["python", f"snippets/{words[0]}", *words[1:]])
    if as_markdown:  # the program's own Markdown, then where it came from
        return [*stdout.rstrip("\n").split("\n"), "", f"<small>Rendered when this page was built: `{command}`</small>", ""]
    lines = ['```console title="Run when this page was built"', f"$ {command}", *stdout.rstrip("\n").split("\n"), "```", ""]
    for name in sorted(written):
        try:
            data = json.loads(written[name])
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "chart" in data:
            try:
                lines += charts.markdown(data["chart"])  # the chart, its data in words and as a table
            except charts.ChartError as err:
                raise PluginError(f"{where}: {name} from snippets/{words[0]}: {err}") from None
    return lines


def pending_recording(path: Path) -> bool:
    """A recording that does not exist yet, or awaits a re-recording of what has become another program."""
    if not path.exists():
        return True
    data = recordings.load(path)
    return bool(data.get("awaiting", {}).get("another_program"))


@functools.lru_cache(maxsize=64)
def run(program: str, args: tuple[str, ...], digest: str) -> tuple[int, str, str, dict]:
    """One run in a scratch directory; `digest` keys the caches (this process's and the disk's), so an edited
    calculator or input file runs again. Calculators use the standard library only: the interpreter is the rest."""
    entry = build_cache.key(sys.version, digest)
    value = build_cache.cached("calculators", entry, lambda: _run(program, args), keep=lambda v: v[0] == 0)
    return tuple(value)


def _run(program: str, args: tuple[str, ...]) -> tuple[int, str, str, dict]:
    with tempfile.TemporaryDirectory(prefix="calculator-") as scratch:
        try:
            done = subprocess.run([sys.executable, program, *args], cwd=scratch, capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return 124, "", f"timed out after {TIMEOUT_S} s", {}
        written = {p.name: p.read_text() for p in Path(scratch).glob("*.json")}
        return done.returncode, done.stdout, done.stderr, written


def price_tables(path: Path, where: str) -> list[str]:
    try:
        data = tomllib.loads(path.read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError) as err:
        raise PluginError(f"{where}: price file {path.name}: {err}") from None
    lines = ["| Price | Value | Unit | Source | As of |", "|---|---|---|---|---|"]
    for name, entry in data.get("prices", {}).items():
        missing = [k for k in ("label", "value", "unit", "source", "as_of") if k not in entry]
        if missing:
            raise PluginError(f"{where}: {path.name} [prices.{name}] has no {missing[0]}: every price needs its source and date")
        site = urlparse(entry["source"]).netloc.removeprefix("www.")
        note = f" ({entry['note']})" if entry.get("note") else ""
        lines.append(f"| {entry['label']} | {entry['value']:g} | {entry['unit']} | [{site}]({entry['source']}) | {entry['as_of']}{note} |")
    lines += ["", "| Example input | Value | Unit | Why it is an example |", "|---|---|---|---|"]
    for name, entry in data.get("assumptions", {}).items():
        lines.append(f"| {entry['label']} (`--{name.replace('_', '-')}`) | {entry['value']:g} | {entry['unit']} | {entry['note']} |")
    return lines + [""]
