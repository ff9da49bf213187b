"""The GPU simulator (handbook/gpusim): parity with nvidia-ml-py, error classes, every scenario's behaviour,
the "(simulated)" labelling, time control, the `run`/`list` commands, and one-line errors for bad input."""
import inspect
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handbook import gpusim
from handbook.gpusim import nvml, real, scenario

ROOT = Path(__file__).resolve().parent.parent
REAL = nvml.real_pynvml()
SCENARIOS = sorted(scenario.available())
THERMAL = REAL.nvmlClocksEventReasonSwThermalSlowdown | REAL.nvmlClocksEventReasonHwThermalSlowdown


def handle(pynvml, index=0):
    return pynvml.nvmlDeviceGetHandleByIndex(index)


@pytest.fixture
def sim(request):
    """sim("name@at", speed=...) -> the simulated module, initialised; shut down and uninstalled afterwards."""
    stack = []

    def start(name, **kwargs):
        context = gpusim.activate(name, **kwargs)
        module = context.__enter__()
        stack.append(context)
        module.nvmlInit()
        return module

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


# ---- parity with nvidia-ml-py -----------------------------------------------------------------------------------

def test_every_simulated_function_has_the_real_name_and_parameters():
    simulated = [name for name, fn in vars(nvml.Simulator).items() if name.startswith("nvml") and inspect.isfunction(fn)]
    assert len(simulated) > 60
    for name in simulated:
        assert hasattr(REAL, name), f"{name} is not a pynvml function"
        ours = [p for p in inspect.signature(getattr(nvml.Simulator, name)).parameters][1:]  # drop self
        theirs = list(inspect.signature(getattr(REAL, name)).parameters)
        assert ours == theirs, f"{name}{tuple(ours)} differs from pynvml's {name}{tuple(theirs)}"


def snippet_calls() -> set[str]:
    names = set()
    for path in (ROOT / "snippets").rglob("*.py"):
        names |= set(re.findall(r"\bpynvml\.(nvml[A-Za-z0-9_]+)\s*\(", path.read_text()))
    return names


def test_every_nvml_function_the_snippets_call_is_simulated(sim):
    calls = snippet_calls()
    assert {"nvmlInit", "nvmlGpmMetricsGet", "nvmlEventSetWait", "nvmlDeviceGetRemappedRows"} <= calls
    pynvml = sim("healthy-idle")
    for name in sorted(calls):
        assert hasattr(REAL, name), f"snippets call pynvml.{name}, which nvidia-ml-py does not have"
        assert not getattr(getattr(pynvml, name), "__gpusim_stub__", False), f"{name} is used but not simulated"


def test_constants_structures_and_error_classes_are_the_real_ones(sim):
    pynvml = sim("healthy-idle")
    for name in ("NVMLError", "NVMLError_GpuIsLost", "NVMLError_LibraryNotFound", "c_nvmlGpmMetricsGet_t",
                 "NVML_CLOCK_SM", "nvmlEventTypeXidCriticalError", "NVML_GPM_METRIC_SM_OCCUPANCY"):
        assert getattr(pynvml, name) is getattr(REAL, name)
    real_functions = {n for n, v in vars(REAL).items() if n.startswith("nvml") and inspect.isfunction(v)}
    assert real_functions <= set(vars(pynvml)), "a real nvml* function is missing from the simulated module"


def test_unsimulated_functions_say_so_and_raise_not_supported(sim, capsys):
    pynvml = sim("healthy-idle")
    for _ in range(2):
        with pytest.raises(pynvml.NVMLError_NotSupported):
            pynvml.nvmlDeviceGetBoardId(handle(pynvml))
    assert capsys.readouterr().err.count("nvmlDeviceGetBoardId is not simulated") == 1


# ---- errors -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, error, code", [
    ("no-gpu", "NVMLError_LibraryNotFound", "NVML_ERROR_LIBRARY_NOT_FOUND"),
    ("driver-mismatch", "NVMLError_LibRmVersionMismatch", "NVML_ERROR_LIB_RM_VERSION_MISMATCH"),
    ("driver-not-loaded", "NVMLError_DriverNotLoaded", "NVML_ERROR_DRIVER_NOT_LOADED"),
])
def test_init_failures_raise_the_real_error_classes(name, error, code):
    with gpusim.activate(name) as pynvml:
        with pytest.raises(REAL.NVMLError) as caught:
            pynvml.nvmlInit()
        assert type(caught.value) is getattr(REAL, error)
        assert caught.value.value == getattr(REAL, code)
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            pynvml.nvmlDeviceGetCount()


def test_calls_before_init_and_after_shutdown_are_uninitialized():
    with gpusim.activate("healthy-idle") as pynvml:
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            pynvml.nvmlDeviceGetCount()
        pynvml.nvmlInit()
        assert pynvml.nvmlDeviceGetCount() == 1
        pynvml.nvmlShutdown()
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            pynvml.nvmlDeviceGetHandleByIndex(0)


def test_bad_handles_and_indices_are_invalid_arguments(sim):
    pynvml = sim("healthy-idle")
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetName(REAL.c_nvmlDevice_t())  # a NULL handle
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetHandleByUUID("GPU-not-there")


# ---- labelling and activation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_loads_and_names_its_devices_simulated(name):
    played = scenario.load(name)
    assert played.description and "\n" not in played.description
    with gpusim.activate(name) as pynvml:
        if played.init_error:
            with pytest.raises(pynvml.NVMLError):
                pynvml.nvmlInit()
            return
        pynvml.nvmlInit()
        for gpu in played.gpus:
            if not gpu.lost(0):
                assert pynvml.nvmlDeviceGetName(handle(pynvml, gpu.index)).endswith(" (simulated)")


def test_activation_prints_a_banner_and_restores_sys_modules(capsys):
    sentinel = object()
    sys.modules["pynvml"] = sentinel
    try:
        with gpusim.activate("healthy-idle") as pynvml:
            import pynvml as imported
            assert imported is pynvml and pynvml.__gpusim__.scenario.name == "healthy-idle"
        assert sys.modules["pynvml"] is sentinel
        with pytest.raises(RuntimeError), gpusim.activate("busy-training"):
            raise RuntimeError("the block fails")
        assert sys.modules["pynvml"] is sentinel
    finally:
        del sys.modules["pynvml"]
    with gpusim.activate("healthy-idle"):
        pass
    assert "pynvml" not in sys.modules
    assert capsys.readouterr().err.count("SIMULATED NVML playing") == 3


# ---- scenario behaviour -----------------------------------------------------------------------------------------

def test_healthy_idle(sim):
    pynvml = sim("healthy-idle")
    h = handle(pynvml)
    assert pynvml.nvmlDeviceGetUtilizationRates(h).gpu == 0
    assert pynvml.nvmlDeviceGetCurrentClocksEventReasons(h) == pynvml.nvmlClocksEventReasonGpuIdle
    assert pynvml.nvmlDeviceGetComputeRunningProcesses(h) == []
    assert pynvml.nvmlDeviceGetCudaComputeCapability(h) == (9, 0)
    assert pynvml.nvmlSystemGetCudaDriverVersion() == 13000


def gpm(pynvml, h, metrics):
    first, second = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    pynvml.nvmlGpmSampleGet(h, first)
    pynvml.nvmlGpmSampleGet(h, second)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version, request.numMetrics = pynvml.NVML_GPM_METRICS_GET_VERSION, len(metrics)
    request.sample1, request.sample2 = first, second
    for i, metric in enumerate(metrics):
        request.metrics[i].metricId = metric
    pynvml.nvmlGpmMetricsGet(request)
    return [(request.metrics[i].nvmlReturn, request.metrics[i].value) for i in range(len(metrics))]


def test_busy_training_is_fully_utilized_but_not_fully_working(sim):
    pynvml = sim("busy-training")
    h = handle(pynvml)
    assert pynvml.nvmlDeviceGetUtilizationRates(h).gpu == 100
    assert pynvml.nvmlGpmQueryDeviceSupport(h).isSupportedDevice == 1
    got = gpm(pynvml, h, [pynvml.NVML_GPM_METRIC_SM_UTIL, pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
                          pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, pynvml.NVML_GPM_METRIC_FP64_UTIL])
    # busy-training takes its GPM values from the H200 recording of a bf16 matmul loop; read it here directly.
    recorded = json.loads((Path(__file__).resolve().parents[1] / "snippets" / "fundamentals" / "compute"
                           / "02_busy_vs_utilized.rec.json").read_text(encoding="utf-8"))
    busy = recorded["artifacts"]["busy_vs_utilized.json"]["json"]["busy bf16 matmul"]
    assert [v for _, v in got[:3]] == pytest.approx([busy["sm_activity"], busy["sm_occupancy"], busy["tensor_activity"]])
    assert [r for r, _ in got] == [0, 0, 0, pynvml.NVML_ERROR_NOT_SUPPORTED]
    [process] = pynvml.nvmlDeviceGetComputeRunningProcesses(h)
    assert process.pid == 4242 and pynvml.nvmlSystemGetProcessName(4242) == "python train.py"


def test_thermal_throttle_heats_up_and_slows_down():
    readings = []
    for at in (0, 60, 120, 200):
        with gpusim.activate("thermal-throttle", at=at) as pynvml:
            pynvml.nvmlInit()
            h = handle(pynvml)
            readings.append((pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
                             pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                             pynvml.nvmlDeviceGetCurrentClocksEventReasons(h)))
    temperatures, clocks, reasons = zip(*readings)
    assert list(temperatures) == sorted(temperatures) and temperatures[0] < temperatures[-1]
    assert clocks[0] == 1980 and clocks[-1] < clocks[0]
    assert reasons[0] == 0 and reasons[-1] == THERMAL


def test_power_cap_holds_power_at_the_lowered_limit(sim):
    pynvml = sim("power-cap@15")
    h = handle(pynvml)
    limit = pynvml.nvmlDeviceGetEnforcedPowerLimit(h)
    assert limit == 400_000 and 0.95 * limit <= pynvml.nvmlDeviceGetPowerUsage(h) <= limit
    assert pynvml.nvmlDeviceGetCurrentClocksEventReasons(h) == pynvml.nvmlClocksEventReasonSwPowerCap
    assert pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM) < pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)


def test_ecc_errors_progress_from_corrected_to_a_failed_remap():
    seen = {}
    for at in (30, 100, 200):
        with gpusim.activate("ecc-errors", at=at) as pynvml:
            pynvml.nvmlInit()
            h = handle(pynvml)
            ecc = {(e, c): pynvml.nvmlDeviceGetTotalEccErrors(h, e, c)
                   for e in (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
                   for c in (pynvml.NVML_VOLATILE_ECC, pynvml.NVML_AGGREGATE_ECC)}
            seen[at] = (ecc, pynvml.nvmlDeviceGetRemappedRows(h))
            with pytest.raises(pynvml.NVMLError_NotSupported):
                pynvml.nvmlDeviceGetRetiredPages(h, pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
    unc = (REAL.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, REAL.NVML_VOLATILE_ECC)
    cor = (REAL.NVML_MEMORY_ERROR_TYPE_CORRECTED, REAL.NVML_VOLATILE_ECC)
    assert [seen[at][0][unc] for at in (30, 100, 200)] == [0, 1, 2]
    assert 0 < seen[30][0][cor] < seen[100][0][cor]
    assert all(ecc[(t, REAL.NVML_AGGREGATE_ECC)] >= ecc[(t, REAL.NVML_VOLATILE_ECC)]
               for ecc, _ in seen.values() for t in (0, 1))
    assert [rows[2:] for _, rows in (seen[30], seen[100], seen[200])] == [(0, 0), (1, 0), (1, 1)]


def xids(pynvml, seconds):
    event_set = pynvml.nvmlEventSetCreate()
    for i in range(pynvml.nvmlDeviceGetCount()):
        pynvml.nvmlDeviceRegisterEvents(handle(pynvml, i), pynvml.nvmlEventTypeXidCriticalError, event_set)
    got = []
    try:
        while True:
            event = pynvml.nvmlEventSetWait(event_set, int(seconds * 1000))
            assert event.eventType == pynvml.nvmlEventTypeXidCriticalError
            got.append(event.eventData)
    except pynvml.NVMLError_Timeout:
        pass
    pynvml.nvmlEventSetFree(event_set)
    return got


def test_xid_events_arrive_in_order_through_an_event_set(sim):
    pynvml = sim("xid-events", speed=5)
    assert xids(pynvml, 0.6) == [13, 31, 43, 48, 63, 74, 94, 95]


def test_gpu_lost_raises_gpu_is_lost_after_xid_79(sim):
    pynvml = sim("gpu-lost@29", speed=5)
    h = handle(pynvml)
    assert pynvml.nvmlDeviceGetUtilizationRates(h).gpu == 100
    assert xids(pynvml, 0.5) == [79]
    for call in (lambda: pynvml.nvmlDeviceGetHandleByIndex(0), lambda: pynvml.nvmlDeviceGetMemoryInfo(h),
                 lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)):
        with pytest.raises(pynvml.NVMLError_GpuIsLost) as caught:
            call()
        assert isinstance(caught.value, REAL.NVMLError) and str(caught.value) == "GPU is lost"
    assert pynvml.nvmlDeviceGetCount() == 1


def test_memory_almost_full(sim):
    pynvml = sim("memory-almost-full@120")
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle(pynvml))
    assert memory.used / memory.total >= 0.99 and memory.free == memory.total - memory.used


def test_allocated_idle_holds_memory_without_work(sim):
    pynvml = sim("allocated-idle")
    h = handle(pynvml)
    assert pynvml.nvmlDeviceGetUtilizationRates(h).gpu == 0 and len(pynvml.nvmlDeviceGetComputeRunningProcesses(h)) == 1


def test_eight_gpus_one_hot(sim):
    pynvml = sim("8gpu-one-hot@150")
    assert pynvml.nvmlDeviceGetCount() == 8
    hot = [i for i in range(8) if pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle(pynvml, i)) & THERMAL]
    assert hot == [5]
    uuids = {pynvml.nvmlDeviceGetUUID(handle(pynvml, i)) for i in range(8)}
    assert len(uuids) == 8


def test_eight_gpus_one_lost(sim):
    pynvml = sim("8gpu-one-lost@25")
    lost = []
    for i in range(8):
        try:
            pynvml.nvmlDeviceGetHandleByIndex(i)
        except pynvml.NVMLError_GpuIsLost:
            lost.append(i)
    assert lost == [3]
    assert pynvml.nvmlDeviceGetComputeRunningProcesses(handle(pynvml, 0)) == []  # the job died with GPU 3


# ---- time --------------------------------------------------------------------------------------------------------

def test_speed_fast_forwards_the_scenario(sim):
    pynvml = sim("thermal-throttle", speed=2000)
    h = handle(pynvml)
    before = pynvml.__gpusim__.now()
    time.sleep(0.15)
    assert pynvml.__gpusim__.now() - before >= 0.15 * 2000
    assert pynvml.nvmlDeviceGetCurrentClocksEventReasons(h) == THERMAL


def test_environment_variables_set_speed_and_start(monkeypatch, sim):
    monkeypatch.setenv(gpusim.ENV_SPEED, "3")
    monkeypatch.setenv(gpusim.ENV_AT, "200")
    pynvml = sim("thermal-throttle")
    assert pynvml.__gpusim__.speed == 3 and pynvml.__gpusim__.now() >= 200
    assert sim("thermal-throttle@5").__gpusim__.at == 5  # NAME@SECONDS wins over the variable


# ---- bad input: one line naming the file and the fix ---------------------------------------------------------

@pytest.mark.parametrize("spec, words", [
    ("nope", ["unknown GPU scenario 'nope'", "healthy-idle", "handbook/gpusim/scenarios"]),
    ("thermal-throttle@soon", ["thermal-throttle@='soon'", "seconds"]),
    ("missing.toml", ["missing.toml: no such scenario file"]),
])
def test_bad_scenario_names_are_one_line_errors(spec, words):
    with pytest.raises(gpusim.ScenarioError) as caught:
        gpusim.activate(spec).__enter__()
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


BASE = '''description = "test"
[gpu_defaults]
model = "X"
memory_total_mib = 1000
power_limit_w = 300
sm_clock_max_mhz = 1500
mem_clock_max_mhz = 1200
temperature_slowdown_c = 85
temperature_shutdown_c = 90
'''


@pytest.mark.parametrize("body, words", [
    (BASE + "[[gpus]]\ntemprature_c = 50\n", ["unknown key 'temprature_c'", "temperature_c"]),
    (BASE + "[[gpus]]\ntemperature_c = [[10, 50], [5, 60]]\n", ["temperature_c", "times must increase"]),
    (BASE + "[[gpus]]\ngpu_util_pct = 140\n", ["gpu_util_pct", "outside 0..100"]),
    (BASE + "[[gpus]]\nmemory_used_mib = 2000\n", ["exceeds memory_total_mib"]),
    (BASE + "[[gpus]]\nclocks_event_reasons = [\"too_hot\"]\n", ["unknown clock event reason", "sw_thermal_slowdown"]),
    (BASE + "[[gpus]]\nxid = [79]\n", ["xid must be a list of [seconds, code] pairs"]),
    (BASE.replace('model = "X"\n', "") + "[[gpus]]\n", ["model is required"]),
    ('description = "x"\n[system]\ninit_error = "OOPS"\n', ["init_error 'OOPS'", "LIBRARY_NOT_FOUND"]),
    (BASE + "[[gpus]\n", ["not valid TOML"]),
])
def test_malformed_scenario_files_are_one_line_errors(tmp_path, body, words):
    path = tmp_path / "mine.toml"
    path.write_text(body)
    with pytest.raises(gpusim.ScenarioError) as caught:
        gpusim.activate(str(path)).__enter__()
    message = str(caught.value)
    assert message.startswith(str(path) + ":") and "\n" not in message, message
    assert all(w in message for w in words), message


# ---- the commands ------------------------------------------------------------------------------------------------

def gpusim_command(*args, env=None):
    return subprocess.run([sys.executable, "-m", "handbook.gpusim", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_list_shows_every_scenario_with_its_description():
    done = gpusim_command("list")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == SCENARIOS
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_run_gives_the_program_and_its_children_the_simulator():
    child = ("import subprocess, sys; print(subprocess.run([sys.executable, '-c', "
             "'import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlDeviceGetCount())'], "
             "capture_output=True, text=True).stdout.strip())")
    program = ("import os, pynvml; pynvml.nvmlInit(); "
               "print(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(5)), os.environ['HANDBOOK_GPUSIM']); "
               + child)
    done = gpusim_command("run", "8gpu-one-hot@150", "--", sys.executable, "-c", program)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["NVIDIA H100 80GB HBM3 (simulated) 8gpu-one-hot@150", "8"]
    assert "SIMULATED" in done.stderr and "running" in done.stderr


def test_run_passes_the_exit_status_and_speed():
    done = gpusim_command("run", "healthy-idle", "--speed", "7", "--", sys.executable, "-c",
                          "import os, sys; sys.exit(int(float(os.environ['HANDBOOK_GPUSIM_SPEED'])))")
    assert done.returncode == 7


@pytest.mark.parametrize("args, words", [
    (["run", "nope", "--", "true"], ["gpusim: unknown GPU scenario 'nope'"]),
    (["run", "healthy-idle", "--speed", "fast", "--", "true"], ["--speed='fast'", "number > 0"]),
    (["run", "healthy-idle", "--", "no-such-program-here"], ["cannot run 'no-such-program-here'"]),
])
def test_run_refuses_bad_input_in_one_line(args, words):
    done = gpusim_command(*args)
    assert done.returncode in (2, 127)
    last = done.stderr.strip().splitlines()[-1]
    assert all(w in last for w in words), done.stderr


def test_run_without_a_command_is_a_usage_error():
    done = gpusim_command("run", "healthy-idle")
    assert done.returncode == 2 and "give the program after --" in done.stderr


def test_the_shim_without_a_scenario_is_the_real_module():
    env = {"PYTHONPATH": os.pathsep.join([str(real.SHIM_DIR), str(ROOT)]), gpusim.ENV_SCENARIO: ""}
    done = subprocess.run([sys.executable, "-c", "import pynvml; print(hasattr(pynvml, '__gpusim__'), "
                           "hasattr(pynvml, '_nvmlGetFunctionPointer'))"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_the_monitoring_chapter_lists_every_scenario():
    page = (ROOT / "docs/monitoring/index.md").read_text()
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", page, flags=re.M)
    assert sorted(listed) == SCENARIOS


# ---- MIG (issue 12): instances with their own memory and UUIDs, and what CUDA_VISIBLE_DEVICES makes visible ----

def mig_module(name="mig-h200-mixed"):
    module = gpusim.simulated_module(name, banner=False)
    module.nvmlInit()
    return module


def test_mig_instances_have_their_own_memory_uuid_and_ids():
    pynvml = mig_module()
    gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetMigMode(gpu) == [pynvml.NVML_DEVICE_MIG_ENABLE] * 2
    assert pynvml.nvmlDeviceGetMaxMigDeviceCount(gpu) == 7
    instances = [pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, i) for i in range(4)]
    with pytest.raises(pynvml.NVMLError_NotFound):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 4)
    whole = pynvml.nvmlDeviceGetMemoryInfo(gpu).total
    sizes = [pynvml.nvmlDeviceGetMemoryInfo(m).total for m in instances]
    assert sizes == [whole * 4 // 8 // 2**20 * 2**20, whole * 2 // 8 // 2**20 * 2**20] + [whole // 8 // 2**20 * 2**20] * 2
    assert pynvml.nvmlDeviceGetMemoryInfo(instances[2]).used == 9000 * 2**20
    uuids = [pynvml.nvmlDeviceGetUUID(m) for m in instances]
    assert all(u.startswith("MIG-") for u in uuids) and len(set(uuids)) == 4
    assert [pynvml.nvmlDeviceGetGpuInstanceId(m) for m in instances] == [1, 2, 3, 4]
    assert pynvml.nvmlDeviceGetComputeInstanceId(instances[0]) == 0
    assert pynvml.nvmlDeviceIsMigDeviceHandle(instances[0]) and not pynvml.nvmlDeviceIsMigDeviceHandle(gpu)
    parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(instances[3])
    assert pynvml.nvmlDeviceGetUUID(parent) == pynvml.nvmlDeviceGetUUID(gpu)
    assert pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByUUID(uuids[1])) == uuids[1]
    assert "MIG 2g.35gb" in pynvml.nvmlDeviceGetName(instances[1])
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetGpuInstanceId(gpu)  # a whole GPU has no GPU instance id


def test_a_gpu_without_mig_answers_as_before():
    pynvml = mig_module("healthy-idle")
    gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetMigMode(gpu) == [pynvml.NVML_DEVICE_MIG_DISABLE] * 2
    assert pynvml.nvmlDeviceGetMaxMigDeviceCount(gpu) == 0
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu, 0)


@pytest.mark.parametrize("body, message", [
    ('[[gpus.mig]]\nprofile = "1g.18gb"\n', "need mig_mode = true"),
    ('mig_mode = true\n[[gpus.mig]]\nprofile = "1g.19gb"\n', "profile '1g.19gb' is not a MIG profile"),
    ('mig_mode = true\n' + '[[gpus.mig]]\nprofile = "4g.71gb"\n' * 2, "more than the GPU's 7 compute / 8 memory slices"),
    ('mig_mode = true\n[[gpus.mig]]\nprofile = "1g.18gb"\nmemory_used_mib = 99999\n', "outside"),
    ('mig_mode = true\n[[gpus.mig]]\nprofile = "1g.18gb"\ncolour = 1\n', "unknown key(s) colour"),
])
def test_malformed_mig_declarations_are_one_line_errors(tmp_path, body, message):
    path = tmp_path / "bad-mig.toml"
    path.write_text('description = "x"\n[gpu_defaults]\nmodel = "NVIDIA H200"\nmemory_total_mib = 143771\n'
                    'power_limit_w = 700\nsm_clock_max_mhz = 1980\nmem_clock_max_mhz = 3201\n'
                    'temperature_slowdown_c = 87\ntemperature_shutdown_c = 92\n[[gpus]]\n' + body)
    with pytest.raises(scenario.ScenarioError, match=re.escape(message)) as err:
        scenario.load(str(path))
    assert "\n" not in str(err.value)


def detect_under(name, visible):
    """requirements.detect() as a program would see it with the simulator as pynvml and this CUDA_VISIBLE_DEVICES."""
    from handbook.harness import requirements

    code = ("import os, json; from handbook.harness import requirements as r; hw = r.detect(); "
            "print(json.dumps({'gpus': hw.gpus, 'mem': hw.min_mem_bytes, 'why': hw.why_none, "
            "'uuids': [d.uuid for d in hw.devices]}))")
    env = gpusim.child_env(name, base={k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"})
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    assert requirements  # the module under test, imported above for its name
    return json.loads(done.stdout)


def test_detection_honours_cuda_visible_devices_indices_uuids_and_mig():
    pynvml = mig_module("8gpu-one-hot")
    uuids = [pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(8)]
    assert detect_under("8gpu-one-hot", None)["gpus"] == 8
    empty = detect_under("8gpu-one-hot", "")
    assert empty["gpus"] == 0 and empty["why"] == 'CUDA_VISIBLE_DEVICES="" hides every GPU'
    assert detect_under("8gpu-one-hot", "3,1")["uuids"] == [uuids[3], uuids[1]]
    assert detect_under("8gpu-one-hot", "0,9,1")["uuids"] == [uuids[0]]  # CUDA stops at the first bad entry
    assert detect_under("8gpu-one-hot", f"{uuids[5]},{uuids[2][:13]}")["uuids"] == [uuids[5], uuids[2]]  # prefixes
    assert detect_under("8gpu-one-hot", "GPU-no-such")["gpus"] == 0
    mig = mig_module()
    parent = mig.nvmlDeviceGetHandleByIndex(0)
    slices = [mig.nvmlDeviceGetUUID(mig.nvmlDeviceGetMigDeviceHandleByIndex(parent, i)) for i in range(4)]
    one_g = detect_under("mig-h200-mixed", slices[3])
    assert one_g["uuids"] == [slices[3]] and one_g["mem"] == mig.nvmlDeviceGetMemoryInfo(
        mig.nvmlDeviceGetMigDeviceHandleByIndex(parent, 3)).total
    assert detect_under("mig-h200-mixed", None)["uuids"] == [slices[0]]  # a process sees one MIG device
    assert detect_under("mig-h200-mixed", f"{slices[1]},{slices[2]}")["uuids"] == [slices[1]]
    assert detect_under("mig-h200-enabled-empty", None)["gpus"] == 0


@pytest.mark.gpu
def test_detection_on_real_nvml_honours_cuda_visible_devices():
    """On the GPU runner: the same rules against the real driver."""
    from handbook.harness import requirements

    requirements._detect.cache_clear()
    everything = requirements._detect(None)
    if not everything.gpus:
        pytest.skip(f"needs a GPU: {everything.why_none}")
    first = everything.devices[0].uuid
    assert requirements._detect("").gpus == 0
    assert [d.uuid for d in requirements._detect("0").devices] == [first]
    assert [d.uuid for d in requirements._detect(first).devices] == [first]
    assert requirements._detect("GPU-ffffffff-no-such").gpus == 0
