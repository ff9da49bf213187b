"""Simulator scenario values that come from a real GPU's recording: resolved at load, errors in one line."""
import json
from pathlib import Path

import pytest

from handbook.gpusim import from_recordings, scenario

ROOT = Path(__file__).resolve().parents[1]
BUSY_REC = ROOT / "snippets" / "fundamentals" / "compute" / "02_busy_vs_utilized.rec.json"
REFERENCE = '{recording = "fundamentals/compute/02_busy_vs_utilized", key = "busy_vs_utilized.json/busy bf16 matmul/%s"}'


def write_scenario(tmp_path, value: str) -> str:
    path = tmp_path / "recorded.toml"
    path.write_text(f'''description = "one GPU whose SM activity comes from a recording"
[gpu_defaults]
model = "NVIDIA H100 80GB HBM3"
memory_total_mib = 81559
power_limit_w = 700
sm_clock_max_mhz = 1980
mem_clock_max_mhz = 2619
temperature_slowdown_c = 87
temperature_shutdown_c = 92
[[gpus]]
gpm_sm_util_pct = {value}
''', encoding="utf-8")
    return str(path)


def test_shipped_scenarios_take_gpm_values_from_the_recording():
    busy = json.loads(BUSY_REC.read_text(encoding="utf-8"))["artifacts"]["busy_vs_utilized.json"]["json"]["busy bf16 matmul"]
    for name in ("busy-training", "xid-events"):
        [gpu] = scenario.load(name).gpus
        assert gpu.value("gpm_sm_util_pct", 5.0) == busy["sm_activity"]
        assert gpu.value("gpm_sm_occupancy_pct", 5.0) == busy["sm_occupancy"]
        assert gpu.value("gpm_tensor_util_pct", 5.0) == busy["tensor_activity"]


def test_a_reference_inside_keyframes_resolves(tmp_path):
    busy = json.loads(BUSY_REC.read_text(encoding="utf-8"))["artifacts"]["busy_vs_utilized.json"]["json"]["busy bf16 matmul"]
    [gpu] = scenario.load(write_scenario(tmp_path, f"[[0, 0], [10, {REFERENCE % 'sm_activity'}]]")).gpus
    assert gpu.value("gpm_sm_util_pct", 5.0) == pytest.approx(busy["sm_activity"] / 2)


@pytest.mark.parametrize("value, message", [
    ('{recording = "fundamentals/compute/99_nothing", key = "x.json/y"}', "no recording .*99_nothing.rec.json: record"),
    ('{recording = "fundamentals/compute/02_busy_vs_utilized", key = "nope.json/x"}', "has no JSON file 'nope.json'"),
    (REFERENCE % "no such key", "has no key 'no such key' in busy_vs_utilized.json/busy bf16 matmul"),
    ('{recording = "fundamentals/compute/02_busy_vs_utilized", key = "busy_vs_utilized.json/busy bf16 matmul"}',
     "is {.*}, not a number"),
])
def test_a_bad_reference_is_one_line_naming_the_scenario_and_key(tmp_path, value, message):
    with pytest.raises(scenario.ScenarioError, match=message) as err:
        scenario.load(write_scenario(tmp_path, value))
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(tmp_path / "recorded.toml")) and ": gpus[0].gpm_sm_util_pct: " in text


def test_installed_without_a_checkout_says_where_recordings_are(tmp_path, monkeypatch):
    monkeypatch.setattr(from_recordings, "snippets_dir", lambda: None)  # what an installed package finds
    with pytest.raises(scenario.ScenarioError, match="ships with a checkout of the handbook.*HANDBOOK_SNIPPETS"):
        scenario.load("busy-training")
    monkeypatch.undo()
    monkeypatch.setenv(from_recordings.SNIPPETS_ENV, str(tmp_path))  # pointed at a folder without the recording
    with pytest.raises(scenario.ScenarioError, match=f"no recording {tmp_path}/fundamentals/compute/02_busy_vs_utilized"):
        scenario.load("busy-training")
