"""The fault matrix holds: each injected fault is found by its check, no check fires on a healthy scenario, Xids
13/31/43 are never called hardware, and the chapter page shows the matrix of this very run. Each fix of issue 24
has its scenario row (see troubleshooting_matrix.EXPECTED) and, where the verdict alone does not prove it, a test
of the evidence below."""
import importlib.util
import json
import re
import time

import pytest

from handbook.gpusim import kernel_log
from troubleshooting_matrix import (CHECKS, DIAGNOSTIC, EXPECTED, HEALTHY, RENDERED, all_specs, diagnose, expected,
                                    render, run_matrix)

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
    assert code == 1 and 'gpu_health_check{check="collective"} 1' in text
    assert 'gpu_health_check{check="memory"} 0' in text and "# TYPE gpu_health_check gauge" in text


def test_only_a_newer_cuda_major_is_insufficient(tmp_path):
    # CUDA 13.1 on a driver for 13.0 runs under minor-version compatibility; 14.0 needs a newer driver branch.
    code, report, _ = diagnose("healthy-idle", "--check", "driver", flags=["--json", "--need-cuda", "13.1"],
                               cwd=tmp_path)
    assert code == 0 and "minor-version compatibility" in report["checks"]["driver"]["evidence"][-1]
    code, report, _ = diagnose("healthy-idle", "--check", "driver", flags=["--json", "--need-cuda", "14.0"],
                               cwd=tmp_path)
    assert code == 2 and "CUDA 13.x at most" in report["checks"]["driver"]["evidence"][-1]


@pytest.mark.parametrize("flags, words", [
    (["--need-cuda", "twelve"], "--need-cuda 'twelve'"),
    (["--expect-mig", "seven"], "--expect-mig 'seven'"),
    (["--kernel-log", "/nonexistent/kern.log"], "--kernel-log '/nonexistent/kern.log': no such file"),
    (["--window", "0"], "'0': give a number of seconds > 0"),
])
def test_bad_arguments_get_one_line_not_a_traceback(tmp_path, flags, words):
    code, report, err = diagnose("healthy-idle", flags=flags, cwd=tmp_path)
    assert code == 2 and report is None and "Traceback" not in err and words in err, err


def health_module():
    """The health check as a module, for its pure functions (it imports pynvml but touches no GPU at import)."""
    spec = importlib.util.spec_from_file_location("gpu_health", DIAGNOSTIC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evidence(matrix, row, check):
    return "\n".join(matrix[row][1]["checks"][check]["evidence"])


@pytest.mark.parametrize("style", ["raw", "ctime", "journal"])
def test_saved_kernel_logs_parse_in_every_format(style):
    # `dmesg`, `dmesg -T` and `journalctl -k`, the formats the runbooks tell people to save.
    text = "\n".join(kernel_log.lines("xid-events@3", style=style))
    events, cut = health_module().logged_xids(text)
    assert [code for _, code, _ in events] == [13, 31, 43, 48, 63, 74, 94, 95] and cut == 0
    assert {bus for bus, _, _ in events} == {(0, 0x18, 0)}


def test_xids_count_from_the_last_reset_or_driver_load():
    health = health_module()
    log = ["[   10.000000] NVRM: Xid (PCI:0000:18:00): 48, pid='<unknown>', name=<unknown>, DBE",
           "[   10.000001] NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
           "[   60.000000] gpu-reset: PCI:0000:18:00 reset with nvidia-smi -r",
           "[   70.000000] NVRM: Xid (PCI:0000:18:00): 13, pid=77, name=python, Graphics Exception"]
    events, cut = health.logged_xids("\n".join(log))
    assert [(bus, code) for bus, code, _ in events] == [((0, 0x3b, 0), 79), ((0, 0x18, 0), 13)] and cut == 1
    reloaded = log + ["[  100.000000] NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  580.159.04"]
    assert health.logged_xids("\n".join(reloaded)) == ([], 3)


def test_a_previous_boots_file_is_not_cut_by_this_boots_uptime(tmp_path):
    # Seconds-stamped lines from a file say nothing about this machine's uptime: every Xid in it counts.
    saved = tmp_path / "previous-boot.log"
    saved.write_text("[    5.100000] NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has "
                     "fallen off the bus.\n[    5.200000] NVRM: Xid (PCI:0000:18:00): 13, pid=9, name=python, x\n")
    code, report, _ = diagnose("healthy-idle", "--check", "xid", "--kernel-log", str(saved), cwd=tmp_path)
    found = [line for line in report["checks"]["xid"]["evidence"] if ": Xid " in line]
    assert code == 2 and [line.split()[2] for line in found] == ["13", "79"], found


def test_reset_and_kill_xids_do_not_keep_a_repaired_node_down(matrix):
    text = evidence(matrix, "xid-after-reset@90", "xid")
    assert "3 before it not counted" in text and "Xid 45 (informational)" in text and "Xid 48" not in text


def test_an_unreadable_kernel_log_is_unknown_with_its_reason(matrix):
    assert "Operation not permitted" in evidence(matrix, "dmesg-restricted", "xid")


def test_nvml_unknown_error_advice_depends_on_where_it_runs(matrix):
    container = evidence(matrix, "nvml-unknown-error --where container", "driver")
    host = evidence(matrix, "nvml-unknown-error", "driver")
    assert "restart the container" in container and "restart the container" not in host
    assert "drain and reboot" in host
    assert "without the NVIDIA runtime or a CDI device" in evidence(matrix, "no-gpu --where container", "driver")


def test_recovery_actions_follow_nvidias_definitions(matrix):
    health = health_module()
    assert health.RECOVERY[1][:2] == ("GPU_RESET", health.CRITICAL)  # unusable until reset
    assert health.RECOVERY[4][:2] == ("DRAIN_AND_RESET", health.WARN) and "no new work" in health.RECOVERY[4][2]
    assert "DRAIN_AND_RESET" in evidence(matrix, "remap-pending-only", "recovery")
    assert "GPU_RESET" in evidence(matrix, "ecc-errors@200", "recovery")


def test_the_sram_rule_is_nvidias_threshold_flag(matrix):
    assert "aggregate SRAM uncorrected 6" in evidence(matrix, "sram-errors@60", "ecc")
    assert "SRAM threshold exceeded (NVIDIA's flag)" in evidence(matrix, "sram-errors@150", "ecc")


def test_high_memory_is_a_workload_property_and_unaccounted_memory_warns(matrix):
    assert "workload property" in evidence(matrix, "memory-almost-full@120", "memory")
    assert "24.0 GiB held by no process NVML lists" in evidence(matrix, "memory-no-process", "memory")


def test_hw_slowdown_is_judged_over_the_window(matrix):
    text = evidence(matrix, "hw-slowdown-blip@29", "clocks")
    assert "(transient)" in text and "CRITICAL" not in text
    assert re.search(r"HW thermal slowdown 100% of the last", evidence(matrix, "thermal-throttle@200", "clocks"))


def test_an_out_of_band_cap_is_told_from_a_lowered_limit(matrix):
    assert "450 W enforced, 700 W requested: another limiter" in evidence(matrix, "power-oob-cap", "clocks")
    assert "lowered to 400 W from the default 700 W" in evidence(matrix, "power-cap", "clocks")


def test_the_starved_rank_and_the_overworked_rank_are_both_found(matrix):
    starved = [line for line in matrix["8gpu-data-starved"][1]["checks"]["straggler"]["evidence"] if "WARN" in line]
    assert len(starved) == 1 and starved[0].startswith("WARN: GPU 2:") and "starved" in starved[0]
    busy = [line for line in matrix["8gpu-straggler"][1]["checks"]["straggler"]["evidence"] if "WARN" in line]
    assert len(busy) == 1 and busy[0].startswith("WARN: GPU 6:") and "more work" in busy[0]


def test_mig_empty_pending_and_drift(matrix):
    assert "MIG on with no instance" in evidence(matrix, "mig-h200-enabled-empty", "mig")
    assert "on pending" in evidence(matrix, "mig-h200-pending", "mig")
    assert "expected 7x 1g.18gb" in evidence(matrix, "mig-h200-mixed --expect-mig 1g.18gb:7", "mig")


@pytest.mark.parametrize("spec, verdict, words", [
    ("hung-collective", "WARN", "consistent with a hung collective"),
    ("long-allreduce@100", "OK", "a communication phase, not a hang"),
])
def test_a_hang_is_judged_over_minutes_not_one_sample(tmp_path, monkeypatch, spec, verdict, words):
    # At 100x, a 0.6 s watch covers a minute of the scenario: long-allreduce's 6 % SM activity at 190 W looks like
    # a hang at 100 s and works again at 130 s; the hung GPU never does.
    monkeypatch.setenv("HANDBOOK_GPUSIM_SPEED", "100")
    code, report, _ = diagnose(spec, "--check", "collective", "--hang-seconds", "0.6", cwd=tmp_path)
    collective = report["checks"]["collective"]
    assert collective["verdict"] == verdict and words in "\n".join(collective["evidence"]), collective


def test_a_wedged_gpu_is_reported_within_the_nvml_timeout(tmp_path):
    started = time.monotonic()
    code, report, _ = diagnose("gsp-timeout@25", "--check", "bus", "--check", "xid", cwd=tmp_path)
    assert time.monotonic() - started < 15  # every NVML call on the GPU would block 30 s
    assert report["checks"]["bus"]["verdict"] == "CRITICAL" and "no answer within 2 s" in evidence(
        {"r": (code, report)}, "r", "bus")
    assert "Xid 119 (firmware)" in evidence({"r": (code, report)}, "r", "xid")
