"""Chapter 4's programs, at unit level: the card-keyed datasheet figures and what the programs conclude from them."""
import json
import runpy
from pathlib import Path

import pytest

SNIPPETS = Path(__file__).resolve().parents[1] / "snippets" / "optimization"
ROOFLINE = SNIPPETS / "bottlenecks" / "02_roofline.py"


@pytest.fixture(scope="module")
def roofline():
    return runpy.run_path(str(ROOFLINE), run_name="roofline")


def run_roofline_on(card, monkeypatch, tmp_path, capsys):
    """main() as it runs on a GPU whose driver reports `card`."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: card)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [ROOFLINE.name])
    runpy.run_path(str(ROOFLINE), run_name="__main__")
    return capsys.readouterr().out, json.loads((tmp_path / "roofline.json").read_text())


def test_roofline_uses_the_balance_point_of_the_card_it_runs_on(monkeypatch, tmp_path, capsys):
    """On an H200 (4.8 TB/s) the balance point is 989/4.8 = 206 FLOP/byte, not the H100 SXM's 295."""
    out, result = run_roofline_on("NVIDIA H200", monkeypatch, tmp_path, capsys)
    assert "= 206 FLOP/byte" in out and "295" not in out
    assert list(result) == ["NVIDIA H200"]
    assert result["NVIDIA H200"]["cases"]["Linear 4096x4096, batch 256"]["bound"] == "compute"


def test_roofline_h100_sxm_and_h200_disagree_where_they_should(roofline):
    h100, h200 = roofline["verdicts"]("NVIDIA H100 80GB HBM3"), roofline["verdicts"]("NVIDIA H200")
    assert round(h100["balance_flop_per_byte"]["bf16"]) == 295 and round(h200["balance_flop_per_byte"]["bf16"]) == 206
    batch_256 = "Linear 4096x4096, batch 256"  # 227.6 FLOP/byte: between the two balance points
    assert h100["cases"][batch_256]["bound"] == "memory" and h200["cases"][batch_256]["bound"] == "compute"
    add = "fp32 add of two 8192x4096 tensors"
    assert h100["cases"][add]["bound"] == h200["cases"][add]["bound"] == "memory"


def test_roofline_refuses_a_card_it_has_no_figures_for(monkeypatch, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run_roofline_on("NVIDIA H200 NVL-X", monkeypatch, tmp_path, capsys)
    assert "no datasheet figures for 'NVIDIA H200 NVL-X'" in str(stop.value)


def test_roofline_keys_are_exact_driver_names(roofline):
    """'NVIDIA H200' must not match 'NVIDIA H200 NVL': a different board, with a lower bf16 peak."""
    sheet = roofline["DATASHEET"]
    assert sheet["NVIDIA H200"]["bf16"] != sheet["NVIDIA H200 NVL"]["bf16"]
    assert sheet["NVIDIA H200"]["hbm"] == 4.8e12 and sheet["NVIDIA H100 80GB HBM3"]["hbm"] == 3.35e12


def test_a_chart_can_have_a_log_y_axis(tmp_path, monkeypatch):
    """The measured roofline spans orders of magnitude on both axes: its chart asks for log scales, and gets them."""
    from handbook.recordings import charts

    monkeypatch.setenv("HANDBOOK_CACHE_DIR", "off")
    spec = {"title": "t", "x": {"label": "intensity", "unit": "FLOP/byte", "log": True},
            "y": {"label": "achieved", "unit": "TFLOP/s", "log": True},
            "series": {"measured": [[0.08, 0.3], [1, 3.0], [1000, 700.0]]}}
    linear = dict(spec, y={"label": "achieved", "unit": "TFLOP/s"})
    log_svg, linear_svg = charts._draw(json.dumps(spec)), charts._draw(json.dumps(linear))
    assert "10^{2}" in log_svg and "10^{2}" not in linear_svg  # decade ticks only on a log axis
