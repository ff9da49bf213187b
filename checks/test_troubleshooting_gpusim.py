"""The simulator faults the troubleshooting runbooks need behave as NVML does (see handbook/gpusim/scenario.py)."""
import contextlib
import ctypes
import io
import re
import subprocess
import sys
import time

import pytest

from handbook import gpusim
from handbook.gpusim import kernel_log, nvidia_smi


def test_recovery_action_field_follows_the_scenario():
    for at, action in ((0, 0), (100, 4), (200, 1)):  # NONE, DRAIN_AND_RESET (contained), GPU_RESET (uncontained)
        with gpusim.activate("ecc-errors", at=at) as nv:
            nv.nvmlInit()
            h = nv.nvmlDeviceGetHandleByIndex(0)
            value, other = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION,
                                                          (nv.NVML_FI_DEV_NVLINK_LINK_COUNT, 0)])
            assert (value.nvmlReturn, value.value.uiVal) == (nv.NVML_SUCCESS, action)
            assert value.valueType == nv.NVML_VALUE_TYPE_UNSIGNED_INT
            assert other.nvmlReturn == nv.NVML_ERROR_NOT_SUPPORTED  # unsimulated fields fail in their slot only


def test_pcie_downtrain_and_nvlink_down():
    with gpusim.activate("pcie-downtrained") as nv:
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        assert (nv.nvmlDeviceGetCurrPcieLinkGeneration(h), nv.nvmlDeviceGetMaxPcieLinkGeneration(h)) == (4, 5)
        assert (nv.nvmlDeviceGetCurrPcieLinkWidth(h), nv.nvmlDeviceGetMaxPcieLinkWidth(h)) == (8, 16)
    with gpusim.activate("nvlink-down") as nv:
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        states = [nv.nvmlDeviceGetNvLinkState(h, link) for link in range(18)]
        assert [i for i, s in enumerate(states) if s == nv.NVML_FEATURE_DISABLED] == [5]
        with pytest.raises(nv.NVMLError_NotSupported):
            nv.nvmlDeviceGetNvLinkState(h, 18)


def test_a_dead_process_is_listed_but_has_no_name():
    with gpusim.activate("dead-process-memory") as nv:
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        [proc] = nv.nvmlDeviceGetComputeRunningProcesses(h)
        assert proc.pid == 4242 and proc.usedGpuMemory == 40960 * 2**20
        with pytest.raises(nv.NVMLError_NotFound):
            nv.nvmlSystemGetProcessName(4242)
    with gpusim.activate("busy-training") as nv:
        nv.nvmlInit()
        assert nv.nvmlSystemGetProcessName(4242) == "python train.py"


def test_unknown_error_at_init_and_lowered_power_limit():
    with gpusim.activate("nvml-unknown-error") as nv:
        with pytest.raises(nv.NVMLError_Unknown):
            nv.nvmlInit()
    with gpusim.activate("power-cap") as nv:
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        assert (nv.nvmlDeviceGetEnforcedPowerLimit(h), nv.nvmlDeviceGetPowerManagementDefaultLimit(h)) == (400_000, 700_000)


def test_new_reason_bits_are_nvmls():
    with gpusim.activate("hw-power-brake") as nv:
        nv.nvmlInit()
        reasons = nv.nvmlDeviceGetCurrentClocksEventReasons(nv.nvmlDeviceGetHandleByIndex(0))
        assert reasons == nv.nvmlClocksEventReasonHwSlowdown | nv.nvmlClocksEventReasonHwPowerBrakeSlowdown
    with gpusim.activate("app-clocks-locked") as nv:
        nv.nvmlInit()
        reasons = nv.nvmlDeviceGetCurrentClocksEventReasons(nv.nvmlDeviceGetHandleByIndex(0))
        assert reasons == nv.nvmlClocksEventReasonApplicationsClocksSetting


def test_nvlink_down_must_name_existing_links(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\n[[gpus]]\nmodel = "m"\nmemory_total_mib = 1\npower_limit_w = 1\n'
                   'sm_clock_max_mhz = 1\nmem_clock_max_mhz = 1\ntemperature_slowdown_c = 1\n'
                   'temperature_shutdown_c = 2\nnvlink_links = 4\nnvlink_down = [4]\n')
    with pytest.raises(gpusim.ScenarioError, match="nvlink_down lists link indices below nvlink_links"):
        gpusim.simulated_module(str(bad), banner=False)


# ---- what the runbooks of issue 24 need from the simulator -------------------------------------------------------


def smi(argv, scenario):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = nvidia_smi.main(argv, scenario=scenario)
    return status, out.getvalue()


def test_sram_status_and_threshold_flag():
    for at, (count, flag) in ((60, (6, 0)), (150, (6, 1))):
        with gpusim.activate("sram-errors", at=at) as nv:
            nv.nvmlInit()
            h = nv.nvmlDeviceGetHandleByIndex(0)
            status = nv.c_nvmlEccSramErrorStatus_v1_t()
            nv.nvmlDeviceGetSramEccErrorStatus(h, ctypes.byref(status))
            assert (status.aggregateUncSecDed, status.bThresholdExceeded) == (count, flag)
            sram = nv.nvmlDeviceGetMemoryErrorCounter(h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_AGGREGATE_ECC,
                                                      nv.NVML_MEMORY_LOCATION_SRAM)
            total = nv.nvmlDeviceGetTotalEccErrors(h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_AGGREGATE_ECC)
            assert sram == total == count  # NVML's total counts SRAM and DRAM


def test_violation_counters_count_wall_time_at_any_speed():
    for speed in (1, 50):
        with gpusim.activate("thermal-throttle", at=200, speed=speed) as nv:
            nv.nvmlInit()
            h = nv.nvmlDeviceGetHandleByIndex(0)
            ids = [nv.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN]
            first = nv.nvmlDeviceGetFieldValues(h, ids)[0].value.ullVal
            time.sleep(0.2)
            grew = nv.nvmlDeviceGetFieldValues(h, ids)[0].value.ullVal - first
            assert 0.15e9 < grew < 0.35e9, (speed, grew)  # HW thermal slowdown active all the time: ~0.2 s of it


def test_fabric_states_and_requested_vs_enforced_power():
    with gpusim.activate("hgx-fabric-down") as nv:
        nv.nvmlInit()
        info = nv.c_nvmlGpuFabricInfo_t()
        nv.nvmlDeviceGetGpuFabricInfo(nv.nvmlDeviceGetHandleByIndex(7), ctypes.byref(info))
        assert info.state == nv.NVML_GPU_FABRIC_STATE_IN_PROGRESS
    with gpusim.activate("power-oob-cap") as nv:
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        assert (nv.nvmlDeviceGetPowerManagementLimit(h), nv.nvmlDeviceGetEnforcedPowerLimit(h)) == (700_000, 450_000)


def test_nvlink_error_counters_grow_on_one_link():
    for at, count in ((10, 120), (40, 720)):  # a burst of 600 CRC errors at 31 s
        with gpusim.activate("nvlink-errors", at=at) as nv:
            nv.nvmlInit()
            h = nv.nvmlDeviceGetHandleByIndex(0)
            crc = [nv.nvmlDeviceGetNvLinkErrorCounter(h, link, nv.NVML_NVLINK_ERROR_DL_CRC_FLIT) for link in range(18)]
            assert crc[3] == count and sum(crc) == count


def test_a_wedged_gpu_blocks_then_fails():
    with gpusim.activate("gsp-timeout", at=25, speed=100) as nv:  # 30 s at 100x: 0.3 s
        nv.nvmlInit()
        started = time.monotonic()
        with pytest.raises(nv.NVMLError_Unknown):
            nv.nvmlDeviceGetHandleByIndex(0)
        assert 0.25 < time.monotonic() - started < 2


def test_mig_mode_pending_and_memory_reservation():
    with gpusim.activate("mig-h200-pending") as nv:
        nv.nvmlInit()
        assert nv.nvmlDeviceGetMigMode(nv.nvmlDeviceGetHandleByIndex(0)) == [0, 1]


def test_kernel_log_attributes_xids_as_the_driver_does():
    lines = kernel_log.lines("xid-events@3")
    assert re.search(r"NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  580\.159\.04", lines[0])
    xid = {int(m[1]): line for line in lines if (m := re.search(r"Xid \(PCI:0000:18:00\): (\d+), ", line))}
    assert "pid=4242, name=python," in xid[13] and "pid=4242, name=python," in xid[94]  # the process's faults
    assert "pid='<unknown>', name=<unknown>," in xid[95] and "pid='<unknown>', name=<unknown>," in xid[48]
    assert any(line.endswith("NVRM: GPU Board Serial Number: simulated-0") for line in lines)
    reset = kernel_log.lines("xid-after-reset@90", style="journal")
    assert any(re.search(r"kernel: gpu-reset: PCI:0000:18:00 ", line) for line in reset)


def test_dmesg_refuses_a_user_without_the_right_to_read_it():
    env = gpusim.child_env("dmesg-restricted")
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable
    done = subprocess.run([str(nvidia_smi.BIN_DIR / "dmesg")], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == "dmesg: read kernel buffer failed: Operation not permitted"


def test_csv_headers_use_canonical_names():
    _, out = smi(["--query-gpu=clocks.sm,clocks.mem,gpu_name,power.limit,temperature.gpu", "--format=csv"], "busy-training")
    assert out.splitlines()[0] == ("clocks.current.sm [MHz], clocks.current.memory [MHz], name, power.limit [W], "
                                   "temperature.gpu")
    _, out = smi(["--query-compute-apps=pid,name,used_memory", "--format=csv"], "busy-training")
    assert out.splitlines()[0] == "pid, process_name, used_gpu_memory [MiB]"


def test_q_sections_come_in_the_tools_order_with_580_lines():
    _, out = smi(["-q", "-d", "POWER,TEMPERATURE,PERFORMANCE"], "power-oob-cap")
    heads = [line.strip() for line in out.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert [h.split(":")[0].strip() for h in heads][:3] == ["Performance State", "Clocks Event Reasons",
                                                             "Clocks Event Reasons Counters"]
    assert "        GPU T.Limit Temp                               : " in out
    assert re.search(r"Current Power Limit +: 450\.00 W\n +Requested Power Limit +: 700\.00 W", out)
    assert "            HW Thermal Slowdown                        : Not Active" in out  # nested under HW Slowdown
    _, out = smi(["-q", "-d", "TEMPERATURE"], "driver-too-old")  # an A100: absolute thresholds, no margins
    assert "GPU Shutdown Temp" in out and "GPU Shutdown T.Limit Temp" not in out
