"""Lab 1 monitoring, for real: the exporter (snippets/labs/lab1/02_gpu_exporter.py) scraped by a real Prometheus
through the validation script (snippets/labs/lab1/03_validate_monitoring.py) on simulator scenarios; promtool on
the config, the rules and their unit tests; the dashboard's PromQL against what the exporter exposes; and proof
that a renamed metric or a broken alert rule makes these checks fail."""
import functools
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from handbook.gpusim import scenario

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "snippets/labs/lab1"
EXPORTER = ROOT / "snippets/labs/lab1/02_gpu_exporter.py"
VALIDATOR = ROOT / "snippets/labs/lab1/03_validate_monitoring.py"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                      reason="prometheus/promtool missing: run checks/install-system-deps.sh")
# One validation per scenario, all at once (each waits about 5 s for Prometheus's first scrape).
RUNS = {
    "healthy-idle": ["--expect-quiet"],
    "busy-training": ["--expect-quiet"],
    "thermal-throttle@200": ["--expect-alert", "GpuThermalSlowdown", "--expect-alert", "GpuTemperatureHigh"],
    "ecc-errors@200": ["--expect-alert", "GpuUncorrectableEccErrors", "--expect-alert", "GpuRowRemapPending",
                       "--expect-alert", "GpuRowRemapFailed"],
    "xid-events": ["--expect-alert", "GpuXidError", "--expect-alert", "GpuXidApplicationError"],
    "gpu-lost@28": ["--expect-alert", "GpuLost", "--expect-alert", "GpuXidError"],
    "no-gpu": ["--expect-alert", "GpuExporterNvmlDown"],
    "8gpu-one-hot@150": ["--expect-alert", "GpuThermalSlowdown", "--expect-alert", "GpuTemperatureHigh"],
    "allocated-idle": ["--expect-alert", "GpuAllocatedButIdle"],
}


def simulated(spec: str, *command: str) -> list[str]:
    return [sys.executable, "-m", "handbook.gpusim", "run", spec, "--", *command]


@pytest.fixture(scope="module", autouse=True)
def validations(tmp_path_factory):
    """Starts every validation when the module starts; the tests that read them come last in this file."""
    if not (PROMETHEUS and PROMTOOL):
        yield {}
        return
    tmp = tmp_path_factory.mktemp("validate")
    started = {}
    for spec, extra in RUNS.items():
        report = tmp / f"{spec}.json"
        command = simulated(spec, sys.executable, str(VALIDATOR), "--interval", "0.5", "--scrapes", "2",
                            "--report", str(report), *extra)
        started[spec] = (subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True), report)
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=30)


@pytest.fixture(scope="module")
def runs(validations):
    if not validations:
        pytest.skip("prometheus/promtool missing: run checks/install-system-deps.sh")
    finished = {}
    for spec, (process, report) in validations.items():
        stdout, stderr = process.communicate(timeout=120)
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        finished[spec] = (done, json.loads(report.read_text()) if report.exists() else None)
    return finished


def run_of(runs, spec):
    done, report = runs[spec]
    assert report is not None, f"{spec}: no report; rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done, report


def checks(report, status):
    return [c["check"] for c in report["checks"] if c["status"] == status]


def expected(spec: str, name: str, gpu: int = 0):
    """A scenario's value at the end of the validation (its values are flat there)."""
    name_, _, at = spec.partition("@")
    return scenario.load(name_).gpus[gpu].value(name, float(at or 0) + 60)


# ---- the exporter on its own -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_exporter(spec: str, exporter: Path = EXPORTER, until=lambda text: True) -> str:
    """The exporter's /metrics under a scenario, once `until(text)` holds; then stop it with SIGTERM."""
    port = free_port()
    process = subprocess.Popen(simulated(spec, sys.executable, str(exporter), "--port", str(port), "--interval", "0.2"),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text, deadline = "", time.monotonic() + 30
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                if until(text):
                    break
            except OSError:
                pass
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        log = process.communicate(timeout=30)[0]
    assert process.returncode == 0, f"the exporter did not stop cleanly on SIGTERM:\n{log}"
    assert text, f"the exporter never served /metrics:\n{log}"
    return text


def sample(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if m and m[1] == name and all(f'{k}="{v}"' in (m[3] or "") for k, v in labels.items()):
            return float(m[4])
    return None


def test_exporter_keeps_serving_through_a_driver_mismatch():
    text = scrape_exporter("driver-mismatch",
                           until=lambda t: (sample(t, "gpu_exporter_errors_total", error="LibRmVersionMismatch") or 0) >= 2)
    assert sample(text, "gpu_exporter_nvml_up") == 0
    assert sample(text, "gpu_up") is None


def test_exporter_power_cap_and_memory_values():
    capped = scrape_exporter("power-cap@15", until=lambda t: sample(t, "gpu_power_watts") is not None)
    assert sample(capped, "gpu_power_limit_watts") == 400
    assert 380 <= sample(capped, "gpu_power_watts") <= 400
    assert sample(capped, "gpu_clocks_event_active", reason="sw_power_cap") == 1
    full = scrape_exporter("memory-almost-full@120", until=lambda t: sample(t, "gpu_memory_used_bytes") is not None)
    assert sample(full, "gpu_memory_used_bytes") / sample(full, "gpu_memory_total_bytes") > 0.99


# ---- promtool, and the names the rules and dashboard use -----------------------------------------------------

FUNCTION_OR_KEYWORD = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                       "offset", "bool", "inf", "nan"}


def promql_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (strings, label matchers, ranges and label lists removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\boffset\s+\S+", " ", expr)
    expr = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", expr)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][\w:]*", expr):
        if m[0] not in FUNCTION_OR_KEYWORD and not expr[m.end():].lstrip().startswith("("):
            names.add(m[0])
    return names


def test_promql_names_parser():
    assert promql_names('sum by (gpu) (increase(gpu_xid_errors_total{xid!~"13|31"}[15m])) > 0') == {"gpu_xid_errors_total"}
    assert promql_names("a / b unless c offset 15m and on(gpu) d:e:f < 0.05 or 1e3") == {"a", "b", "c", "d:e:f"}
    assert promql_names('max by (instance, gpu) (x{reason=~"sw_thermal_slowdown|hw"}) == 1') == {"x"}


def exposed_names(text: str) -> set[str]:
    """Families (with the _total of counters) and samples in an exposition."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name, name + "_total"} if kind == "counter" else {name}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def rules_and_dashboard_names(lab: Path) -> dict[str, set[str]]:
    """{where: metric names} for every rule expression and dashboard query; recording rules define names too."""
    import yaml

    used, recorded = {}, set()
    for group in yaml.safe_load((lab / "gpu-rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            used[f"gpu-rules.yml {rule.get('alert') or rule.get('record')}"] = promql_names(rule["expr"])
            recorded |= {rule["record"]} if "record" in rule else set()
    board = json.loads((lab / "grafana-dashboard.json").read_text())
    for panel in board["panels"]:
        for target in panel["targets"]:
            where = f"dashboard panel {panel['title']!r}"
            used[where] = used.get(where, set()) | promql_names(target["expr"])
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            series = re.match(r"label_values\((.*),\s*\w+\)$", variable["query"]["query"])[1]
            used[f"dashboard variable ${variable['name']}"] = promql_names(series)
    return {"used": used, "recorded": recorded}


@functools.cache
def exported_names(exporter_source: str) -> set[str]:
    """What an exporter (given by its source) exposes, from a run on the simulator."""
    with tempfile.TemporaryDirectory() as scratch:
        exporter = Path(scratch) / EXPORTER.name
        exporter.write_text(exporter_source)
        return exposed_names(scrape_exporter("healthy-idle", exporter, until=lambda t: "gpu_up{" in t))


def lab_problems(lab: Path) -> list[str]:
    """What is wrong with a copy of the Lab 1 files: promtool's verdicts and metric names nothing exposes."""
    problems = []
    for command in (["check", "config", "prometheus.yml"], ["check", "rules", "gpu-rules.yml"],
                    ["test", "rules", "gpu-rules.test.yml"]):
        done = subprocess.run([PROMTOOL, *command], cwd=lab, capture_output=True, text=True, timeout=60)
        if done.returncode:
            problems.append(f"promtool {' '.join(command)}: {done.stdout}{done.stderr}")
    exposed = exported_names((lab / EXPORTER.name).read_text()) | {"up", "ALERTS", "ALERTS_FOR_STATE"}
    names = rules_and_dashboard_names(lab)
    for where, used in names["used"].items():
        for name in sorted(used - exposed - names["recorded"]):
            problems.append(f"{where} reads {name}, which the exporter does not expose")
    return problems


@needs_prometheus
def test_the_lab_files_pass_promtool_and_name_only_exposed_metrics():
    assert lab_problems(LAB) == []
    used = set().union(*rules_and_dashboard_names(LAB)["used"].values())
    assert {"gpu_temperature_celsius", "gpu_xid_errors_total", "gpu_sm_active_ratio", "gpu_up"} <= used


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_quiet():
    import yaml

    rules = yaml.safe_load((LAB / "gpu-rules.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in rules for rule in group["rules"] if "alert" in rule}
    cases = [case for test in yaml.safe_load((LAB / "gpu-rules.test.yml").read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert len(alerts) == 14
    assert alerts - fired == set(), "alerts no unit test fires"
    assert alerts - quiet == set(), "alerts no unit test keeps quiet"


# ---- the dashboard's queries, evaluated by promtool on series that start the way the exporter's do ---------------

# Grafana's variables as a one-hour dashboard range ending at the evaluation time would fill them.
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$__range": "1h", "$instance": ".*", "$gpu": ".*"}
L = 'job="gpu", instance="node1:9445"'
# Counters are born the way the exporter creates them: an Xid or NVML-error series at its first event, with the
# value 1; energy at the exporter's start with NVML's running total. `_` is "no sample yet". Evaluated at 90m:
# the range is 30m..90m.
DASHBOARD_SERIES = [
    # existed before the range (born at 5m), one more Xid inside it: 1 in range
    (f'gpu_xid_errors_total{{{L}, gpu="2", uuid="GPU-c", xid="48"}}', "_x4 1x45 2x40"),
    # born inside the range with its first Xid and nothing since: 1 (increase() alone sees 0)
    (f'gpu_xid_errors_total{{{L}, gpu="0", uuid="GPU-a", xid="79"}}', "_x44 1x46"),
    # born inside the range, two more later: 3 (increase() alone sees about 2)
    (f'gpu_xid_errors_total{{{L}, gpu="1", uuid="GPU-b", xid="13"}}', "_x69 1x10 3x11"),
    # old and quiet in the range: not listed
    (f'gpu_xid_errors_total{{{L}, gpu="3", uuid="GPU-d", xid="31"}}', "5x90"),
    # an NVML error class's first failure inside the range
    (f'gpu_exporter_errors_total{{{L}, gpu="3", error="NVMLError_GpuIsLost"}}', "_x59 1x31"),
    # two GPUs drawing 100 W each: 6000 J a minute
    (f'gpu_energy_joules_total{{{L}, gpu="0", uuid="GPU-a"}}', "1000000+6000x90"),
    (f'gpu_energy_joules_total{{{L}, gpu="1", uuid="GPU-b"}}', "2000000+6000x90"),
    # held and idle for the whole time; held and busy
    (f'gpu_compute_processes{{{L}, gpu="0", uuid="GPU-a"}}', "1x90"),
    (f'gpu_utilization_ratio{{{L}, gpu="0", uuid="GPU-a"}}', "0x90"),
    (f'gpu_compute_processes{{{L}, gpu="1", uuid="GPU-b"}}', "2x90"),
    (f'gpu_utilization_ratio{{{L}, gpu="1", uuid="GPU-b"}}', "0.9x90"),
]
# (panel title, refId, expected samples at 90m)
DASHBOARD_EXPECTED = [
    ("Xid errors in range", "A", [({"instance": "node1:9445", "gpu": "2", "xid": "48"}, 1),
                                  ({"instance": "node1:9445", "gpu": "0", "xid": "79"}, 1),
                                  ({"instance": "node1:9445", "gpu": "1", "xid": "13"}, 3)]),
    ("Exporter health", "B", [({"instance": "node1:9445", "error": "NVMLError_GpuIsLost"}, 1)]),
    ("Energy in range", "A", [({}, 0.2)]),  # 2 x 100 W x 1 h = 0.2 kWh
    ("Held but idle", "A", [({"__name__": "gpu_compute_processes", "job": "gpu", "instance": "node1:9445", "gpu": "0",
                              "uuid": "GPU-a"}, 1)]),
]


def panel_query(board: dict, title: str, ref: str) -> str:
    [panel] = [p for p in board["panels"] if p["title"] == title]
    [target] = [t for t in panel["targets"] if t["refId"] == ref]
    expr = target["expr"]
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def dashboard_query_problems(lab: Path, tmp: Path) -> str:
    """promtool's verdict on the dashboard's counter panels, evaluated on DASHBOARD_SERIES ('' when they pass)."""
    import yaml

    board = json.loads((lab / "grafana-dashboard.json").read_text())
    cases = []
    for title, ref, samples in DASHBOARD_EXPECTED:
        exp = [{"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "value": value}
               for labels, value in samples]
        cases.append({"expr": panel_query(board, title, ref), "eval_time": "90m", "exp_samples": exp})
    test = {"rule_files": [str(lab / "gpu-rules.yml")], "evaluation_interval": "1m",
            "tests": [{"name": "dashboard queries", "interval": "1m",
                       "input_series": [{"series": s, "values": v} for s, v in DASHBOARD_SERIES],
                       "promql_expr_test": cases}]}
    (tmp / "dashboard.test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", "dashboard.test.yml"], cwd=tmp, capture_output=True,
                          text=True, timeout=60)
    return "" if done.returncode == 0 else done.stdout + done.stderr


@needs_prometheus
def test_dashboard_counter_panels_count_a_gpus_first_xid(tmp_path):
    assert dashboard_query_problems(LAB, tmp_path) == ""


@needs_prometheus
def test_dashboard_test_catches_increase_over_a_counter_born_at_1(lab_copy, tmp_path):
    """The query the dashboard had: increase() alone shows 0 for a GPU's first Xid."""
    board_path = lab_copy / "grafana-dashboard.json"
    board = json.loads(board_path.read_text())
    [panel] = [p for p in board["panels"] if p["title"] == "Xid errors in range"]
    panel["targets"][0]["expr"] = ('sum by (instance, gpu, xid) (increase(gpu_xid_errors_total{instance=~"$instance", '
                                   'gpu=~"$gpu"}[$__range]))')
    board_path.write_text(json.dumps(board))
    problems = dashboard_query_problems(lab_copy, tmp_path)
    got = problems.split("got:", 1)[1]
    assert '{gpu="0", instance="node1:9445", xid="79"} 0E+00' in got  # the GPU's first Xid, shown as 0


@pytest.fixture
def lab_copy(tmp_path):
    copy = tmp_path / "lab1"
    shutil.copytree(LAB, copy)
    return copy


@needs_prometheus
def test_a_renamed_metric_is_caught(lab_copy):
    exporter = lab_copy / EXPORTER.name
    exporter.write_text(exporter.read_text().replace('"gpu_temperature_celsius"', '"gpu_temp_celsius"'))
    problems = lab_problems(lab_copy)
    assert "gpu-rules.yml GpuTemperatureHigh reads gpu_temperature_celsius, which the exporter does not expose" in problems
    assert "dashboard panel 'Temperature' reads gpu_temperature_celsius, which the exporter does not expose" in problems


@needs_prometheus
def test_a_dashboard_typo_is_caught(lab_copy):
    board = lab_copy / "grafana-dashboard.json"
    board.write_text(board.read_text().replace("gpu_power_limit_watts{", "gpu_power_limits_watts{"))
    assert lab_problems(lab_copy) == [
        "dashboard panel 'Power' reads gpu_power_limits_watts, which the exporter does not expose"]


@needs_prometheus
def test_a_broken_alert_rule_fails_its_unit_test(lab_copy):
    rules = lab_copy / "gpu-rules.yml"
    rules.write_text(rules.read_text().replace("expr: gpu_row_remap_failed == 1", "expr: gpu_row_remap_failed == 2"))
    [problem] = lab_problems(lab_copy)
    assert problem.startswith("promtool test rules gpu-rules.test.yml") and "GpuRowRemapFailed" in problem


@needs_prometheus
def test_an_alert_that_fires_on_a_healthy_gpu_fails_its_unit_test(lab_copy):
    rules = lab_copy / "gpu-rules.yml"
    rules.write_text(rules.read_text().replace(
        "gpu_temperature_celsius >= gpu_temperature_slowdown_celsius - 5",
        "gpu_temperature_celsius >= gpu_temperature_slowdown_celsius - 25"))
    [problem] = lab_problems(lab_copy)
    assert "a healthy, busy GPU raises no alert" in problem and "GpuTemperatureHigh" in problem


@needs_prometheus
def test_invalid_rule_syntax_fails_promtool(lab_copy):
    rules = lab_copy / "gpu-rules.yml"
    rules.write_text(rules.read_text().replace("expr: gpu_up == 0", "expr: gpu_up == == 0"))
    problems = lab_problems(lab_copy)
    assert any(p.startswith("promtool check rules gpu-rules.yml") for p in problems)
    assert any(p.startswith("promtool check config prometheus.yml") for p in problems)


def test_the_exporter_binds_localhost_by_default():
    source = EXPORTER.read_text()
    assert re.search(r'add_argument\("--address", default="127\.0\.0\.1"', source)
    assert '"--port", type=int' in source and '"--interval", type=float' in source


# ---- the validation script on the simulator --------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["healthy-idle", "busy-training"])
def test_healthy_gpus_pass_with_the_scenarios_values_and_no_alert(runs, spec):
    done, report = run_of(runs, spec)
    assert done.returncode == 0 and report["result"] == "PASS", done.stdout + done.stderr
    gpu = report["gpus"]["0"]
    assert gpu["gpu_utilization_ratio"] == expected(spec, "gpu_util_pct") / 100
    assert gpu["gpu_sm_clock_hertz"] == expected(spec, "sm_clock_mhz") * 1e6
    assert gpu["gpu_power_watts"] == expected(spec, "power_w")
    assert gpu["gpu_memory_total_bytes"] == 81559 * 2**20
    assert report["alerts"] == []
    assert "PASS  the dashboard's queries are valid PromQL (grafana-dashboard.json)" in done.stdout


def test_busy_training_exports_gpm_activity_next_to_utilization(runs):
    _, report = run_of(runs, "busy-training")
    gpu = report["gpus"]["0"]
    # busy-training's GPM values come from the H200 recording of a bf16 matmul loop; read it here directly
    busy = json.loads((Path(__file__).resolve().parents[1] / "snippets" / "fundamentals" / "compute"
                       / "02_busy_vs_utilized.rec.json").read_text(encoding="utf-8"))[
        "artifacts"]["busy_vs_utilized.json"]["json"]["busy bf16 matmul"]
    assert (gpu["gpu_sm_active_ratio"], gpu["gpu_sm_occupancy_ratio"], gpu["gpu_tensor_active_ratio"]) == \
        pytest.approx((busy["sm_activity"] / 100, busy["sm_occupancy"] / 100, busy["tensor_activity"] / 100))
    assert gpu["gpu_compute_processes"] == 1 and gpu["gpu_gpm_supported"] == 1


def test_idle_gpu_reports_idle_clocks(runs):
    _, report = run_of(runs, "healthy-idle")
    gpu = report["gpus"]["0"]
    assert gpu['gpu_clocks_event_active{reason="gpu_idle"}'] == 1 and gpu["gpu_clocks_event_reasons"] == 1


def alerts(report, name):
    return [a for a in report["alerts"] if a["name"] == name]


def test_thermal_throttling_raises_the_thermal_alerts(runs):
    done, report = run_of(runs, "thermal-throttle@200")
    assert done.returncode == 0, done.stdout
    gpu = report["gpus"]["0"]
    assert gpu['gpu_clocks_event_active{reason="sw_thermal_slowdown"}'] == 1
    assert gpu['gpu_clocks_event_active{reason="hw_thermal_slowdown"}'] == 1
    assert gpu["gpu_sm_clock_hertz"] == 1200e6 < gpu["gpu_sm_clock_max_hertz"]
    assert gpu["gpu_temperature_celsius"] == 90
    assert {a["name"] for a in report["alerts"]} == {"GpuThermalSlowdown", "GpuTemperatureHigh"}


def test_only_the_hot_gpu_of_eight_alerts(runs):
    done, report = run_of(runs, "8gpu-one-hot@150")
    assert done.returncode == 0, done.stdout
    assert sorted(report["gpus"], key=int) == [str(i) for i in range(8)]
    throttled = [g for g, v in report["gpus"].items() if v['gpu_clocks_event_active{reason="hw_thermal_slowdown"}']]
    assert throttled == ["5"]
    assert {(a["name"], a["labels"]["gpu"]) for a in report["alerts"]} == {("GpuThermalSlowdown", "5"),
                                                                          ("GpuTemperatureHigh", "5")}


def test_memory_errors_raise_ecc_and_row_remap_alerts(runs):
    done, report = run_of(runs, "ecc-errors@200")
    assert done.returncode == 0, done.stdout
    gpu = report["gpus"]["0"]
    assert gpu['gpu_ecc_errors_total{scope="volatile",type="uncorrected"}'] == 2
    assert gpu['gpu_ecc_errors_total{scope="volatile",type="corrected"}'] == 80
    assert gpu["gpu_row_remap_pending"] == 1 and gpu["gpu_row_remap_failed"] == 1
    assert {a["name"] for a in report["alerts"]} == {"GpuUncorrectableEccErrors", "GpuRowRemapPending",
                                                     "GpuRowRemapFailed"}


def test_xid_events_are_counted_per_code_and_alerted_by_kind(runs):
    done, report = run_of(runs, "xid-events")
    assert done.returncode == 0, done.stdout
    counted = {k: v for k, v in report["gpus"]["0"].items() if k.startswith("gpu_xid_errors_total")}
    assert set(counted) == {f'gpu_xid_errors_total{{xid="{x}"}}' for x in (13, 31, 43, 48, 63, 74, 94, 95)}
    assert len(set(counted.values())) == 1  # each code once per burst
    assert sorted(a["labels"]["xid"] for a in alerts(report, "GpuXidError")) == ["48", "63", "74", "94", "95"]
    assert sorted(a["labels"]["xid"] for a in alerts(report, "GpuXidApplicationError")) == ["13", "31", "43"]
    assert {a["name"] for a in report["alerts"]} == {"GpuXidError", "GpuXidApplicationError"}


def test_a_lost_gpu_fails_validation_while_the_exporter_keeps_serving(runs):
    done, report = run_of(runs, "gpu-lost@28")
    assert done.returncode == 1 and report["result"] == "FAIL"
    assert checks(report, "FAIL") == ["GPU 0 answers NVML"]
    assert "fell off the bus" in done.stdout
    gpu = report["gpus"]["0"]
    assert gpu["gpu_up"] == 0 and gpu['gpu_xid_errors_total{xid="79"}'] == 1
    assert "gpu_temperature_celsius" not in gpu  # no stale values for a lost GPU
    assert report["node"]["up"] == 1 and report["node"]['gpu_exporter_errors_total{error="GpuIsLost"}[gpu=0]'] >= 1
    assert [a["labels"]["gpu"] for a in alerts(report, "GpuLost")] == ["0"]
    assert {a["name"] for a in report["alerts"]} == {"GpuLost", "GpuXidError"}


def test_no_driver_fails_validation_with_the_reason_and_a_hint(runs):
    done, report = run_of(runs, "no-gpu")
    assert done.returncode == 1 and checks(report, "FAIL") == ["NVML initialises in the exporter"]
    assert "LibraryNotFound" in done.stdout and "install the NVIDIA driver" in done.stdout
    assert report["node"]["up"] == 1 and report["node"]["gpu_exporter_nvml_up"] == 0
    assert report["gpus"] == {}
    assert {a["name"] for a in report["alerts"]} == {"GpuExporterNvmlDown"}


def test_a_gpu_held_but_idle_raises_the_waste_alert(runs):
    _, report = run_of(runs, "allocated-idle")
    assert [(a["name"], a["labels"]["gpu"]) for a in report["alerts"]] == [("GpuAllocatedButIdle", "0")]


def test_the_validator_reports_a_missing_prometheus_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(VALIDATOR), "--prometheus", "no-such-prometheus"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ERROR 'no-such-prometheus' not found: install Prometheus (Debian/Ubuntu: apt install prometheus) "
        "or pass --prometheus /path/to/prometheus"]


def test_the_lab_pages_scenario_table_matches_the_runs(runs):
    page = (ROOT / "docs/labs/lab1.md").read_text()
    rows = re.findall(r"^\s*\| (`[^|]+`) \| (PASS|FAIL)[^|]* \| ([^|]+) \|$", page, flags=re.M)
    assert len(rows) >= 7
    covered = set()
    for specs, verdict, listed in rows:
        for spec in re.findall(r"`([^`]+)`", specs):
            _, report = run_of(runs, spec)
            assert report["result"] == verdict, spec
            assert {a["name"] for a in report["alerts"]} == set(re.findall(r"\bGpu\w+", listed)), spec
            covered.add(spec)
    assert covered == set(RUNS)
