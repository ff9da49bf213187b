"""GPU node health checks, one per runbook: each prints a verdict with its evidence and sets the exit code.

    python 01_gpu_health.py                    # every check, about 4 s; exit code = the worst verdict
    python 01_gpu_health.py --check clocks     # one check (driver, bus, memory, processes, clocks, xid, ecc,
                                               #   recovery, fabric, mig, links, collective, straggler)
    python 01_gpu_health.py --json             # machine-readable, for scripts and the evidence bundle
    python 01_gpu_health.py --prometheus /var/lib/node_exporter/textfile/gpu_health.prom   # textfile collector

Exit codes follow the GCM health-check / Nagios plugin convention: 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN (the
check could not read what it needs; the reason is printed). Overall: CRITICAL > WARN > UNKNOWN > OK.
It reads only: it never resets, reconfigures or loads anything on the GPU. Every NVML call has a deadline
(--nvml-timeout): a wedged GPU makes its checks say so instead of hanging the program.
Needs: pip install nvidia-ml-py
"""
import argparse
import ctypes
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import pynvml

OK, WARN, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "OK", WARN: "WARN", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
RANK = {OK: 0, UNKNOWN: 1, WARN: 2, CRITICAL: 3}  # which verdict wins when findings are combined

# Xid -> (class, immediate action, verdict), after NVIDIA's Xid catalog. 13/31/43 are the application's.
XID = {
    8: ("application", "RESTART_APP: the GPU stopped processing the program's work (a timeout)", WARN),
    13: ("application", "RESTART_APP: fix the program (graphics engine exception); not a hardware fault", WARN),
    31: ("application", "RESTART_APP: fix the program (MMU fault: bad address); not a hardware fault", WARN),
    43: ("application", "RESTART_APP: the program's channel stopped; not a hardware fault", WARN),
    45: ("informational", "none: the driver tore down a process's channels (it was killed, or an earlier error)", OK),
    48: ("memory", "RESET_GPU: double-bit ECC error; drain, capture evidence, reset", CRITICAL),
    62: ("firmware", "RESET_GPU: an internal micro-controller halted", CRITICAL),
    63: ("memory", "RESET_GPU when drained: a row remap was recorded and applies at the next reset", WARN),
    64: ("memory", "CONTACT_SUPPORT: row remap failed; drain the node and open an RMA", CRITICAL),
    74: ("nvlink", "RESET_GPU: NVLink error; capture evidence, reset, RMA if it recurs", CRITICAL),
    79: ("bus", "DRAIN the node: the GPU fell off the bus; capture evidence, reboot, RMA if it recurs", CRITICAL),
    92: ("memory", "watch: high single-bit ECC rate", WARN),
    94: ("memory", "RESTART_APP: contained ECC error; only the affected program died", WARN),
    95: ("memory", "RESET_GPU: uncontained ECC error; drain and reset", CRITICAL),
    119: ("firmware", "RESET_GPU: GSP RPC timeout; capture evidence, reset, reboot if the reset fails", CRITICAL),
    120: ("firmware", "RESET_GPU: GSP error; capture evidence, reset, reboot if the reset fails", CRITICAL),
    154: ("recovery", "read the recovery action (check `recovery`)", WARN),
}
HARDWARE_CLASSES = {"memory", "firmware", "nvlink", "bus", "recovery", "unlisted"}
# --8<-- [start:recovery]
RECOVERY = {  # nvmlGpuRecoveryAction_t -> (name, verdict, what NVIDIA says to do), from NVIDIA's
    # "Error Recovery and Response Flags" (docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt)
    0: ("NONE", OK, "no action: the GPU can take new work"),
    1: ("GPU_RESET", CRITICAL, "the GPU needs a reset to recover: stop every process on it, then nvidia-smi -r"),
    2: ("NODE_REBOOT", CRITICAL, "the fault may have left the OS inconsistent: drain the node and reboot it"),
    3: ("DRAIN_P2P", CRITICAL, "stop the processes doing peer-to-peer traffic and disable UVM persistence mode,"
                               " then read the action again"),
    4: ("DRAIN_AND_RESET", WARN, "the GPU runs at reduced capacity: schedule no new work on this GPU, let its"
                                 " jobs finish, then reset it"),
    5: ("RECOVER_IMEX_DOMAIN", CRITICAL, "recover the IMEX domain this GPU belongs to"),
    6: ("BUS_RESET", CRITICAL, "reset the GPU's PCIe bus"),
    7: ("SYSTEM_REBOOT", CRITICAL, "reboot the system"),
}
# --8<-- [end:recovery]
# --8<-- [start:init-errors]
INIT_ERRORS = {  # nvmlInit failure -> what it means, on the host and inside a container
    "DRIVER_NOT_LOADED": ("the kernel module is not loaded (dkms build failed? Secure Boot?): see the driver runbook",
                          "the host's kernel module is not loaded: see the driver runbook, on the host"),
    "LIB_RM_VERSION_MISMATCH": ("driver/library version mismatch: the driver was upgraded but the old kernel module"
                                " is loaded; drain and reboot",
                                "the container's NVML does not match the host's kernel module: the host's driver was"
                                " upgraded without a reboot (drain and reboot the host)"),
    "LIBRARY_NOT_FOUND": ("no libnvidia-ml.so.1: the driver's user-space libraries are not installed",
                          "no libnvidia-ml.so.1 in the container: it was started without the NVIDIA runtime or a"
                          " CDI device (see the container toolkit runbook)"),
    "UNKNOWN": ("'Unknown Error' on the host: the driver cannot talk to a GPU (Xid 79/119 in the kernel log?);"
                " capture evidence, drain and reboot",
                "'Unknown Error' in a container while the host is fine: it lost its device nodes after a"
                " systemctl daemon-reload; restart the container (see the container toolkit runbook)"),
    "NO_PERMISSION": ("no permission on /dev/nvidia*", "no permission on /dev/nvidia* in the container"),
}
# --8<-- [end:init-errors]
XID_LINE = re.compile(r"NVRM: Xid \(PCI:(?P<bus>[0-9a-fA-F:.]+)\): (?P<code>\d+)")
DRIVER_LOADED = re.compile(r"NVRM: loading NVIDIA UNIX")
RESET_MARK = re.compile(r"gpu-reset: PCI:(?P<bus>[0-9a-fA-F:.]+)")  # what the runbooks' reset step logs
UPTIME_STAMP = re.compile(r"^\[\s*(?P<t>\d+\.\d+)\]")  # plain `dmesg`; `dmesg -T` and journalctl stamp wall time
MIG_PROFILE = re.compile(r"MIG (\d+g\.\d+gb)")


class Timeout(Exception):
    """An NVML call that did not return within --nvml-timeout."""


def guarded(seconds, function, *args):
    """function(*args) in a helper thread: its value or its exception, or Timeout after `seconds`."""
    box = {}

    def run():
        try:
            box["value"] = function(*args)
        except BaseException as err:  # handed to the caller below
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)  # a wedged call is abandoned, never waited for at exit
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Timeout(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def detect_where() -> str:
    """'container' when this runs inside one (the markers Docker, Podman and Kubernetes leave), else 'host'."""
    if (os.environ.get("container") or os.environ.get("KUBERNETES_SERVICE_HOST")
            or os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")):
        return "container"
    return "host"


class Context:
    """NVML state shared by the checks: the init error, a handle (or the error getting it) per GPU, the GPUs that
    stopped answering, and counters read at the start so that window checks can take differences."""

    def __init__(self, args):
        self.args = args
        self.where = detect_where() if args.where == "auto" else args.where
        self.init_error = None
        self.gpus = []  # (index, handle or None, error or None)
        self.wedged = set()
        self.started = time.monotonic()
        self.start_counters = {}
        try:
            guarded(args.nvml_timeout, pynvml.nvmlInit)
            count = guarded(args.nvml_timeout, pynvml.nvmlDeviceGetCount)
        except (pynvml.NVMLError, Timeout) as err:
            self.init_error = err
            return
        for index in range(count):
            try:
                self.gpus.append((index, guarded(args.nvml_timeout, pynvml.nvmlDeviceGetHandleByIndex, index), None))
            except Timeout as err:
                self.gpus.append((index, None, err))
                self.wedged.add(index)
            except pynvml.NVMLError as err:
                self.gpus.append((index, None, err))
        for index, handle in self.readable():
            try:
                self.start_counters[index] = guarded(args.nvml_timeout, counters, handle)
            except Timeout:
                self.wedged.add(index)
            except pynvml.NVMLError:
                pass  # the checks read this GPU again and report its error there

    def readable(self):
        return [(i, h) for i, h, err in self.gpus if h is not None and i not in self.wedged]

    def window(self):
        """Wait until --window seconds have passed since the start; the seconds actually covered."""
        left = self.args.window - (time.monotonic() - self.started)
        if left > 0:
            time.sleep(left)
        return time.monotonic() - self.started


def error_name(err) -> str:
    if isinstance(err, Timeout):
        return "TIMEOUT"
    for name in dir(pynvml):
        if name.startswith("NVML_ERROR_") and getattr(pynvml, name) == err.value:
            return name.removeprefix("NVML_ERROR_")
    return str(err.value)


def combine(findings):
    """(verdict, lines) from per-GPU findings [(verdict, line)]; no findings at all is UNKNOWN."""
    if not findings:
        return UNKNOWN, ["no readable GPU (see the bus check)"]
    worst = max((v for v, _ in findings), key=RANK.get)
    return worst, [f"{NAMES[v]}: {line}" for v, line in findings]


def per_gpu(ctx, inspect):
    """inspect(index, handle) -> [(verdict, line)] on every GPU, each under the NVML deadline."""
    findings = []
    for index, handle, _ in ctx.gpus:
        if index in ctx.wedged:
            findings.append((UNKNOWN, f"GPU {index}: did not answer NVML (wedged): see the bus check"))
            continue
        if handle is None:
            continue
        try:
            findings += guarded(ctx.args.nvml_timeout, inspect, index, handle)
        except Timeout:
            ctx.wedged.add(index)
            findings.append((UNKNOWN, f"GPU {index}: NVML gave no answer within {ctx.args.nvml_timeout:g} s"
                                      " (wedged): see the bus check"))
        except pynvml.NVMLError as err:
            findings.append((UNKNOWN, f"GPU {index}: NVML says {err} ({error_name(err)})"))
    return combine(findings)


def field_values(handle, ids):
    """{field id: value or None (not supported)} from one nvmlDeviceGetFieldValues call."""
    out = {}
    for value in pynvml.nvmlDeviceGetFieldValues(handle, ids):
        ok = value.nvmlReturn == pynvml.NVML_SUCCESS
        out[value.fieldId] = (value.value.ullVal if value.valueType == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
                              else value.value.uiVal) if ok else None
    return out


REASON_COUNTERS = {  # clock event reason -> NVML counter of the nanoseconds it was active
    pynvml.nvmlClocksEventReasonSwPowerCap: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP,
    pynvml.nvmlClocksEventReasonSwThermalSlowdown: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN,
    pynvml.nvmlClocksEventReasonHwThermalSlowdown: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN,
    pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown: pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN,
}
NVLINK_COUNTERS = {"CRC": pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT, "replay": pynvml.NVML_NVLINK_ERROR_DL_REPLAY,
                   "recovery": pynvml.NVML_NVLINK_ERROR_DL_RECOVERY}


def counters(handle):
    """The counters the window checks difference: clock-event-reason time (ns) and NVLink errors per link.
    A counter this GPU or driver does not have is left out (a GPU that does not answer raises, as always)."""
    try:
        reasons = field_values(handle, list(REASON_COUNTERS.values()))
    except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
        reasons = {}
    links = {}
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            if pynvml.nvmlDeviceGetNvLinkState(handle, link) != pynvml.NVML_FEATURE_ENABLED:
                continue
            links[link] = {name: pynvml.nvmlDeviceGetNvLinkErrorCounter(handle, link, c)
                           for name, c in NVLINK_COUNTERS.items()}
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_InvalidArgument, pynvml.NVMLError_FunctionNotFound):
            break
    return {"reasons": reasons, "links": links, "time": time.monotonic()}


# ---- the checks, one per runbook -------------------------------------------------------------------------------
def check_driver(ctx):
    if ctx.init_error is not None:
        name = error_name(ctx.init_error)
        if name == "TIMEOUT":
            return CRITICAL, [f"nvmlInit gave no answer within {ctx.args.nvml_timeout:g} s: the driver is stuck"
                              " (a wedged GPU?); capture evidence, drain and reboot"]
        host, container = INIT_ERRORS.get(name, ("see the driver runbook", "see the driver runbook"))
        return CRITICAL, [f"nvmlInit failed: {ctx.init_error} (NVML_ERROR_{name}), {ctx.where}: "
                          + (container if ctx.where == "container" else host)]
    driver = pynvml.nvmlSystemGetDriverVersion()
    cuda = pynvml.nvmlSystemGetCudaDriverVersion()
    have = (cuda // 1000, cuda % 1000 // 10)
    lines = [f"driver {driver}, built for CUDA {have[0]}.{have[1]}, {len(ctx.gpus)} GPU(s)"]
    if ctx.args.need_cuda:
        # --8<-- [start:need-cuda]
        need = tuple(int(x) for x in ctx.args.need_cuda.split(".")[:2])
        if need[0] > have[0]:  # a newer *major* needs a newer driver branch
            return CRITICAL, lines + [f"the program needs CUDA {need[0]}.{need[1]}: this driver supports CUDA"
                                      f" {have[0]}.x at most; install a driver of the CUDA {need[0]} branch or use a"
                                      f" build for CUDA {have[0]}.x"]
        if need > have:  # same major, newer minor: minor-version compatibility
            lines.append(f"CUDA {need[0]}.{need[1]} needed: runs under minor-version compatibility (same major"
                         " as the driver); PTX newer than the driver cannot be JIT-compiled, so ship SASS")
        else:
            lines.append(f"CUDA {need[0]}.{need[1]} needed: the driver is new enough")
        # --8<-- [end:need-cuda]
    return OK, lines


def check_bus(ctx):
    findings = []
    for index, handle, err in ctx.gpus:
        if index in ctx.wedged:
            findings.append((CRITICAL, f"GPU {index}: NVML gave no answer within {ctx.args.nvml_timeout:g} s:"
                                       " the GPU is wedged (a GSP timeout, Xid 119/120?); capture evidence, reset"
                                       " it, reboot if the reset fails"))
        elif err is not None:
            lost = isinstance(err, pynvml.NVMLError_GpuIsLost)
            findings.append((CRITICAL if lost else UNKNOWN, f"GPU {index}: {err}"
                             + (" - fell off the bus: drain, capture evidence, reboot" if lost else "")))
        else:
            try:
                bus = guarded(ctx.args.nvml_timeout, lambda h: pynvml.nvmlDeviceGetPciInfo(h).busId, handle)
                findings.append((OK, f"GPU {index}: {bus} answers"))
            except Timeout:
                ctx.wedged.add(index)
                findings.append((CRITICAL, f"GPU {index}: NVML gave no answer within {ctx.args.nvml_timeout:g} s:"
                                           " the GPU is wedged; capture evidence, reset it, reboot if that fails"))
    if ctx.args.expect_gpus is not None and len(ctx.gpus) < ctx.args.expect_gpus:
        findings.append((CRITICAL, f"{len(ctx.gpus)} GPU(s) enumerated, {ctx.args.expect_gpus} expected:"
                                   " a GPU is missing from the bus"))
    return combine(findings) if findings else (CRITICAL, ["NVML sees no GPU"])


def memory_info(handle):
    """(used by contexts, total) in bytes: nvmlMemory_v2 keeps the driver's own reservation out of `used`."""
    try:
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle, pynvml.nvmlMemory_v2)
    except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound, pynvml.NVMLError_ArgumentVersionMismatch):
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return mem.used, mem.total


def check_memory(ctx):
    # --8<-- [start:memory]
    def inspect(index, handle):
        used, total = memory_info(handle)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        line = f"GPU {index}: {used / 2**30:.1f} of {total / 2**30:.1f} GiB used ({used / total:.0%})"
        try:
            if pynvml.nvmlDeviceGetMigMode(handle)[0]:
                return [(OK, line + ", MIG on: memory belongs to the instances")]
        except pynvml.NVMLError:
            pass  # no MIG on this GPU
        if any(p.usedGpuMemory is None for p in procs):  # the driver does not say what each process holds
            return [(OK, line + ", per-process memory not reported here")]
        unaccounted = used - sum(p.usedGpuMemory for p in procs)
        if unaccounted > ctx.args.unaccounted_gib * 2**30:
            if ctx.where == "container" and not procs:  # host PIDs are invisible from a container's namespace
                return [(OK, line + ", no process visible from this container (run on the host to attribute it)")]
            return [(WARN, line + f": {unaccounted / 2**30:.1f} GiB held by no process NVML lists (another PID"
                                  " namespace, a leaked context, MPS): see the stuck-memory runbook")]
        note = " (a job's caching allocator keeps what it reserved: a workload property)" if used / total >= 0.95 else ""
        return [(OK, line + note)]
    # --8<-- [end:memory]
    return per_gpu(ctx, inspect)


def check_processes(ctx):
    def inspect(index, handle):
        findings = []
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            used = (proc.usedGpuMemory or 0) / 2**30
            try:
                name = pynvml.nvmlSystemGetProcessName(proc.pid)
                name = name.decode() if isinstance(name, bytes) else name
                findings.append((OK, f"GPU {index}: PID {proc.pid} ({name}) holds {used:.1f} GiB"))
            except pynvml.NVMLError_NotFound:
                if ctx.where == "container":
                    findings.append((WARN, f"GPU {index}: PID {proc.pid} holds {used:.1f} GiB and is not visible"
                                           " here: from a container a dead process and one in another PID"
                                           " namespace look the same; run this check on the host"))
                else:
                    findings.append((CRITICAL if used >= 1 else WARN,
                                     f"GPU {index}: PID {proc.pid} holds {used:.1f} GiB but no such process"
                                     " exists: see the stuck-memory runbook"))
        return findings or [(OK, f"GPU {index}: no compute processes")]
    return per_gpu(ctx, inspect)


def reason_shares(ctx):
    """Per GPU: {reason bit: share of the window it was active}, from NVML's counters where the GPU has them,
    else from the reason bits sampled through the window. Read once, shared by the checks."""
    if hasattr(ctx, "_shares"):
        return ctx._shares
    bits = [pynvml.nvmlClocksEventReasonApplicationsClocksSetting, pynvml.nvmlClocksEventReasonSwPowerCap,
            pynvml.nvmlClocksEventReasonHwSlowdown, pynvml.nvmlClocksEventReasonSwThermalSlowdown,
            pynvml.nvmlClocksEventReasonHwThermalSlowdown, pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown]
    samples = {i: [] for i, _ in ctx.readable()}
    end = ctx.started + ctx.args.window
    while True:
        for index, handle in ctx.readable():
            try:
                samples[index].append(guarded(ctx.args.nvml_timeout,
                                              pynvml.nvmlDeviceGetCurrentClocksEventReasons, handle))
            except Timeout:
                ctx.wedged.add(index)
            except pynvml.NVMLError:
                pass
        if time.monotonic() >= end:
            break
        time.sleep(min(max(ctx.args.window / 10, 0.01), max(end - time.monotonic(), 0)))
    ctx._shares = {}
    for index, handle in ctx.readable():
        got = samples.get(index) or [0]
        shares = {bit: sum(1 for s in got if s & bit) / len(got) for bit in bits}
        try:
            now = guarded(ctx.args.nvml_timeout, counters, handle)
            start = ctx.start_counters[index]
            seconds = now["time"] - start["time"]
            for bit, field in REASON_COUNTERS.items():
                a, b = start["reasons"].get(field), now["reasons"].get(field)
                if a is not None and b is not None and seconds > 0:  # NVML's own count of active time
                    shares[bit] = min(max((b - a) / 1e9 / seconds, 0.0), 1.0)
            ctx._shares[index] = (shares, now)
        except (Timeout, pynvml.NVMLError, KeyError):
            ctx._shares[index] = (shares, None)
    return ctx._shares


def check_clocks(ctx):
    # --8<-- [start:clocks]
    hw = {pynvml.nvmlClocksEventReasonHwThermalSlowdown: "HW thermal slowdown",
          pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown: "HW power brake",
          pynvml.nvmlClocksEventReasonHwSlowdown: "HW slowdown"}
    sw = {pynvml.nvmlClocksEventReasonSwThermalSlowdown: "SW thermal slowdown",
          pynvml.nvmlClocksEventReasonApplicationsClocksSetting: "application clocks locked"}
    shares = reason_shares(ctx)  # sampled through --window
    seconds = time.monotonic() - ctx.started

    def inspect(index, handle):
        share = shares.get(index, ({}, None))[0]
        sm = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
        sm_max = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
        power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000
        enforced = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
        requested = pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000
        default = pynvml.nvmlDeviceGetPowerManagementDefaultLimit(handle) / 1000
        temp = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        reasons = pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
        line = f"GPU {index}: reasons 0x{reasons:x} now, SM {sm}/{sm_max} MHz, {power:.0f}/{enforced:.0f} W, {temp} C"
        findings = []
        for bit, name in hw.items():  # sustained HW slowdown pages; a transient is a warning
            if share.get(bit, 0) >= ctx.args.hw_share:
                findings.append((CRITICAL, f"{line}: {name} {share[bit]:.0%} of the last {seconds:.0f} s"))
            elif share.get(bit, 0) > 0:
                findings.append((WARN, f"{line}: {name} {share[bit]:.0%} of the last {seconds:.0f} s (transient)"))
        findings += [(WARN, f"{line}: {name} {share[bit]:.0%} of the last {seconds:.0f} s")
                     for bit, name in sw.items() if share.get(bit, 0) > 0]
        if requested < default * 0.98:
            findings.append((WARN, f"{line}: power limit lowered to {requested:.0f} W from the default"
                                   f" {default:.0f} W (nvidia-smi -pl)"))
        if enforced < requested * 0.98:
            findings.append((WARN, f"{line}: {enforced:.0f} W enforced, {requested:.0f} W requested: another limiter"
                                   " (an out-of-band cap from the BMC, the chassis budget) holds the GPU below the"
                                   " host's limit"))
        if not findings:
            capped = share.get(pynvml.nvmlClocksEventReasonSwPowerCap, 0)
            findings.append((OK, line + (f" (SW power cap {capped:.0%} of the time: power-bound, normal)"
                                         if capped else "")))
        return findings
    # --8<-- [end:clocks]
    return per_gpu(ctx, inspect)


def bus_key(text):
    """(domain, bus, device) from any of the driver's spellings: 0000:18:00, 00000000:18:00.0."""
    parts = text.split(".")[0].split(":")
    return tuple(int(p, 16) for p in parts[-3:])


def read_kernel_log(ctx):
    """(text, live, None), or (None, None, why it is unreadable)."""
    if ctx.args.kernel_log:
        try:
            with open(ctx.args.kernel_log, encoding="utf-8", errors="replace") as f:
                return f.read(), False, None
        except OSError as err:
            return None, None, f"--kernel-log {ctx.args.kernel_log}: {err.strerror}"
    try:
        proc = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as err:
        return None, None, f"dmesg: {err}"
    if proc.returncode != 0:  # e.g. "read kernel buffer failed: Operation not permitted" (kernel.dmesg_restrict)
        return None, None, proc.stderr.strip() or f"dmesg exited {proc.returncode}"
    return proc.stdout, True, None


# --8<-- [start:xid-since-reset]
def logged_xids(text):
    """[(bus, code, uptime stamp or None)] logged after the last driver load, and for each GPU after its last
    reset marker; and how many earlier Xids those cut off. Reads `dmesg`, `dmesg -T` and `journalctl -k` text."""
    events, cut = [], 0
    for line in text.splitlines():
        if DRIVER_LOADED.search(line):  # a driver (re)load starts every GPU afresh
            cut, events = cut + len(events), []
        elif m := RESET_MARK.search(line):  # the runbooks' reset step: `gpu-reset: PCI:0000:18:00 ...`
            keep = [e for e in events if e[0] != bus_key(m["bus"])]
            cut, events = cut + len(events) - len(keep), keep
        elif m := XID_LINE.search(line):
            stamp = UPTIME_STAMP.match(line)
            events.append((bus_key(m["bus"]), int(m["code"]), float(stamp["t"]) if stamp else None))
    return events, cut
# --8<-- [end:xid-since-reset]


def listen_for_xids(handles, seconds):
    """[(where, code)] for the Xid events NVML delivers within `seconds`."""
    seen = []
    event_set = pynvml.nvmlEventSetCreate()
    try:
        for _, handle in handles:
            pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = pynvml.nvmlEventSetWait(event_set, int(left * 1000) + 1)
            except pynvml.NVMLError_Timeout:
                break
            seen.append((f"GPU {pynvml.nvmlDeviceGetIndex(event.device)}", int(event.eventData)))
    finally:
        pynvml.nvmlEventSetFree(event_set)
    return seen


def check_xid(ctx):
    seen, lines = [], []
    handles = ctx.readable()
    if ctx.init_error is not None:
        lines.append("NVML did not initialize: kernel log only")
    if handles:
        try:
            seen = guarded(ctx.args.xid_seconds + ctx.args.nvml_timeout, listen_for_xids, handles,
                           ctx.args.xid_seconds)
            lines.append(f"listened {ctx.args.xid_seconds:g} s for Xid events on {len(handles)} GPU(s)")
        except (pynvml.NVMLError, Timeout) as err:  # e.g. no permission in a restricted container
            lines.append(f"NVML Xid events unavailable ({err}): kernel log only")
            handles = []
    text, live, why = read_kernel_log(ctx)
    findings = []
    if text is None:
        findings.append((UNKNOWN, f"kernel log not readable ({why}): Xids logged before this run are not seen;"
                                  " run as root, or pass --kernel-log FILE (saved dmesg, dmesg -T or journalctl -k)"))
    else:
        events, cut = logged_xids(text)
        uptime = None
        if live:
            with open("/proc/uptime", encoding="ascii") as f:
                uptime = float(f.read().split()[0])
        for bus, code, stamp in events:
            cls = XID.get(code, ("unlisted",))[0]
            if (cls not in HARDWARE_CLASSES and uptime is not None and stamp is not None
                    and uptime - stamp > ctx.args.xid_hours * 3600):
                continue  # an old application Xid says nothing about the node now
            seen.append(("PCI {:04x}:{:02x}:{:02x}".format(*bus), code))
        lines.append(f"kernel log ({'dmesg' if live else ctx.args.kernel_log}): {len(events)} Xid line(s) since the"
                     f" driver loaded or the GPU's last reset" + (f", {cut} before it not counted" if cut else ""))
    for code in sorted({code for _, code in seen}):
        where = ", ".join(sorted({w for w, c in seen if c == code}))
        cls, action, verdict = XID.get(code, ("unlisted", "look it up in NVIDIA's Xid catalog", WARN))
        findings.append((verdict, f"Xid {code} ({cls}) on {where}: {action}"))
    if not findings:
        return OK, lines + ["no Xid"]
    verdict, found = combine(findings)
    return verdict, lines + found


def check_ecc(ctx):
    # --8<-- [start:ecc]
    def inspect(index, handle):
        current, _ = pynvml.nvmlDeviceGetEccMode(handle)
        if not current:
            return [(WARN, f"GPU {index}: ECC is disabled")]
        unc = pynvml.nvmlDeviceGetTotalEccErrors(handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                                 pynvml.NVML_VOLATILE_ECC)
        corr = pynvml.nvmlDeviceGetTotalEccErrors(handle, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                                                  pynvml.NVML_VOLATILE_ECC)
        sram = pynvml.c_nvmlEccSramErrorStatus_v1_t()
        try:  # NVIDIA's own RMA flag for SRAM (ecc.errors.uncorrected.aggregate.sram.thresholdExceeded)
            pynvml.nvmlDeviceGetSramEccErrorStatus(handle, ctypes.byref(sram))
            threshold, sram_unc = bool(sram.bThresholdExceeded), sram.aggregateUncParity + sram.aggregateUncSecDed
        except pynvml.NVMLError:  # an older driver or GPU: the DRAM rules below still hold
            threshold, sram_unc = False, None
        try:
            rows_corr, rows_unc, pending, failed = pynvml.nvmlDeviceGetRemappedRows(handle)
        except pynvml.NVMLError_NotSupported:  # pre-Ampere (page retirement instead) or MIG instances active
            return [(WARN if unc else OK, f"GPU {index}: volatile ECC {corr} corrected / {unc} uncorrected;"
                                          " row remapping not readable here")]
        line = (f"GPU {index}: volatile ECC {corr} corrected / {unc} uncorrected, aggregate SRAM uncorrected"
                f" {'n/a' if sram_unc is None else sram_unc}, remapped rows {rows_corr}+{rows_unc},"
                f" pending {bool(pending)}, failed {bool(failed)}")
        if failed:
            return [(CRITICAL, line + ": row remap FAILED - drain and RMA")]
        if threshold:
            return [(CRITICAL, line + ": SRAM threshold exceeded (NVIDIA's flag) - drain and RMA")]
        if pending:
            return [(WARN, line + ": remap pending - drain, then reset the GPU to apply it")]
        if unc:
            return [(WARN, line + ": uncorrectable errors since the driver loaded - see the ECC runbook")]
        return [(OK, line)]
    # --8<-- [end:ecc]
    return per_gpu(ctx, inspect)


def check_recovery(ctx):
    def inspect(index, handle):
        value = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])[0]
        if value.nvmlReturn != pynvml.NVML_SUCCESS:
            return [(UNKNOWN, f"GPU {index}: recovery action not readable ({pynvml.NVMLError(value.nvmlReturn)})")]
        name, verdict, action = RECOVERY.get(value.value.uiVal, (f"value {value.value.uiVal}", WARN,
                                                                 "not known to this check: read NVML's docs"))
        return [(verdict, f"GPU {index}: driver's recovery action {name}: {action}")]
    return per_gpu(ctx, inspect)


def check_fabric(ctx):
    def inspect(index, handle):
        info = pynvml.c_nvmlGpuFabricInfo_t()
        try:
            pynvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info))
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
            return [(OK, f"GPU {index}: no NVSwitch fabric")]
        if info.state == pynvml.NVML_GPU_FABRIC_STATE_NOT_SUPPORTED:
            return [(OK, f"GPU {index}: no NVSwitch fabric")]
        if info.state != pynvml.NVML_GPU_FABRIC_STATE_COMPLETED:
            state = "not started" if info.state == pynvml.NVML_GPU_FABRIC_STATE_NOT_STARTED else "in progress"
            return [(CRITICAL, f"GPU {index}: fabric registration {state}: Fabric Manager is not running or failed;"
                               " CUDA fails with error 802 (system not yet initialized): see the fabric runbook")]
        if info.status != pynvml.NVML_SUCCESS:
            return [(CRITICAL, f"GPU {index}: fabric registration failed: {pynvml.NVMLError(info.status)}")]
        return [(OK, f"GPU {index}: fabric registration completed")]
    return per_gpu(ctx, inspect)


def expected_mig(text):
    """'3g.71gb:1,1g.18gb:2' -> {'3g.71gb': 1, '1g.18gb': 2}."""
    layout = {}
    for part in text.split(","):
        profile, _, count = part.strip().partition(":")
        layout[profile] = layout.get(profile, 0) + int(count or 1)
    return layout


def check_mig(ctx):
    def inspect(index, handle):
        try:
            current, pending = pynvml.nvmlDeviceGetMigMode(handle)
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
            return [(OK, f"GPU {index}: no MIG on this GPU")]
        findings = []
        if current != pending:
            findings.append((WARN, f"GPU {index}: MIG mode {'on' if current else 'off'} now,"
                                   f" {'on' if pending else 'off'} pending: the change applies at the next GPU"
                                   " reset; until then the node is not what the scheduler expects"))
        profiles = {}
        if current:
            for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
                try:
                    mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                except pynvml.NVMLError_NotFound:
                    continue
                name = pynvml.nvmlDeviceGetName(mig)
                found = MIG_PROFILE.search(name.decode() if isinstance(name, bytes) else name)
                profile = found.group(1) if found else "unknown"
                profiles[profile] = profiles.get(profile, 0) + 1
            if not profiles:
                findings.append((WARN, f"GPU {index}: MIG on with no instance: CUDA sees no device on this GPU;"
                                       " create the instances (nvidia-smi mig -cgi ... -C) or turn MIG off"))
        layout = ("on: " + (" + ".join(f"{n}x {p}" for p, n in sorted(profiles.items())) or "no instance")
                  if current else "off")
        want = expected_mig(ctx.args.expect_mig) if ctx.args.expect_mig else None
        if want is not None and profiles != want:
            wanted = " + ".join(f"{n}x {p}" for p, n in sorted(want.items()))
            findings.append((WARN, f"GPU {index}: MIG layout {layout}, expected {wanted}: the layout drifted from"
                                   " the node's configuration (see the MIG drift runbook)"))
        return findings or [(OK, f"GPU {index}: MIG {layout}")]
    return per_gpu(ctx, inspect)


def check_links(ctx):
    seconds = ctx.window()

    def inspect(index, handle):
        gen, gen_max = (pynvml.nvmlDeviceGetCurrPcieLinkGeneration(handle),
                        pynvml.nvmlDeviceGetMaxPcieLinkGeneration(handle))
        width, width_max = (pynvml.nvmlDeviceGetCurrPcieLinkWidth(handle),
                            pynvml.nvmlDeviceGetMaxPcieLinkWidth(handle))
        busy = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu >= 50
        line = f"GPU {index}: PCIe Gen{gen} x{width} (max Gen{gen_max} x{width_max})"
        findings = []
        if width < width_max:
            findings.append((WARN, line + ": link trained narrower than it can - reseat / check the riser"))
        elif gen < gen_max and busy:
            findings.append((WARN, line + ": link at a lower generation under load"))
        down, links = [], 0
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                state = pynvml.nvmlDeviceGetNvLinkState(handle, link)
            except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_InvalidArgument):
                break
            links += 1
            if state != pynvml.NVML_FEATURE_ENABLED:
                down.append(link)
        nv = f", NVLink {links - len(down)}/{links} up" if links else ", no NVLink"
        if down:
            findings.append((CRITICAL, line + nv + f": link(s) {down} down - see the NVLink runbook"))
        start, now = ctx.start_counters.get(index, {}).get("links", {}), counters(handle)["links"]
        for link, errors in sorted(now.items()):  # errors that grew while we watched: a link degrading now
            grew = {name: errors[name] - start.get(link, errors)[name] for name in errors}
            if any(grew.values()):
                findings.append((WARN, f"GPU {index}: NVLink {link}: "
                                       + ", ".join(f"+{grew[n]} {n}" for n in grew if grew[n])
                                       + f" errors in {seconds:.0f} s (totals "
                                       + ", ".join(f"{errors[n]} {n}" for n in errors) + ") - see the NVLink runbook"))
        return findings or [(OK, line + nv + ("" if busy or gen == gen_max else " (idle GPUs lower the generation)"))]
    return per_gpu(ctx, inspect)


def sample_activity(ctx, gpus):
    """{index: (NVML util %, GPM SM active % or None, power W, enforced limit W, SM MHz)}: GPM sampled on every GPU
    at once over --sample-seconds (None where GPM is missing, pre-Hopper)."""
    first, out = {}, {}
    for index, handle in gpus:
        try:
            if guarded(ctx.args.nvml_timeout, pynvml.nvmlGpmQueryDeviceSupport, handle).isSupportedDevice:
                sample = pynvml.nvmlGpmSampleAlloc()
                pynvml.nvmlGpmSampleGet(handle, sample)
                first[index] = sample
        except (pynvml.NVMLError, Timeout):
            pass
    time.sleep(ctx.args.sample_seconds)
    for index, handle in gpus:
        try:
            util = guarded(ctx.args.nvml_timeout, pynvml.nvmlDeviceGetUtilizationRates, handle).gpu
            sm = None
            if index in first:
                second = pynvml.nvmlGpmSampleAlloc()
                try:
                    pynvml.nvmlGpmSampleGet(handle, second)
                    request = pynvml.c_nvmlGpmMetricsGet_t()
                    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
                    request.numMetrics, request.sample1, request.sample2 = 1, first[index], second
                    request.metrics[0].metricId = pynvml.NVML_GPM_METRIC_SM_UTIL
                    pynvml.nvmlGpmMetricsGet(request)
                    if request.metrics[0].nvmlReturn == pynvml.NVML_SUCCESS:
                        sm = request.metrics[0].value
                finally:
                    pynvml.nvmlGpmSampleFree(second)
            out[index] = (util, sm, pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
                          pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000,
                          pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))
        except Timeout:
            ctx.wedged.add(index)
        except pynvml.NVMLError:
            pass
    for sample in first.values():
        pynvml.nvmlGpmSampleFree(sample)
    return out


def activity(ctx):
    if not hasattr(ctx, "_activity"):
        ctx._activity = sample_activity(ctx, ctx.readable())
    return ctx._activity


def check_collective(ctx):
    # --8<-- [start:collective]
    def looks_hung(util, sm, power, limit, clock):
        """A kernel resident (NVML util high), few SMs busy (a stuck NCCL kernel keeps one CTA per channel busy:
        16 channels on 132 SMs = 12 %, 32 = 24 %) and power near idle: what a hang looks like from the GPU."""
        return util >= 90 and power <= ctx.args.hang_power_share * limit and (sm is None or sm <= ctx.args.hang_sm)

    start = activity(ctx)
    suspects = {i for i, a in start.items() if looks_hung(*a)}
    began, latest = time.monotonic(), dict(start)
    while suspects and time.monotonic() - began < ctx.args.hang_seconds:  # judge over minutes, not one sample
        time.sleep(min(ctx.args.hang_seconds / 12, max(ctx.args.hang_seconds - (time.monotonic() - began), 0)))
        again = sample_activity(ctx, [(i, h) for i, h in ctx.readable() if i in suspects])
        latest.update(again)
        suspects = {i for i in suspects if i in again and looks_hung(*again[i])}
    findings = []
    for index, (util, sm, power, limit, _) in sorted(latest.items()):
        line = (f"GPU {index}: NVML utilization {util}%" + ("" if sm is None else f", SM active {sm:.0f}%")
                + f", {power:.0f}/{limit:.0f} W")
        if index in suspects:
            findings.append((WARN, line + f" for {time.monotonic() - began:.0f} s: kernels resident, SMs and"
                                          " power near idle - consistent with a hung collective. The job decides:"
                                          " check its heartbeat and flight recorder before acting"))
        elif looks_hung(*start[index]):
            findings.append((OK, line + ": worked again within the window - a communication phase, not a hang"))
        else:
            findings.append((OK, line))
    # --8<-- [end:collective]
    return combine(findings)


def check_straggler(ctx):
    # --8<-- [start:straggler]
    job = [(i, util, sm, clock) for i, (util, sm, _, _, clock) in activity(ctx).items() if util >= 10]
    if len(job) < 2:
        return (OK, [f"{len(job)} GPU(s) in use: no peers to compare"]) if ctx.readable() else combine([])
    util_median = statistics.median(u for _, u, _, _ in job)
    clock_median = statistics.median(c for _, _, _, c in job)
    sms = [sm for _, _, sm, _ in job if sm is not None]
    sm_median = statistics.median(sms) if sms else None
    findings = []
    for index, util, sm, clock in job:
        line = (f"GPU {index}: util {util}% (median {util_median:.0f}%), SM {clock} MHz (median {clock_median:.0f})"
                + ("" if sm is None else f", SM active {sm:.0f}% (median {sm_median:.0f}%)"))
        if clock < 0.9 * clock_median:
            findings.append((WARN, line + ": clocks well below its peers - the job runs at this GPU's pace"))
        elif util < util_median - 25:
            findings.append((WARN, line + ": idle while its peers wait in NCCL - the slow rank is starved"
                                          " (data loader, CPU, NUMA binding, storage)"))
        elif sm is not None and sm > sm_median + 30:
            findings.append((WARN, line + ": computes while its peers wait - the slow rank has more work"))
        else:
            findings.append((OK, line))
    # --8<-- [end:straggler]
    return combine(findings)


CHECKS = {"driver": check_driver, "bus": check_bus, "memory": check_memory, "processes": check_processes,
          "clocks": check_clocks, "xid": check_xid, "ecc": check_ecc, "recovery": check_recovery,
          "fabric": check_fabric, "mig": check_mig, "links": check_links, "collective": check_collective,
          "straggler": check_straggler}


def run(ctx, names):
    """{check: result} in the order asked; `xid` listens while the --window of the counter checks runs."""
    results = {}
    for name in sorted(names, key=lambda n: (n not in ("driver", "bus", "xid"), list(CHECKS).index(n))):
        if name not in ("driver", "xid") and ctx.init_error is not None:  # the kernel log needs no NVML
            verdict, lines = UNKNOWN, [f"NVML did not initialize ({ctx.init_error}): see the driver check"]
        else:
            try:
                verdict, lines = CHECKS[name](ctx)
            except pynvml.NVMLError as err:
                verdict, lines = UNKNOWN, [f"NVML says {err} ({error_name(err)})"]
        results[name] = {"verdict": NAMES[verdict], "code": verdict, "evidence": lines}
    return {name: results[name] for name in names}


def prometheus(results) -> str:
    out = ["# HELP gpu_health_check Verdict of a GPU health check: 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN.",
           "# TYPE gpu_health_check gauge"]
    out += [f'gpu_health_check{{check="{name}"}} {r["code"]}' for name, r in results.items()]
    return "\n".join(out) + "\n"


def seconds(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds > 0")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="GPU node health checks (exit 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN)")
    parser.add_argument("--check", choices=list(CHECKS), action="append", help="run only this check (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--prometheus", metavar="FILE", help="also write a node_exporter textfile")
    parser.add_argument("--where", choices=["auto", "host", "container"], default="auto",
                        help="where this runs, for the advice on NVML errors (default: detect)")
    parser.add_argument("--expect-gpus", type=int, help="GPUs this node should have (a missing one is CRITICAL)")
    parser.add_argument("--need-cuda", metavar="X.Y", help="CUDA version the workload needs (e.g. torch.version.cuda)")
    parser.add_argument("--expect-mig", metavar="PROFILE:N,...", help="the MIG layout each GPU should have")
    parser.add_argument("--nvml-timeout", type=seconds, default=10.0, help="seconds an NVML call may take")
    parser.add_argument("--window", type=seconds, default=3.0, help="seconds over which counters are differenced")
    parser.add_argument("--hw-share", type=float, default=0.5, help="share of the window HW slowdown pages at")
    parser.add_argument("--unaccounted-gib", type=float, default=1.0, help="GiB no process accounts for that warns")
    parser.add_argument("--xid-seconds", type=seconds, default=2.0, help="how long to listen for Xid events")
    parser.add_argument("--xid-hours", type=seconds, default=24.0,
                        help="how long application Xids in the live kernel log count")
    parser.add_argument("--kernel-log", metavar="FILE",
                        help="read Xids from this saved `dmesg`, `dmesg -T` or `journalctl -k` output")
    parser.add_argument("--sample-seconds", type=seconds, default=0.5, help="GPM sampling window")
    parser.add_argument("--hang-seconds", type=seconds, default=120.0, help="how long a suspected hang is watched")
    parser.add_argument("--hang-sm", type=float, default=35.0, help="SM activity %% at or below which a GPU may hang")
    parser.add_argument("--hang-power-share", type=float, default=0.3, help="share of the power limit at or below"
                                                                            " which a busy GPU may hang")
    args = parser.parse_args(argv)
    if args.need_cuda and not re.fullmatch(r"\d+\.\d+(\.\d+)?", args.need_cuda):
        parser.error(f"--need-cuda {args.need_cuda!r}: write MAJOR.MINOR, e.g. 12.4")
    if args.expect_mig and not re.fullmatch(r"\d+g\.\d+gb(:\d+)?(,\d+g\.\d+gb(:\d+)?)*", args.expect_mig):
        parser.error(f"--expect-mig {args.expect_mig!r}: write PROFILE:COUNT,..., e.g. 3g.71gb:1,1g.18gb:4")
    if args.kernel_log and not os.path.exists(args.kernel_log):
        parser.error(f"--kernel-log {args.kernel_log!r}: no such file")
    ctx = Context(args)
    results = run(ctx, args.check or list(CHECKS))
    worst = max((r["code"] for r in results.values()), key=RANK.get)
    if args.prometheus:
        tmp = args.prometheus + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(prometheus(results))
        os.replace(tmp, args.prometheus)  # node_exporter never reads a half-written file
    if args.json:
        print(json.dumps({"checks": results, "exit": worst}, indent=2))
    else:
        for name, r in results.items():
            print(f"[{r['verdict']}] {name}")
            for line in r["evidence"]:
                print(f"    {line}")
        print(f"exit {worst} ({NAMES[worst]})")
    with open("gpu_health.json", "w", encoding="utf-8") as f:  # kept for the evidence bundle and recordings
        json.dump({"checks": results, "exit": worst}, f, indent=2)
    stuck = bool(ctx.wedged) or isinstance(ctx.init_error, Timeout)
    if ctx.init_error is None and not stuck:
        pynvml.nvmlShutdown()
    sys.stdout.flush()
    if stuck:  # a call is still blocked in NVML: leave without waiting for it
        os._exit(worst)
    return worst


if __name__ == "__main__":
    sys.exit(main())
