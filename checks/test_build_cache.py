"""The build's disk cache (handbook/site/build_cache.py): a hit only for the same inputs, a miss for any edit, no harm
from a damaged or unwritable cache, and calculators that need nothing but the standard library (their key's premise)."""
import ast
import sys

import pytest

from handbook import DOCS, SNIPPETS
from handbook.site import build_cache, calculators
from handbook.recordings import charts

SPEC = {"title": "t", "x": {"label": "n"}, "y": {"label": "v", "unit": "s"}, "series": {"a": [[1, 2.0], [2, 3.0]]}}
MARKER = "<!-- calculator: capacity/training-sizing/01_gpu_days.py -->"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(build_cache.ENV, str(tmp_path / "cache"))
    charts._svg.cache_clear()  # each build process starts with an empty in-memory cache; so does each test
    calculators.run.cache_clear()
    yield tmp_path / "cache"
    charts._svg.cache_clear()
    calculators.run.cache_clear()


def counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a: calls.append(a) or real(*a))
    return calls


def test_a_chart_is_drawn_once_for_the_same_spec_and_again_for_another(cache, monkeypatch):
    draws = counting(monkeypatch, charts, "_draw")
    first = charts.svg(SPEC)
    charts._svg.cache_clear()  # as a second build process would see it
    assert charts.svg(SPEC) == first and len(draws) == 1
    assert len(list((cache / "charts").glob("*.json"))) == 1
    changed = {**SPEC, "series": {"a": [[1, 2.0], [2, 3.5]]}}  # a re-recorded value
    assert charts.svg(changed) != first and len(draws) == 2


def test_a_calculator_runs_again_when_a_file_beside_it_changes(cache, monkeypatch, tmp_path):
    snippets = tmp_path / "snippets"
    calc = snippets / "capacity" / "x" / "01_calc.py"
    calc.parent.mkdir(parents=True)
    calc.write_text("from pathlib import Path\nprint(Path(__file__).with_name('rate.txt').read_text())\n")
    (calc.parent / "rate.txt").write_text("rate 1")
    runs = counting(monkeypatch, calculators, "_run")
    page = tmp_path / "docs" / "p.md"
    marker = "<!-- calculator: capacity/x/01_calc.py -->"

    def shown():
        calculators.run.cache_clear()  # a fresh build process each time
        return calculators.expand(marker, page, snippets)

    assert "rate 1" in shown() and "rate 1" in shown() and len(runs) == 1
    (calc.parent / "rate.txt").write_text("rate 2")  # the default input file the marker never names
    assert "rate 2" in shown() and len(runs) == 2


def test_a_failed_run_is_never_kept(cache, monkeypatch):
    runs = counting(monkeypatch, calculators, "_run")
    bad = "<!-- calculator: capacity/training-sizing/01_gpu_days.py --mfu 0 -->"
    for _ in range(2):
        calculators.run.cache_clear()
        with pytest.raises(Exception, match="exited 2"):
            calculators.expand(bad, DOCS / "capacity/training-sizing.md", SNIPPETS)
    assert len(runs) == 2 and not list(cache.rglob("*.json"))


def test_a_damaged_entry_is_recomputed_and_off_means_no_cache(cache, monkeypatch):
    draws = counting(monkeypatch, charts, "_draw")
    good = charts.svg(SPEC)
    (entry,) = (cache / "charts").glob("*.json")
    entry.write_text('"<svg trunc')  # a half-written file from a killed build
    charts._svg.cache_clear()
    assert charts.svg(SPEC) == good and len(draws) == 2
    monkeypatch.setenv(build_cache.ENV, "off")
    assert build_cache.directory() is None
    charts._svg.cache_clear()
    assert charts.svg(SPEC) == good and len(draws) == 3


def test_an_unwritable_cache_only_costs_the_computation(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(build_cache.ENV, str(blocker / "cache"))
    assert build_cache.cached("charts", build_cache.key("k"), lambda: "value") == "value"


def test_keys_separate_their_parts():
    assert build_cache.key("ab", "c") != build_cache.key("a", "bc")
    assert build_cache.key("a", b"b") == build_cache.key(b"a", "b")


def test_calculators_import_only_the_standard_library():
    """The cache keys a calculator run on its files and the interpreter's version: a third-party import would make
    that key miss a library upgrade."""
    for program in sorted((SNIPPETS / "capacity").rglob("*.py")):
        tree = ast.parse(program.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        outside = sorted(names - set(sys.stdlib_module_names))
        assert not outside, f"{program.relative_to(SNIPPETS)} imports {outside}: calculators use the standard library only"
