"""The simulator faults the troubleshooting runbooks need behave as NVML does (see handbook/gpusim/scenario.py)."""
import pytest

from handbook import gpusim


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
