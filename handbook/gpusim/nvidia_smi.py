"""A simulator-driven `nvidia-smi` stand-in: the query forms the troubleshooting runbooks use, played from a scenario.

How to put it on PATH (what a `sim="SCENARIO"` console/bash block needs):

    env = gpusim.child_env("thermal-throttle@200")          # HANDBOOK_GPUSIM=..., PYTHONPATH with the package
    env["PATH"] = f"{gpusim.nvidia_smi.BIN_DIR}{os.pathsep}{env['PATH']}"
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable         # the interpreter that has nvidia-ml-py and handbook
    subprocess.run(["bash", "-c", "nvidia-smi --query-gpu=clocks_event_reasons.active --format=csv"], env=env)

BIN_DIR (handbook/gpusim/bin/) holds two launchers, `nvidia-smi` (this module) and `dmesg` (kernel_log.py: the
scenario's Xid lines as the kernel would log them). Both read HANDBOOK_GPUSIM like `import pynvml` does.

Supported: plain `nvidia-smi`; `-L`; `-q` and `-q -d SECTION[,SECTION]` (MEMORY, UTILIZATION, ECC, TEMPERATURE,
POWER, CLOCK, PERFORMANCE, PIDS, ROW_REMAPPER); `--query-gpu=FIELDS` and `--query-compute-apps=FIELDS` with
`--format=csv[,noheader][,nounits]`; `-i INDEX`; `nvlink -s`. An unknown --query-gpu field is refused the way the
real tool refuses it. Output is shaped like the real tool's; product names end in "(simulated)".
"""
import os
import sys
import time
from pathlib import Path

from . import ScenarioError, run_tool, simulated_module

BIN_DIR = Path(__file__).resolve().parent / "bin"
REASONS = [  # (query-field suffix, -q label, bit name in pynvml)
    ("gpu_idle", "Idle", "nvmlClocksEventReasonGpuIdle"),
    ("applications_clocks_setting", "Applications Clocks Setting", "nvmlClocksEventReasonApplicationsClocksSetting"),
    ("sw_power_cap", "SW Power Cap", "nvmlClocksEventReasonSwPowerCap"),
    ("hw_slowdown", "HW Slowdown", "nvmlClocksEventReasonHwSlowdown"),
    ("hw_thermal_slowdown", "HW Thermal Slowdown", "nvmlClocksEventReasonHwThermalSlowdown"),
    ("hw_power_brake_slowdown", "HW Power Brake Slowdown", "nvmlClocksEventReasonHwPowerBrakeSlowdown"),
    ("sync_boost", "Sync Boost", "nvmlClocksEventReasonSyncBoost"),
    ("sw_thermal_slowdown", "SW Thermal Slowdown", "nvmlClocksEventReasonSwThermalSlowdown"),
    # -q shows it, but no --query-gpu field exists for it (nvidia-smi 580's --help-query-gpu lists none)
    (None, "Display Clock Setting", "nvmlClocksEventReasonDisplayClockSetting"),
]
INIT_FAILURES = {  # NVML_ERROR_<name> at nvmlInit -> (what nvidia-smi prints, its exit code)
    "DRIVER_NOT_LOADED": ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                          "Make sure that the latest NVIDIA driver is installed and running.", 9),
    "LIBRARY_NOT_FOUND": ("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure that "
                          "the NVIDIA Display Driver is properly installed and present in your system.\nPlease also "
                          "try adding directory that contains libnvidia-ml.so to your system PATH.", 12),
    "LIB_RM_VERSION_MISMATCH": ("Failed to initialize NVML: Driver/library version mismatch", 18),
    "UNKNOWN": ("Failed to initialize NVML: Unknown Error", 255),
}


class Usage(Exception):
    """A command line nvidia-smi refuses: (message, exit code)."""


def fields(nv):
    """--query-gpu field -> (function(handle) -> value, unit or None)."""
    def mib(v):
        return v // 2**20

    def reason(bit):
        return lambda h: "Active" if nv.nvmlDeviceGetCurrentClocksEventReasons(h) & getattr(nv, bit) else "Not Active"

    def pcie(get):
        return lambda h: get(h)

    table = {
        "index": (nv.nvmlDeviceGetIndex, None),
        "name": (nv.nvmlDeviceGetName, None),
        "uuid": (nv.nvmlDeviceGetUUID, None),
        "serial": (nv.nvmlDeviceGetSerial, None),
        "pci.bus_id": (lambda h: nv.nvmlDeviceGetPciInfo(h).busId, None),
        "driver_version": (lambda h: nv.nvmlSystemGetDriverVersion(), None),
        "count": (lambda h: nv.nvmlDeviceGetCount(), None),
        "pstate": (lambda h: f"P{nv.nvmlDeviceGetPerformanceState(h)}", None),
        "temperature.gpu": (lambda h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU), None),
        "utilization.gpu": (lambda h: nv.nvmlDeviceGetUtilizationRates(h).gpu, "%"),
        "utilization.memory": (lambda h: nv.nvmlDeviceGetUtilizationRates(h).memory, "%"),
        "memory.total": (lambda h: mib(nv.nvmlDeviceGetMemoryInfo(h).total), "MiB"),
        "memory.used": (lambda h: mib(nv.nvmlDeviceGetMemoryInfo(h).used), "MiB"),
        "memory.free": (lambda h: mib(nv.nvmlDeviceGetMemoryInfo(h).free), "MiB"),
        "power.draw": (lambda h: f"{nv.nvmlDeviceGetPowerUsage(h) / 1000:.2f}", "W"),
        "power.limit": (lambda h: f"{nv.nvmlDeviceGetPowerManagementLimit(h) / 1000:.2f}", "W"),
        "enforced.power.limit": (lambda h: f"{nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000:.2f}", "W"),
        "power.default_limit": (lambda h: f"{nv.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000:.2f}", "W"),
        "clocks.sm": (lambda h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM), "MHz"),
        "clocks.mem": (lambda h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM), "MHz"),
        "clocks.max.sm": (lambda h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM), "MHz"),
        "clocks.max.mem": (lambda h: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM), "MHz"),
        "pcie.link.gen.current": (pcie(nv.nvmlDeviceGetCurrPcieLinkGeneration), None),
        "pcie.link.gen.max": (pcie(nv.nvmlDeviceGetMaxPcieLinkGeneration), None),
        "pcie.link.width.current": (pcie(nv.nvmlDeviceGetCurrPcieLinkWidth), None),
        "pcie.link.width.max": (pcie(nv.nvmlDeviceGetMaxPcieLinkWidth), None),
        "ecc.mode.current": (lambda h: "Enabled" if nv.nvmlDeviceGetEccMode(h)[0] else "Disabled", None),
        "remapped_rows.correctable": (lambda h: nv.nvmlDeviceGetRemappedRows(h)[0], None),
        "remapped_rows.uncorrectable": (lambda h: nv.nvmlDeviceGetRemappedRows(h)[1], None),
        "remapped_rows.pending": (lambda h: "Yes" if nv.nvmlDeviceGetRemappedRows(h)[2] else "No", None),
        "remapped_rows.failure": (lambda h: "Yes" if nv.nvmlDeviceGetRemappedRows(h)[3] else "No", None),
    }
    for kind, error_type in (("corrected", nv.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                             ("uncorrected", nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
        for scope, counter in (("volatile", nv.NVML_VOLATILE_ECC), ("aggregate", nv.NVML_AGGREGATE_ECC)):
            table[f"ecc.errors.{kind}.{scope}.total"] = (
                lambda h, e=error_type, c=counter: nv.nvmlDeviceGetTotalEccErrors(h, e, c), None)
    for prefix in ("clocks_event_reasons", "clocks_throttle_reasons"):  # the old name still works
        table[f"{prefix}.active"] = (lambda h: f"0x{nv.nvmlDeviceGetCurrentClocksEventReasons(h):016x}", None)
        for suffix, _, bit in (r for r in REASONS if r[0]):
            table[f"{prefix}.{suffix}"] = (reason(bit), None)
    return table


def csv_options(fmt: str):
    parts = fmt.split(",")
    if parts[0] != "csv" or set(parts[1:]) - {"noheader", "nounits"}:
        raise Usage(f'"{fmt}" is not a valid format. Use --format=csv[,noheader][,nounits].', 2)
    return "noheader" in parts, "nounits" in parts


def query_gpu(nv, handles, names, fmt):
    known = fields(nv)
    for name in names:
        if name not in known:
            raise Usage(f'Field "{name}" is not a valid field to query.\n\n'
                        'Run "nvidia-smi --help-query-gpu" for more information.', 2)
    noheader, nounits = csv_options(fmt)
    lines = [] if noheader else [", ".join(n if known[n][1] is None or nounits else f"{n} [{known[n][1]}]"
                                           for n in names)]
    for handle in handles:
        row = []
        for n in names:
            function, unit = known[n]
            try:
                value = function(handle)
            except nv.NVMLError_NotSupported:
                value, unit = "[N/A]", None
            row.append(f"{value}" if unit is None or nounits else f"{value} {unit}")
        lines.append(", ".join(row))
    return lines


def query_apps(nv, handles, names, fmt):
    known = {"pid": None, "process_name": None, "used_memory": "MiB", "gpu_uuid": None, "gpu_bus_id": None}
    for name in names:
        if name not in known:
            raise Usage(f'Field "{name}" is not a valid field to query.\n\n'
                        'Run "nvidia-smi --help-query-compute-apps" for more information.', 2)
    noheader, nounits = csv_options(fmt)
    lines = [] if noheader else [", ".join(n if known[n] is None or nounits else f"{n} [{known[n]}]" for n in names)]
    for handle in handles:
        for proc in nv.nvmlDeviceGetComputeRunningProcesses(handle):
            try:
                pname = nv.nvmlSystemGetProcessName(proc.pid)
            except nv.NVMLError_NotFound:
                pname = "[Not Found]"
            values = {"pid": proc.pid, "process_name": pname, "used_memory": proc.usedGpuMemory // 2**20,
                      "gpu_uuid": nv.nvmlDeviceGetUUID(handle), "gpu_bus_id": nv.nvmlDeviceGetPciInfo(handle).busId}
            lines.append(", ".join(str(values[n]) if known[n] is None or nounits else f"{values[n]} {known[n]}"
                                   for n in names))
    return lines


def kv(label, value, depth):
    pad = "    " * depth
    return f"{pad}{label:<{42 - len(pad)}}: {value}"


def section_lines(nv, handle, section):
    """One -q display section of one GPU, in the real tool's layout."""
    out = []
    if section == "MEMORY":
        mem = nv.nvmlDeviceGetMemoryInfo(handle)
        out += ["    FB Memory Usage", kv("Total", f"{mem.total // 2**20} MiB", 2),
                kv("Used", f"{mem.used // 2**20} MiB", 2), kv("Free", f"{mem.free // 2**20} MiB", 2)]
    elif section == "UTILIZATION":
        util = nv.nvmlDeviceGetUtilizationRates(handle)
        out += ["    Utilization", kv("GPU", f"{util.gpu} %", 2), kv("Memory", f"{util.memory} %", 2)]
    elif section == "ECC":
        on = nv.nvmlDeviceGetEccMode(handle)[0]
        out += ["    ECC Mode", kv("Current", "Enabled" if on else "Disabled", 2),
                kv("Pending", "Enabled" if on else "Disabled", 2), "    ECC Errors"]
        for scope, counter in (("Volatile", nv.NVML_VOLATILE_ECC), ("Aggregate", nv.NVML_AGGREGATE_ECC)):
            out.append(f"        {scope}")
            for label, error_type in (("DRAM Correctable", nv.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                                      ("DRAM Uncorrectable", nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
                value = nv.nvmlDeviceGetTotalEccErrors(handle, error_type, counter) if on else "N/A"
                out.append(kv(label, value, 3))
    elif section == "ROW_REMAPPER":
        corr, unc, pending, failed = nv.nvmlDeviceGetRemappedRows(handle)
        out += ["    Remapped Rows", kv("Correctable Error", corr, 2), kv("Uncorrectable Error", unc, 2),
                kv("Pending", "Yes" if pending else "No", 2), kv("Remapping Failure Occurred", "Yes" if failed else "No", 2)]
    elif section == "TEMPERATURE":
        out += ["    Temperature",
                kv("GPU Current Temp", f"{nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)} C", 2),
                kv("GPU Shutdown Temp", f"{nv.nvmlDeviceGetTemperatureThreshold(handle, nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN)} C", 2),
                kv("GPU Slowdown Temp", f"{nv.nvmlDeviceGetTemperatureThreshold(handle, nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)} C", 2)]
    elif section == "POWER":
        out += ["    GPU Power Readings",
                kv("Power Draw", f"{nv.nvmlDeviceGetPowerUsage(handle) / 1000:.2f} W", 2),
                kv("Current Power Limit", f"{nv.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000:.2f} W", 2),
                kv("Default Power Limit", f"{nv.nvmlDeviceGetPowerManagementDefaultLimit(handle) / 1000:.2f} W", 2)]
    elif section == "CLOCK":
        out += ["    Clocks", kv("SM", f"{nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM)} MHz", 2),
                kv("Memory", f"{nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM)} MHz", 2),
                "    Max Clocks", kv("SM", f"{nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_SM)} MHz", 2),
                kv("Memory", f"{nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_MEM)} MHz", 2)]
    elif section == "PERFORMANCE":
        reasons = nv.nvmlDeviceGetCurrentClocksEventReasons(handle)
        out += [kv("Performance State", f"P{nv.nvmlDeviceGetPerformanceState(handle)}", 1), "    Clocks Event Reasons"]
        out += [kv(label, "Active" if reasons & getattr(nv, bit) else "Not Active", 2) for _, label, bit in REASONS]
    elif section == "PIDS":
        procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
        out.append("    Processes" + ("" if procs else f"{'':<30}: None"))
        for proc in procs:
            try:
                name = nv.nvmlSystemGetProcessName(proc.pid)
            except nv.NVMLError_NotFound:
                name = "[Not Found]"
            out += [kv("Process ID", proc.pid, 2), kv("Type", "C", 3), kv("Name", name, 3),
                    kv("Used GPU Memory", f"{proc.usedGpuMemory // 2**20} MiB", 3)]
    return out


SECTIONS = ["MEMORY", "UTILIZATION", "ECC", "ROW_REMAPPER", "TEMPERATURE", "POWER", "CLOCK", "PERFORMANCE", "PIDS"]


def query_full(nv, handles, sections):
    cuda = nv.nvmlSystemGetCudaDriverVersion()
    out = ["", "==============NVSMI LOG==============", "", kv("Timestamp", stamp(nv), 0),
           kv("Driver Version", nv.nvmlSystemGetDriverVersion(), 0),
           kv("CUDA Version", f"{cuda // 1000}.{cuda % 1000 // 10}", 0), "",
           kv("Attached GPUs", nv.nvmlDeviceGetCount(), 0)]
    for handle in handles:
        out.append(f"GPU {nv.nvmlDeviceGetPciInfo(handle).busId}")
        if sections is None:  # the full report: identity and PCIe link first, then every section
            out += [kv("Product Name", nv.nvmlDeviceGetName(handle), 1), kv("GPU UUID", nv.nvmlDeviceGetUUID(handle), 1),
                    kv("Serial Number", nv.nvmlDeviceGetSerial(handle), 1), "    PCI",
                    kv("Bus Id", nv.nvmlDeviceGetPciInfo(handle).busId, 2), "        GPU Link Info",
                    "            PCIe Generation",
                    kv("Max", nv.nvmlDeviceGetMaxPcieLinkGeneration(handle), 4),
                    kv("Current", nv.nvmlDeviceGetCurrPcieLinkGeneration(handle), 4),
                    "            Link Width",
                    kv("Max", f"{nv.nvmlDeviceGetMaxPcieLinkWidth(handle)}x", 4),
                    kv("Current", f"{nv.nvmlDeviceGetCurrPcieLinkWidth(handle)}x", 4)]
        for section in sections or SECTIONS:
            out += section_lines(nv, handle, section)
        out.append("")
    return out


def stamp(nv) -> str:
    """A timestamp on the scenario's clock (a fixed day plus the scenario's seconds), so outputs repeat exactly."""
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(1767225600 + nv.__gpusim__.at)) + " (simulated)"


def summary(nv, handles):
    """Plain `nvidia-smi`: the real tool's table, column for column (three cells of 41, 24 and 22 characters)."""
    cuda = nv.nvmlSystemGetCudaDriverVersion()
    driver = nv.nvmlSystemGetDriverVersion()
    rule = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"

    def row(a, b, c):
        return f"|{a:<41}|{b:>24}|{c:>22}|"

    out = [stamp(nv), "+" + "-" * 89 + "+",
           f"| {'NVIDIA-SMI ' + driver:<33}{'Driver Version: ' + driver:<31}{'CUDA Version: ' + f'{cuda // 1000}.{cuda % 1000 // 10}':<24}|",
           rule.replace("+", "|", 1)[:-1] + "+",
           row(" GPU  Name                 Persistence-M", " Bus-Id          Disp.A ", " Volatile Uncorr. ECC "),
           row(" Fan  Temp   Perf          Pwr:Usage/Cap", "           Memory-Usage ", " GPU-Util  Compute M. "),
           "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|"]
    for h in handles:
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        try:
            ecc = str(nv.nvmlDeviceGetTotalEccErrors(h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC))
        except nv.NVMLError_NotSupported:
            ecc = "N/A"
        name = nv.nvmlDeviceGetName(h)
        name = name if len(name) <= 29 else name[:26] + "..."
        out.append(row(f" {nv.nvmlDeviceGetIndex(h):>3}  {name:<29}   On ", f" {nv.nvmlDeviceGetPciInfo(h).busId} Off ",
                       f" {ecc} "))
        power = f"{nv.nvmlDeviceGetPowerUsage(h) // 1000}W / {nv.nvmlDeviceGetEnforcedPowerLimit(h) // 1000:>4}W"
        out.append(row(f" N/A  {nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU):>3}C    "
                       f"P{nv.nvmlDeviceGetPerformanceState(h):<3}{power:>22}",
                       f" {mem.used // 2**20:>6}MiB / {mem.total // 2**20:>6}MiB ",
                       f" {nv.nvmlDeviceGetUtilizationRates(h).gpu:>3}%      Default "))
        out.append(rule)
    out += ["", "+" + "-" * 89 + "+", f"| {'Processes:':<88}|",
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
            lines += [f"GPU {nv.nvmlDeviceGetIndex(h)}: {nv.nvmlDeviceGetName(h)} (UUID: {nv.nvmlDeviceGetUUID(h)})"
                      for h in handles]
        else:
            lines = summary(nv, handles) + lines
    except Usage as err:
        print(err.args[0])
        return err.args[1]
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    run_tool(main)
