"""The fault matrix holds: each injected fault is found by its check, no check fires on a healthy scenario, Xids
13/31/43 are never called hardware, and the chapter page shows the matrix of this very run."""
import json
import re

import pytest

from troubleshooting_matrix import (CHECKS, EXPECTED, HEALTHY, RENDERED, all_specs, diagnose, expected, render,
                                    run_matrix)

VERDICT_CODE = {"OK": 0, "WARN": 1, "CRITICAL": 2, "UNKNOWN": 3}
RANK = {"OK": 0, "UNKNOWN": 1, "WARN": 2, "CRITICAL": 3}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return run_matrix(all_specs(), tmp_path_factory.mktemp("matrix"))


def verdicts(report) -> dict:
    return {name: check["verdict"] for name, check in report["checks"].items()}


@pytest.mark.parametrize("spec", list(EXPECTED))
def test_scenario_gets_the_verdicts_its_fault_defines(matrix, spec):
    code, report = matrix[spec]
    assert report is not None, f"{spec}: the diagnostic printed no JSON (exit {code})"
    assert verdicts(report) == expected(spec), f"{spec}: {json.dumps(report['checks'], indent=1)}"
    worst = max(expected(spec).values(), key=RANK.get)
    assert code == report["exit"] == VERDICT_CODE[worst], f"{spec}: exit {code}, worst verdict {worst}"


def test_no_check_fires_on_a_healthy_scenario(matrix):
    assert len(HEALTHY) >= 3
    for spec in HEALTHY:
        code, report = matrix[spec]
        assert code == 0 and set(verdicts(report).values()) == {"OK"}, (spec, verdicts(report))


def test_every_check_is_proven_by_some_fault():
    proven = {check for faults in EXPECTED.values() for check, v in faults.items() if v in ("WARN", "CRITICAL")}
    assert proven == set(CHECKS), f"checks no scenario makes fire: {set(CHECKS) - proven}"


def test_application_xids_are_never_hardware(matrix):
    _, report = matrix["xid-app-only@2"]
    xid = report["checks"]["xid"]
    assert xid["verdict"] == "WARN"
    found = [line for line in xid["evidence"] if line.startswith("WARN: Xid")]
    assert [line.split()[2] for line in found] == ["13", "31", "43"], found
    for line in found:
        assert "(application)" in line and "RESTART_APP" in line and "not a hardware fault" in line, line
        assert not any(word in line for word in ("RMA", "RESET_GPU", "DRAIN", "CONTACT_SUPPORT")), line


def test_scenarios_without_a_spec_row_still_get_readable_verdicts(matrix):
    for spec in set(matrix) - set(EXPECTED):
        code, report = matrix[spec]
        assert report is not None and set(report["checks"]) == set(CHECKS), spec
        assert all(c["verdict"] in VERDICT_CODE and c["evidence"] for c in report["checks"].values()), spec


def test_the_page_shows_this_run(matrix):
    rendered = render(matrix)
    assert RENDERED.read_text(encoding="utf-8") == rendered, (
        f"{RENDERED} is stale: regenerate it with `python checks/troubleshooting_matrix.py --write`")


def test_nvml_events_alone_find_xids_as_they_happen(tmp_path):
    # No kernel log: the Xids must arrive through nvmlEventSetWait while the check listens.
    code, report, _ = diagnose("xid-events", "--check", "xid", "--xid-seconds", "2.6", "--kernel-log",
                               "/dev/null", cwd=tmp_path)
    lines = report["checks"]["xid"]["evidence"]
    codes = [int(m[1]) for m in map(re.compile(r"\w+: Xid (\d+) \(").match, lines) if m]
    assert codes == [13, 31, 43, 48, 63, 74, 94, 95], lines
    assert code == 2


def test_one_check_sets_the_exit_code_and_text_output(tmp_path):
    code, _, _ = diagnose("thermal-throttle@200", "--check", "clocks", cwd=tmp_path)
    assert code == 2
    code, _, _ = diagnose("thermal-throttle@200", "--check", "memory", cwd=tmp_path)
    assert code == 0


def test_prometheus_textfile(tmp_path):
    out = tmp_path / "gpu.prom"
    code, _, _ = diagnose("hung-collective", "--prometheus", str(out), cwd=tmp_path)
    text = out.read_text()
    assert code == 2 and 'gpu_health_check{check="collective"} 2' in text
    assert 'gpu_health_check{check="memory"} 0' in text and "# TYPE gpu_health_check gauge" in text


def test_driver_insufficient_for_the_programs_cuda(tmp_path):
    code, report, _ = diagnose("healthy-idle", "--check", "driver", flags=["--json", "--need-cuda", "13.1"],
                               cwd=tmp_path)
    assert code == 2 and "driver is insufficient" in report["checks"]["driver"]["evidence"][-1]


def test_bad_arguments_get_one_line_not_a_traceback(tmp_path):
    code, report, err = diagnose("healthy-idle", flags=["--need-cuda", "twelve"], cwd=tmp_path)
    assert code == 2 and report is None and "Traceback" not in err and "--need-cuda 'twelve'" in err
