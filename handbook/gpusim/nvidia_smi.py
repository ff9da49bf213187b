"""A simulator-driven `nvidia-smi` stand-in, shaped like the real tool of driver branch 580, played from a scenario.

How to put it on PATH (what a `sim="SCENARIO"` console/bash block needs):

    env = gpusim.child_env("thermal-throttle@200")          # HANDBOOK_GPUSIM=..., PYTHONPATH with the package
    env["PATH"] = f"{gpusim.nvidia_smi.BIN_DIR}{os.pathsep}{env['PATH']}"
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable         # the interpreter that has nvidia-ml-py and handbook
    subprocess.run(["bash", "-c", "nvidia-smi --query-gpu=clocks_event_reasons.active --format=csv"], env=env)

BIN_DIR (handbook/gpusim/bin/) holds two launchers, `nvidia-smi` (this module) and `dmesg` (kernel_log.py: the
scenario's kernel log). Both read HANDBOOK_GPUSIM like `import pynvml` does.

Supported: plain `nvidia-smi`; `-L`; `-q` and `-q -d SECTION[,SECTION]` (MEMORY, UTILIZATION, ECC, TEMPERATURE,
POWER, CLOCK, COMPUTE, PERFORMANCE, PIDS, ROW_REMAPPER, PAGE_RETIREMENT); `--query-gpu=FIELDS` and
`--query-compute-apps=FIELDS` with `--format=csv[,noheader][,nounits]`; `-i INDEX`; `nvlink -s`.
What the real tool does and this one copies: the -q layout of the 580 branch (labels padded to column 55, the
process block at column 42), Hopper's T.Limit temperature lines, the requested vs current power limit, the SRAM
ECC lines and threshold flag, the bank-remap histogram, the clock-event-reason counters, -d sections printed in
the tool's own order whatever order they are asked in, and CSV headers that name a field by its canonical name
(`clocks.sm` is headed `clocks.current.sm [MHz]`, `used_memory` is headed `used_gpu_memory [MiB]`).
An unknown --query-gpu field is refused the way the real tool refuses it. Product names end in "(simulated)".
checks/test_gpusim_real_tool.py compares this output with the real tool's, recorded on the GPU runner.
"""
import os
import re
import sys
import time
from pathlib import Path

from handbook.gpusim import ScenarioError, run_tool, simulated_module

BIN_DIR = Path(__file__).resolve().parent / "bin"
LABEL_WIDTH = 55  # `-q` labels are padded so that the colon sits in this column (driver 580)
PROCESS_WIDTH = 42  # ...except inside the Processes block, which keeps the older width
REASONS = [  # (query-field suffix, -q label, bit name in pynvml, -q nesting depth)
    ("gpu_idle", "Idle", "nvmlClocksEventReasonGpuIdle", 2),
    ("applications_clocks_setting", "Applications Clocks Setting", "nvmlClocksEventReasonApplicationsClocksSetting", 2),
    ("sw_power_cap", "SW Power Cap", "nvmlClocksEventReasonSwPowerCap", 2),
    ("hw_slowdown", "HW Slowdown", "nvmlClocksEventReasonHwSlowdown", 2),
    ("hw_thermal_slowdown", "HW Thermal Slowdown", "nvmlClocksEventReasonHwThermalSlowdown", 3),
    ("hw_power_brake_slowdown", "HW Power Brake Slowdown", "nvmlClocksEventReasonHwPowerBrakeSlowdown", 3),
    ("sync_boost", "Sync Boost", "nvmlClocksEventReasonSyncBoost", 2),
    ("sw_thermal_slowdown", "SW Thermal Slowdown", "nvmlClocksEventReasonSwThermalSlowdown", 2),
    # -q shows it, but no --query-gpu field exists for it (nvidia-smi 580's --help-query-gpu lists none)
    (None, "Display Clock Setting", "nvmlClocksEventReasonDisplayClockSetting", 2),
]
COUNTERS = [  # (query-field suffix, -q label of "Clocks Event Reasons Counters", NVML field id name)
    ("sw_power_cap", "SW Power Capping", "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP"),
    ("sync_boost", "Sync Boost", "NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST"),
    ("sw_thermal_slowdown", "SW Thermal Slowdown", "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN"),
    ("hw_thermal_slowdown", "HW Thermal Slowdown", "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN"),
    ("hw_power_brake_slowdown", "HW Power Braking", "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN"),
]
RECOVERY = {0: "None", 1: "Reset", 2: "Reboot", 3: "Drain P2P", 4: "Drain and Reset", 5: "Recover IMEX Domain",
            6: "Bus Reset", 7: "System Reboot"}
FABRIC_STATE = {0: "N/A", 1: "Not Started", 2: "In Progress", 3: "Completed"}
INIT_FAILURES = {  # NVML_ERROR_<name> at nvmlInit -> (what nvidia-smi prints, its exit code)
    "DRIVER_NOT_LOADED": ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                          "Make sure that the latest NVIDIA driver is installed and running.", 9),
    "LIBRARY_NOT_FOUND": ("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure that "
                          "the NVIDIA Display Driver is properly installed and present in your system.\nPlease also "
                          "try adding directory that contains libnvidia-ml.so to your system PATH.", 12),
    "LIB_RM_VERSION_MISMATCH": ("Failed to initialize NVML: Driver/library version mismatch", 18),
    "UNKNOWN": ("Failed to initialize NVML: Unknown Error", 255),
}
# Aliases the real --help-query-gpu lists as `"canonical" or "alias"`: the CSV header names the canonical one.
GPU_ALIASES = {
    "gpu_name": "name", "gpu_serial": "serial", "gpu_uuid": "uuid", "gpu_bus_id": "pci.bus_id",
    "clocks.gr": "clocks.current.graphics", "clocks.sm": "clocks.current.sm", "clocks.mem": "clocks.current.memory",
    "clocks.max.gr": "clocks.max.graphics", "clocks.max.mem": "clocks.max.memory",
    "gpu.power.requested_limit": "power.limit", "gpu.power.current_limit": "enforced.power.limit",
    "gpu.power.default_limit": "power.default_limit", "gpu.power.min_limit": "power.min_limit",
    "gpu.power.max_limit": "power.max_limit", "gpu.power.draw.average": "power.draw.average",
    "gpu.power.draw.instant": "power.draw.instant",
    "remapped_rows.sbe": "remapped_rows.correctable", "remapped_rows.dbe": "remapped_rows.uncorrectable",
}
APPS_ALIASES = {"name": "process_name", "used_memory": "used_gpu_memory"}


class Usage(Exception):
    """A command line nvidia-smi refuses: (message, exit code)."""


class Absent(Exception):
    """A value the device does not report: printed as N/A ([N/A] in CSV)."""


def read(nv, function, *args):
    """function(*args), with NVML's not-supported as Absent; other NVML errors propagate."""
    try:
        return function(*args)
    except nv.NVMLError_NotSupported:
        raise Absent() from None


def ecc_counter(nv, h, error_type, counter, location=None):
    if not nv.nvmlDeviceGetEccMode(h)[0]:
        raise Absent()
    if location is None:
        return read(nv, nv.nvmlDeviceGetTotalEccErrors, h, error_type, counter)
    return read(nv, nv.nvmlDeviceGetMemoryErrorCounter, h, error_type, counter, location)


def sram_status(nv, h):
    import ctypes

    status = nv.c_nvmlEccSramErrorStatus_v1_t()
    read(nv, nv.nvmlDeviceGetSramEccErrorStatus, h, ctypes.byref(status))
    return status


def fabric(nv, h):
    import ctypes

    info = nv.c_nvmlGpuFabricInfo_t()
    read(nv, nv.nvmlDeviceGetGpuFabricInfo, h, ctypes.byref(info))
    return info


def counter_us(nv, h, field):
    value = nv.nvmlDeviceGetFieldValues(h, [getattr(nv, field)])[0]
    if value.nvmlReturn != nv.NVML_SUCCESS:
        raise Absent()
    return value.value.ullVal // 1000


def margin(nv, h):
    return read(nv, nv.nvmlDeviceGetMarginTemperature, h)


def remap_histogram(nv, h):
    """(max, high, partial, low, none) banks: one bank leaves `max` per remapped row; a failure empties one."""
    correctable, uncorrectable, _, failed = nv.nvmlDeviceGetRemappedRows(h)
    banks = 3072 if nv.nvmlDeviceGetMemoryInfo(h).total > 100 * 2**30 else 2560
    used = min(correctable + uncorrectable, banks)
    none = 1 if failed else 0
    return banks - used - none, used, 0, 0, none


def fields(nv):
    """Canonical --query-gpu field -> (function(handle) -> value, unit or None)."""
    def mib(v):
        return v // 2**20

    def watts(v):
        return f"{v / 1000:.2f}"

    def reason(bit):
        return lambda h: "Active" if nv.nvmlDeviceGetCurrentClocksEventReasons(h) & getattr(nv, bit) else "Not Active"

    def mem(h):
        return nv.nvmlDeviceGetMemoryInfo(h, nv.nvmlMemory_v2)

    table = {
        "timestamp": (lambda h: stamp(nv, "%Y/%m/%d %H:%M:%S.000"), None),
        "driver_version": (lambda h: nv.nvmlSystemGetDriverVersion(), None),
        "count": (lambda h: nv.nvmlDeviceGetCount(), None),
        "index": (nv.nvmlDeviceGetIndex, None),
        "name": (nv.nvmlDeviceGetName, None),
        "serial": (nv.nvmlDeviceGetSerial, None),
        "uuid": (nv.nvmlDeviceGetUUID, None),
        "pci.bus_id": (lambda h: nv.nvmlDeviceGetPciInfo(h).busId, None),
        "persistence_mode": (lambda h: "Enabled" if nv.nvmlDeviceGetPersistenceMode(h) else "Disabled", None),
        "compute_mode": (lambda h: "Default", None),
        "compute_cap": (lambda h: "{}.{}".format(*nv.nvmlDeviceGetCudaComputeCapability(h)), None),
        "pstate": (lambda h: f"P{nv.nvmlDeviceGetPerformanceState(h)}", None),
        "gpu_recovery_action": (lambda h: RECOVERY.get(recovery_action(nv, h), "N/A"), None),
        "temperature.gpu": (lambda h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU), None),
        "temperature.gpu.tlimit": (lambda h: margin(nv, h), None),
        "temperature.memory": (lambda h: memory_temperature(nv, h), None),
        "utilization.gpu": (lambda h: nv.nvmlDeviceGetUtilizationRates(h).gpu, "%"),
        "utilization.memory": (lambda h: nv.nvmlDeviceGetUtilizationRates(h).memory, "%"),
        "memory.total": (lambda h: mib(mem(h).total), "MiB"),
        "memory.reserved": (lambda h: mib(mem(h).reserved), "MiB"),
        "memory.used": (lambda h: mib(mem(h).used), "MiB"),
        "memory.free": (lambda h: mib(mem(h).free), "MiB"),
        "power.draw": (lambda h: watts(nv.nvmlDeviceGetPowerUsage(h)), "W"),
        "power.draw.average": (lambda h: watts(nv.nvmlDeviceGetPowerUsage(h)), "W"),
        "power.draw.instant": (lambda h: watts(nv.nvmlDeviceGetPowerUsage(h)), "W"),
        "power.limit": (lambda h: watts(nv.nvmlDeviceGetPowerManagementLimit(h)), "W"),
        "enforced.power.limit": (lambda h: watts(nv.nvmlDeviceGetEnforcedPowerLimit(h)), "W"),
        "power.default_limit": (lambda h: watts(nv.nvmlDeviceGetPowerManagementDefaultLimit(h)), "W"),
        "power.min_limit": (lambda h: watts(nv.nvmlDeviceGetPowerManagementLimitConstraints(h)[0]), "W"),
        "power.max_limit": (lambda h: watts(nv.nvmlDeviceGetPowerManagementLimitConstraints(h)[1]), "W"),
        "clocks.current.graphics": (lambda h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_GRAPHICS), "MHz"),
        "clocks.current.sm": (lambda h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM), "MHz"),
        "clocks.current.memory": (lambda h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM), "MHz"),
        "clocks.max.graphics": (lambda h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_GRAPHICS), "MHz"),
        "clocks.max.sm": (lambda h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM), "MHz"),
        "clocks.max.memory": (lambda h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM), "MHz"),
        "pcie.link.gen.current": (nv.nvmlDeviceGetCurrPcieLinkGeneration, None),
        "pcie.link.gen.max": (nv.nvmlDeviceGetMaxPcieLinkGeneration, None),
        "pcie.link.width.current": (nv.nvmlDeviceGetCurrPcieLinkWidth, None),
        "pcie.link.width.max": (nv.nvmlDeviceGetMaxPcieLinkWidth, None),
        "ecc.mode.current": (lambda h: "Enabled" if nv.nvmlDeviceGetEccMode(h)[0] else "Disabled", None),
        "ecc.mode.pending": (lambda h: "Enabled" if nv.nvmlDeviceGetEccMode(h)[1] else "Disabled", None),
        "ecc.errors.uncorrected.aggregate.sram.thresholdExceeded":
            (lambda h: "Yes" if sram_status(nv, h).bThresholdExceeded else "No", None),
        "retired_pages.pending": (lambda h: read(nv, nv.nvmlDeviceGetRetiredPagesPendingStatus, h), None),
        "remapped_rows.correctable": (lambda h: nv.nvmlDeviceGetRemappedRows(h)[0], None),
        "remapped_rows.uncorrectable": (lambda h: nv.nvmlDeviceGetRemappedRows(h)[1], None),
        "remapped_rows.pending": (lambda h: "Yes" if nv.nvmlDeviceGetRemappedRows(h)[2] else "No", None),
        "remapped_rows.failure": (lambda h: "Yes" if nv.nvmlDeviceGetRemappedRows(h)[3] else "No", None),
        "mig.mode.current": (lambda h: "Enabled" if nv.nvmlDeviceGetMigMode(h)[0] else "Disabled", None),
        "mig.mode.pending": (lambda h: "Enabled" if nv.nvmlDeviceGetMigMode(h)[1] else "Disabled", None),
        "fabric.state": (lambda h: FABRIC_STATE[fabric(nv, h).state], None),
        "fabric.status": (lambda h: fabric_status(nv, fabric(nv, h)), None),
    }
    for i, name in enumerate(("max", "high", "partial", "low", "none")):
        table[f"remapped_rows.histogram.{name}"] = (lambda h, i=i: remap_histogram(nv, h)[i], None)
    for kind, error_type in (("corrected", nv.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                             ("uncorrected", nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
        for scope, counter in (("volatile", nv.NVML_VOLATILE_ECC), ("aggregate", nv.NVML_AGGREGATE_ECC)):
            table[f"ecc.errors.{kind}.{scope}.total"] = (
                lambda h, e=error_type, c=counter: ecc_counter(nv, h, e, c), None)
            for place, location in (("dram", nv.NVML_MEMORY_LOCATION_DRAM), ("sram", nv.NVML_MEMORY_LOCATION_SRAM)):
                table[f"ecc.errors.{kind}.{scope}.{place}"] = (
                    lambda h, e=error_type, c=counter, loc=location: ecc_counter(nv, h, e, c, loc), None)
    for prefix in ("clocks_event_reasons", "clocks_throttle_reasons"):  # the old name still works
        table[f"{prefix}.active"] = (lambda h: f"0x{nv.nvmlDeviceGetCurrentClocksEventReasons(h):016x}", None)
        table[f"{prefix}.supported"] = (lambda h: f"0x{nv.nvmlDeviceGetSupportedClocksEventReasons(h):016x}", None)
        for suffix, _, bit, _ in (r for r in REASONS if r[0]):
            table[f"{prefix}.{suffix}"] = (reason(bit), None)
    for suffix, _, field in COUNTERS:
        table[f"clocks_event_reasons_counters.{suffix}"] = (lambda h, f=field: counter_us(nv, h, f), "us")
    return table


def recovery_action(nv, h):
    value = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])[0]
    if value.nvmlReturn != nv.NVML_SUCCESS:
        raise Absent()
    return value.value.uiVal


def fabric_status(nv, info):
    if info.state != nv.NVML_GPU_FABRIC_STATE_COMPLETED:
        return "N/A"
    return "Success" if info.status == nv.NVML_SUCCESS else nv.nvmlErrorString(info.status)


def query_names(names, known, aliases, helper):
    out = []
    for name in names:
        canonical = aliases.get(name, name)
        if canonical not in known:
            raise Usage(f'Field "{name}" is not a valid field to query.\n\n'
                        f'Run "nvidia-smi {helper}" for more information.', 2)
        out.append(canonical)
    return out


def csv_options(fmt: str):
    parts = fmt.split(",")
    if parts[0] != "csv" or set(parts[1:]) - {"noheader", "nounits"}:
        raise Usage(f'"{fmt}" is not a valid format. Use --format=csv[,noheader][,nounits].', 2)
    return "noheader" in parts, "nounits" in parts


def header(names, units, nounits):
    return ", ".join(n if units.get(n) is None or nounits else f"{n} [{units[n]}]" for n in names)


def query_gpu(nv, handles, names, fmt):
    known = fields(nv)
    names = query_names(names, known, GPU_ALIASES, "--help-query-gpu")
    noheader, nounits = csv_options(fmt)
    lines = [] if noheader else [header(names, {n: known[n][1] for n in names}, nounits)]
    for handle in handles:
        row = []
        for n in names:
            function, unit = known[n]
            try:
                value = function(handle)
            except (Absent, nv.NVMLError_NotSupported):
                value, unit = "[N/A]", None
            except nv.NVMLError as err:
                value, unit = f"[{err}]", None
            row.append(f"{value}" if unit is None or nounits else f"{value} {unit}")
        lines.append(", ".join(row))
    return lines


def query_apps(nv, handles, names, fmt):
    units = {"timestamp": None, "gpu_name": None, "gpu_bus_id": None, "gpu_serial": None, "gpu_uuid": None,
             "pid": None, "process_name": None, "used_gpu_memory": "MiB"}
    names = query_names(names, units, APPS_ALIASES, "--help-query-compute-apps")
    noheader, nounits = csv_options(fmt)
    lines = [] if noheader else [header(names, units, nounits)]
    for handle in handles:
        for proc in nv.nvmlDeviceGetComputeRunningProcesses(handle):
            try:
                pname = nv.nvmlSystemGetProcessName(proc.pid)
            except nv.NVMLError_NotFound:
                pname = "[Not Found]"
            values = {"timestamp": stamp(nv, "%Y/%m/%d %H:%M:%S.000"), "gpu_name": nv.nvmlDeviceGetName(handle),
                      "gpu_bus_id": nv.nvmlDeviceGetPciInfo(handle).busId, "gpu_serial": nv.nvmlDeviceGetSerial(handle),
                      "gpu_uuid": nv.nvmlDeviceGetUUID(handle), "pid": proc.pid, "process_name": pname,
                      "used_gpu_memory": proc.usedGpuMemory // 2**20}
            lines.append(", ".join(str(values[n]) if units[n] is None or nounits else f"{values[n]} {units[n]}"
                                   for n in names))
    return lines


# ---- -q ---------------------------------------------------------------------------------------------------------
def kv(label, value, depth, width=LABEL_WIDTH):
    pad = "    " * depth
    return f"{pad}{label:<{width - len(pad)}}: {value}"


def head(label, depth):
    return "    " * depth + label


class Section:
    """Collects the -q lines of one GPU; a value that raises Absent prints N/A, another NVML error its message."""

    def __init__(self, nv):
        self.nv, self.lines = nv, []

    def value(self, function, fmt="{}"):
        try:
            return fmt.format(function())
        except Absent:
            return "N/A"
        except self.nv.NVMLError_NotSupported:
            return "N/A"
        except self.nv.NVMLError as err:
            return str(err)

    def kv(self, label, depth, function, fmt="{}", width=LABEL_WIDTH):
        self.lines.append(kv(label, self.value(function, fmt), depth, width))

    def na(self, label, depth, text="N/A"):
        self.lines.append(kv(label, text, depth))

    def head(self, label, depth=1):
        self.lines.append(head(label, depth))


def section_performance(s, nv, h):
    s.kv("Performance State", 1, lambda: f"P{nv.nvmlDeviceGetPerformanceState(h)}")
    s.head("Clocks Event Reasons")
    for _, label, bit, depth in REASONS:
        s.kv(label, depth, lambda bit=bit: "Active" if nv.nvmlDeviceGetCurrentClocksEventReasons(h) & getattr(nv, bit)
             else "Not Active")
    s.head("Clocks Event Reasons Counters")
    for _, label, field in COUNTERS:
        s.kv(label, 2, lambda field=field: counter_us(nv, h, field), "{} us")


def section_memory(s, nv, h):
    mem = lambda: nv.nvmlDeviceGetMemoryInfo(h, nv.nvmlMemory_v2)  # noqa: E731
    s.head("FB Memory Usage")
    s.kv("Total", 2, lambda: mem().total // 2**20, "{} MiB")
    s.kv("Reserved", 2, lambda: mem().reserved // 2**20, "{} MiB")
    s.kv("Used", 2, lambda: mem().used // 2**20, "{} MiB")
    s.kv("Free", 2, lambda: mem().free // 2**20, "{} MiB")
    s.head("BAR1 Memory Usage")
    for label in ("Total", "Used", "Free"):
        s.na(label, 2)
    s.head("Conf Compute Protected Memory Usage")
    for label in ("Total", "Used", "Free"):
        s.na(label, 2, "0 MiB")


def section_compute(s, nv, h):
    s.na("Compute Mode", 1, "Default")


def section_utilization(s, nv, h):
    s.head("Utilization")
    s.kv("GPU", 2, lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu, "{} %")
    s.kv("Memory", 2, lambda: nv.nvmlDeviceGetUtilizationRates(h).memory, "{} %")
    for label in ("Encoder", "Decoder", "JPEG", "OFA"):
        s.na(label, 2, "0 %")


def section_ecc(s, nv, h):
    on = lambda: "Enabled" if nv.nvmlDeviceGetEccMode(h)[0] else "Disabled"  # noqa: E731
    s.head("ECC Mode")
    s.kv("Current", 2, on)
    s.kv("Pending", 2, lambda: "Enabled" if nv.nvmlDeviceGetEccMode(h)[1] else "Disabled")
    s.head("ECC Errors")
    unc, cor = nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_MEMORY_ERROR_TYPE_CORRECTED
    dram = nv.NVML_MEMORY_LOCATION_DRAM
    for scope, counter, prefix in (("Volatile", nv.NVML_VOLATILE_ECC, "volatile"),
                                   ("Aggregate", nv.NVML_AGGREGATE_ECC, "aggregate")):
        s.head(scope, 2)
        s.kv("SRAM Correctable", 3, lambda p=prefix: getattr(sram_status(nv, h), p + "Cor"))
        s.kv("SRAM Uncorrectable Parity", 3, lambda p=prefix: getattr(sram_status(nv, h), p + "UncParity"))
        s.kv("SRAM Uncorrectable SEC-DED", 3, lambda p=prefix: getattr(sram_status(nv, h), p + "UncSecDed"))
        s.kv("DRAM Correctable", 3, lambda c=counter: ecc_counter(nv, h, cor, c, dram))
        s.kv("DRAM Uncorrectable", 3, lambda c=counter: ecc_counter(nv, h, unc, c, dram))
    s.kv("SRAM Threshold Exceeded", 3, lambda: "Yes" if sram_status(nv, h).bThresholdExceeded else "No")
    s.head("Aggregate Uncorrectable SRAM Sources", 2)
    for label, field in (("SRAM L2", "aggregateUncBucketL2"), ("SRAM SM", "aggregateUncBucketSm"),
                         ("SRAM Microcontroller", "aggregateUncBucketMcu"), ("SRAM PCIE", "aggregateUncBucketPcie"),
                         ("SRAM Other", "aggregateUncBucketOther")):
        s.kv(label, 3, lambda field=field: getattr(sram_status(nv, h), field))
    s.na("Channel Repair Pending", 2, "No")
    s.na("TPC Repair Pending", 2, "No")
    s.na("Unrepairable Memory", 2)


def section_page_retirement(s, nv, h):
    s.head("Retired Pages")
    for label in ("Single Bit ECC", "Double Bit ECC", "Pending Page Blacklist"):
        s.na(label, 2)


def section_row_remapper(s, nv, h):
    rows = lambda: nv.nvmlDeviceGetRemappedRows(h)  # noqa: E731
    s.head("Remapped Rows")
    s.kv("Correctable Error", 2, lambda: rows()[0])
    s.kv("Uncorrectable Error", 2, lambda: rows()[1])
    s.kv("Pending", 2, lambda: "Yes" if rows()[2] else "No")
    s.kv("Remapping Failure Occurred", 2, lambda: "Yes" if rows()[3] else "No")
    s.head("Bank Remap Availability Histogram", 2)
    for i, label in enumerate(("Max", "High", "Partial", "Low", "None")):
        s.kv(label, 3, lambda i=i: remap_histogram(nv, h)[i], "{} bank(s)")


def section_temperature(s, nv, h):
    threshold = lambda which: nv.nvmlDeviceGetTemperatureThreshold(h, which)  # noqa: E731
    s.head("Temperature")
    s.kv("GPU Current Temp", 2, lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU), "{} C")
    try:  # Hopper and later on 580: thresholds as T.Limit margins, 0 C = the max operating temperature
        margin(nv, h)
        tlimit = True
    except Absent:
        tlimit = False
    except nv.NVMLError:
        tlimit = True
    if tlimit:
        limit = lambda: threshold(nv.NVML_TEMPERATURE_THRESHOLD_GPU_MAX)  # noqa: E731
        s.kv("GPU T.Limit Temp", 2, lambda: margin(nv, h), "{} C")
        s.kv("GPU Shutdown T.Limit Temp", 2, lambda: limit() - threshold(nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN),
             "{} C")
        s.kv("GPU Slowdown T.Limit Temp", 2, lambda: limit() - threshold(nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
             "{} C")
        s.na("GPU Max Operating T.Limit Temp", 2, "0 C")
        s.na("GPU Target Temperature", 2)
        s.kv("Memory Current Temp", 2, lambda: memory_temperature(nv, h), "{} C")
        s.na("Memory Max Operating T.Limit Temp", 2, "0 C")
    else:
        s.na("GPU T.Limit Temp", 2)
        s.kv("GPU Shutdown Temp", 2, lambda: threshold(nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN), "{} C")
        s.kv("GPU Slowdown Temp", 2, lambda: threshold(nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN), "{} C")
        s.kv("GPU Max Operating Temp", 2, lambda: threshold(nv.NVML_TEMPERATURE_THRESHOLD_GPU_MAX), "{} C")
        s.na("GPU Target Temperature", 2)
        s.kv("Memory Current Temp", 2, lambda: memory_temperature(nv, h), "{} C")
        s.kv("Memory Max Operating Temp", 2, lambda: threshold(nv.NVML_TEMPERATURE_THRESHOLD_MEM_MAX), "{} C")


def memory_temperature(nv, h):
    """The HBM temperature: NVML has no sensor enum for it in nvidia-ml-py, so the simulator answers directly."""
    sim = getattr(nv, "__gpusim__", None)
    spec, t = sim._gpu(h)
    return int(round(spec.value("memory_temperature_c", t)))


def section_power(s, nv, h):
    w = lambda f: lambda: f(h) / 1000  # noqa: E731
    s.head("GPU Power Readings")
    s.kv("Average Power Draw", 2, w(nv.nvmlDeviceGetPowerUsage), "{:.2f} W")
    s.kv("Instantaneous Power Draw", 2, w(nv.nvmlDeviceGetPowerUsage), "{:.2f} W")
    s.kv("Current Power Limit", 2, w(nv.nvmlDeviceGetEnforcedPowerLimit), "{:.2f} W")
    s.kv("Requested Power Limit", 2, w(nv.nvmlDeviceGetPowerManagementLimit), "{:.2f} W")
    s.kv("Default Power Limit", 2, w(nv.nvmlDeviceGetPowerManagementDefaultLimit), "{:.2f} W")
    s.kv("Min Power Limit", 2, lambda: nv.nvmlDeviceGetPowerManagementLimitConstraints(h)[0] / 1000, "{:.2f} W")
    s.kv("Max Power Limit", 2, lambda: nv.nvmlDeviceGetPowerManagementLimitConstraints(h)[1] / 1000, "{:.2f} W")
    s.head("GPU Memory Power Readings ")
    for label in ("Average Power Draw", "Instantaneous Power Draw"):
        s.na(label, 2)
    s.head("Module Power Readings")
    for label in ("Average Power Draw", "Instantaneous Power Draw", "Current Power Limit", "Requested Power Limit",
                  "Default Power Limit", "Min Power Limit", "Max Power Limit"):
        s.na(label, 2)


def section_clock(s, nv, h):
    clock = lambda kind, current=True: lambda: (nv.nvmlDeviceGetClockInfo if current  # noqa: E731
                                                 else nv.nvmlDeviceGetMaxClockInfo)(h, kind)
    s.head("Clocks")
    s.kv("Graphics", 2, clock(nv.NVML_CLOCK_GRAPHICS), "{} MHz")
    s.kv("SM", 2, clock(nv.NVML_CLOCK_SM), "{} MHz")
    s.kv("Memory", 2, clock(nv.NVML_CLOCK_MEM), "{} MHz")
    s.kv("Video", 2, clock(nv.NVML_CLOCK_VIDEO), "{} MHz")
    for block in ("Applications Clocks", "Default Applications Clocks"):
        s.head(block)
        s.kv("Graphics", 2, clock(nv.NVML_CLOCK_GRAPHICS, False), "{} MHz")
        s.kv("Memory", 2, clock(nv.NVML_CLOCK_MEM, False), "{} MHz")
    s.head("Deferred Clocks")
    s.na("Memory", 2)
    s.head("Max Clocks")
    s.kv("Graphics", 2, clock(nv.NVML_CLOCK_GRAPHICS, False), "{} MHz")
    s.kv("SM", 2, clock(nv.NVML_CLOCK_SM, False), "{} MHz")
    s.kv("Memory", 2, clock(nv.NVML_CLOCK_MEM, False), "{} MHz")
    s.kv("Video", 2, clock(nv.NVML_CLOCK_VIDEO, False), "{} MHz")
    s.head("Max Customer Boost Clocks")
    s.kv("Graphics", 2, clock(nv.NVML_CLOCK_GRAPHICS, False), "{} MHz")
    s.head("Clock Policy")
    s.na("Auto Boost", 2)
    s.na("Auto Boost Default", 2)


def section_pids(s, nv, h):
    procs = nv.nvmlDeviceGetComputeRunningProcesses(h)
    if not procs:
        s.na("Processes", 1, "None")
        return
    s.head("Processes")
    for proc in procs:
        try:
            name = nv.nvmlSystemGetProcessName(proc.pid)
        except nv.NVMLError_NotFound:
            name = "[Not Found]"
        s.lines += [kv("GPU instance ID", "N/A", 2, PROCESS_WIDTH), kv("Compute instance ID", "N/A", 2, PROCESS_WIDTH),
                    kv("Process ID", proc.pid, 2, PROCESS_WIDTH), kv("Type", "C", 3, PROCESS_WIDTH),
                    kv("Name", name, 3, PROCESS_WIDTH),
                    kv("Used GPU Memory", f"{proc.usedGpuMemory // 2**20} MiB", 3, PROCESS_WIDTH)]


def identity(s, nv, h):
    """The head of the full report (no -d): identity, modes, recovery action, PCIe link."""
    s.kv("Product Name", 1, lambda: nv.nvmlDeviceGetName(h))
    s.na("Product Brand", 1, "NVIDIA")
    s.kv("Product Architecture", 1, lambda: {(8, 0): "Ampere", (9, 0): "Hopper", (10, 0): "Blackwell",
                                             (12, 0): "Blackwell"}.get(nv.nvmlDeviceGetCudaComputeCapability(h), "N/A"))
    s.na("Display Mode", 1, "Requested functionality has been deprecated")
    s.na("Display Attached", 1, "No")
    s.na("Display Active", 1, "Disabled")
    s.kv("Persistence Mode", 1, lambda: "Enabled" if nv.nvmlDeviceGetPersistenceMode(h) else "Disabled")
    s.na("Addressing Mode", 1, "None")
    s.head("MIG Mode")
    s.kv("Current", 2, lambda: "Enabled" if nv.nvmlDeviceGetMigMode(h)[0] else "Disabled")
    s.kv("Pending", 2, lambda: "Enabled" if nv.nvmlDeviceGetMigMode(h)[1] else "Disabled")
    s.na("Accounting Mode", 1, "Disabled")
    s.na("Accounting Mode Buffer Size", 1, "4000")
    s.head("Driver Model")
    s.na("Current", 2)
    s.na("Pending", 2)
    s.kv("Serial Number", 1, lambda: nv.nvmlDeviceGetSerial(h))
    s.kv("GPU UUID", 1, lambda: nv.nvmlDeviceGetUUID(h))
    s.kv("Minor Number", 1, lambda: nv.nvmlDeviceGetMinorNumber(h))
    s.kv("VBIOS Version", 1, lambda: nv.nvmlDeviceGetVbiosVersion(h))
    s.na("MultiGPU Board", 1, "No")
    s.kv("GPU Recovery Action", 1, lambda: RECOVERY.get(recovery_action(nv, h), "N/A"))
    s.head("PCI")
    s.kv("Bus Id", 2, lambda: nv.nvmlDeviceGetPciInfo(h).busId)
    s.head("GPU Link Info", 2)
    s.head("PCIe Generation", 3)
    s.kv("Max", 4, lambda: nv.nvmlDeviceGetMaxPcieLinkGeneration(h))
    s.kv("Current", 4, lambda: nv.nvmlDeviceGetCurrPcieLinkGeneration(h))
    s.head("Link Width", 3)
    s.kv("Max", 4, lambda: nv.nvmlDeviceGetMaxPcieLinkWidth(h), "{}x")
    s.kv("Current", 4, lambda: nv.nvmlDeviceGetCurrPcieLinkWidth(h), "{}x")
    s.na("Fan Speed", 1)


def section_fabric(s, nv, h):
    s.head("Fabric")
    s.kv("State", 2, lambda: FABRIC_STATE[fabric(nv, h).state])
    s.kv("Status", 2, lambda: fabric_status(nv, fabric(nv, h)))


# -d SECTION -> the blocks it prints; every report prints its blocks in this order, as the real tool does.
ORDER = [("PERFORMANCE", section_performance), ("MEMORY", section_memory), ("COMPUTE", section_compute),
         ("UTILIZATION", section_utilization), ("ECC", section_ecc), ("PAGE_RETIREMENT", section_page_retirement),
         ("ROW_REMAPPER", section_row_remapper), ("TEMPERATURE", section_temperature), ("POWER", section_power),
         ("CLOCK", section_clock), (None, section_fabric), ("PIDS", section_pids)]
SECTIONS = [name for name, _ in ORDER if name]


def query_full(nv, handles, sections):
    cuda = nv.nvmlSystemGetCudaDriverVersion()
    out = ["", "==============NVSMI LOG==============", "", kv("Timestamp", stamp(nv), 0),
           kv("Driver Version", nv.nvmlSystemGetDriverVersion(), 0),
           kv("CUDA Version", f"{cuda // 1000}.{cuda % 1000 // 10}", 0), "",
           kv("Attached GPUs", nv.nvmlDeviceGetCount(), 0)]
    for handle in handles:
        out.append(f"GPU {nv.nvmlDeviceGetPciInfo(handle).busId}")
        s = Section(nv)
        if sections is None:  # the full report: identity first, then every section
            identity(s, nv, handle)
        for name, write in ORDER:
            if sections is None or name in sections:
                write(s, nv, handle)
        out += s.lines + [""]
    return out


def stamp(nv, fmt="%a %b %d %H:%M:%S %Y") -> str:
    """A timestamp on the scenario's clock (a fixed day plus the scenario's seconds), so outputs repeat exactly."""
    text = time.strftime(fmt, time.gmtime(1767225600 + nv.__gpusim__.at))
    return text if "%Y/" in fmt else text + " (simulated)"


def summary(nv, handles):
    """Plain `nvidia-smi`: the real tool's table, column for column (three cells of 41, 24 and 22 characters)."""
    cuda = nv.nvmlSystemGetCudaDriverVersion()
    driver = nv.nvmlSystemGetDriverVersion()
    rule = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"

    def row(a, b, c):
        return f"|{a:<41}|{b:>24}|{c:>22}|"

    out = [stamp(nv), "+" + "-" * 89 + "+",
           f"| NVIDIA-SMI {driver:<23}Driver Version: {driver:<15}CUDA Version: {f'{cuda // 1000}.{cuda % 1000 // 10}':<9}|",
           rule.replace("+", "|", 1)[:-1] + "+",
           row(" GPU  Name                 Persistence-M", " Bus-Id          Disp.A ", " Volatile Uncorr. ECC "),
           row(" Fan  Temp   Perf          Pwr:Usage/Cap", "           Memory-Usage ", " GPU-Util  Compute M. "),
           row("", "", "MIG M. "),
           "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|"]
    for h in handles:
        mem = nv.nvmlDeviceGetMemoryInfo(h, nv.nvmlMemory_v2)
        try:
            ecc = str(nv.nvmlDeviceGetTotalEccErrors(h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC))
        except nv.NVMLError_NotSupported:
            ecc = "N/A"
        name = nv.nvmlDeviceGetName(h)
        name = name if len(name) <= 29 else name[:26] + "..."
        out.append(row(f"{nv.nvmlDeviceGetIndex(h):>4}  {name:<29}  On  ", f"   {nv.nvmlDeviceGetPciInfo(h).busId} Off ",
                       f"{ecc} "))
        power = f"{nv.nvmlDeviceGetPowerUsage(h) // 1000}W / {nv.nvmlDeviceGetEnforcedPowerLimit(h) // 1000:>4}W"
        out.append(row(f" N/A  {nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU):>3}C    "
                       f"P{nv.nvmlDeviceGetPerformanceState(h):<2}{power:>23} ",
                       f"{mem.used // 2**20:>8}MiB / {mem.total // 2**20:>6}MiB ",
                       f"{nv.nvmlDeviceGetUtilizationRates(h).gpu:>3}%      Default "))
        out.append(row("", "", ("Enabled" if nv.nvmlDeviceGetMigMode(h)[0] else "Disabled") + " "))
        out.append(rule)
    out += [" " * 89, "+" + "-" * 89 + "+", f"| {'Processes:':<88}|",
            f"| {' GPU   GI   CI              PID   Type   Process name                        GPU Memory':<88}|",
            f"| {'       ID   ID                                                               Usage':<88}|",
            "|" + "=" * 89 + "|"]
    procs = [(nv.nvmlDeviceGetIndex(h), p) for h in handles for p in nv.nvmlDeviceGetComputeRunningProcesses(h)]
    if not procs:
        out.append(f"|  {'No running processes found':<87}|")
    for index, proc in procs:
        try:
            pname = nv.nvmlSystemGetProcessName(proc.pid)
        except nv.NVMLError_NotFound:
            pname = "[Not Found]"
        out.append(f"| {index:>4}   N/A  N/A  {proc.pid:>15}      C   {pname[:34]:<34}{proc.usedGpuMemory // 2**20:>8}MiB |")
    out.append("+" + "-" * 89 + "+")
    return out


def list_gpus(nv, handles):
    """`nvidia-smi -L`: each GPU, then its MIG devices indented under it."""
    out = []
    for h in handles:
        out.append(f"GPU {nv.nvmlDeviceGetIndex(h)}: {nv.nvmlDeviceGetName(h)} (UUID: {nv.nvmlDeviceGetUUID(h)})")
        if nv.nvmlDeviceGetMigMode(h)[0]:
            for slot in range(nv.nvmlDeviceGetMaxMigDeviceCount(h)):
                try:
                    mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, slot)
                except nv.NVMLError_NotFound:
                    continue
                profile = re.search(r"MIG (\S+)", nv.nvmlDeviceGetName(mig)).group(1)
                out.append(f"  MIG {profile:<11} Device {slot:>2}: (UUID: {nv.nvmlDeviceGetUUID(mig)})")
    return out


def nvlink_status(nv, handles):
    out = []
    for h in handles:
        out.append(f"GPU {nv.nvmlDeviceGetIndex(h)}: {nv.nvmlDeviceGetName(h)} (UUID: {nv.nvmlDeviceGetUUID(h)})")
        for link in range(nv.NVML_NVLINK_MAX_LINKS):
            try:
                up = nv.nvmlDeviceGetNvLinkState(h, link) == nv.NVML_FEATURE_ENABLED
            except nv.NVMLError_NotSupported:
                break
            out.append(f"\t Link {link}: {'26.562 GB/s' if up else '<inactive>'}")
    return out


def parse(argv):
    opts = {"query_gpu": None, "query_apps": None, "format": None, "q": False, "d": None, "i": None, "L": False,
            "nvlink": False}
    args = list(argv)
    if args[:1] == ["nvlink"]:
        if args[1:] not in (["-s"], ["--status"]):
            raise Usage("only `nvidia-smi nvlink -s` is simulated", 2)
        opts["nvlink"] = True
        return opts
    while args:
        arg = args.pop(0)
        key, eq, value = arg.partition("=")
        if key in ("--query-gpu", "--query-compute-apps", "--format", "-d", "--display", "-i", "--id") and not eq:
            if not args:
                raise Usage(f"Option {key} needs a value. Please run 'nvidia-smi -h' for help.", 2)
            value = args.pop(0)
        if key == "--query-gpu":
            opts["query_gpu"] = value.split(",")
        elif key == "--query-compute-apps":
            opts["query_apps"] = value.split(",")
        elif key == "--format":
            opts["format"] = value
        elif key in ("-q", "--query"):
            opts["q"] = True
        elif key in ("-d", "--display"):
            opts["d"] = [s.strip().upper() for s in value.split(",")]
        elif key in ("-i", "--id"):
            opts["i"] = value
        elif key in ("-L", "--list-gpus"):
            opts["L"] = True
        else:
            raise Usage(f"Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n"
                        f"(simulated nvidia-smi: {arg!r} is not one of the forms it plays)", 2)
    if (opts["query_gpu"] or opts["query_apps"]) and not opts["format"]:
        raise Usage("--format=csv is required with --query-gpu / --query-compute-apps.", 2)
    if opts["d"] and (not opts["q"] or set(opts["d"]) - set(SECTIONS)):
        raise Usage("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.", 2)
    return opts


def main(argv=None, scenario=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = scenario or os.environ.get("HANDBOOK_GPUSIM")
    if not spec:
        print("simulated nvidia-smi: set HANDBOOK_GPUSIM=SCENARIO (python -m handbook.gpusim list)", file=sys.stderr)
        return 2
    try:
        opts = parse(argv)
        nv = simulated_module(spec, banner=False)
        nv.__gpusim__.frozen = True  # one snapshot at the scenario's start time: the same output on every run
    except Usage as err:
        print(err.args[0])
        return err.args[1]
    except ScenarioError as err:
        print(f"simulated nvidia-smi: {err}", file=sys.stderr)
        return 2
    try:
        nv.nvmlInit()
    except nv.NVMLError as err:
        name = next((n[len("NVML_ERROR_"):] for n in dir(nv) if n.startswith("NVML_ERROR_") and getattr(nv, n) == err.value), "")
        message, code = INIT_FAILURES.get(name, (f"Failed to initialize NVML: {err}", 255))
        print(message)
        return code
    handles, status = [], 0
    indices = range(nv.nvmlDeviceGetCount())
    if opts["i"] is not None:
        if not opts["i"].isdigit() or int(opts["i"]) not in indices:
            print(f"No devices were found matching the id {opts['i']!r}")  # the real tool's wording: exit 6
            return 6
        indices = [int(opts["i"])]
    lines = []
    for index in indices:
        try:
            handles.append(nv.nvmlDeviceGetHandleByIndex(index))
        except nv.NVMLError_GpuIsLost:
            bus = f"00000000:{0x18 + 0x10 * index:02X}:00.0"
            lines.append(f"Unable to determine the device handle for GPU{bus}: GPU is lost.  "
                         "Reboot the system to recover this GPU")
            status = 15
    try:
        if opts["nvlink"]:
            lines += nvlink_status(nv, handles)
        elif opts["query_gpu"]:
            lines = query_gpu(nv, handles, opts["query_gpu"], opts["format"]) + lines
        elif opts["query_apps"]:
            lines = query_apps(nv, handles, opts["query_apps"], opts["format"]) + lines
        elif opts["q"]:
            lines = query_full(nv, handles, opts["d"]) + lines
        elif opts["L"]:
            lines += list_gpus(nv, handles)
        else:
            lines = summary(nv, handles) + lines
    except Usage as err:
        print(err.args[0])
        return err.args[1]
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    run_tool(main)
