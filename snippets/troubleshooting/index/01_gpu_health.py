"""GPU node health checks, one per runbook: each prints a verdict with its evidence and sets the exit code.

    python 01_gpu_health.py                    # every check, one block each; exit code = the worst verdict
    python 01_gpu_health.py --check clocks     # one check (driver, bus, memory, processes, clocks, xid, ecc,
                                               #   recovery, collective, straggler, links)
    python 01_gpu_health.py --json             # machine-readable, for scripts and the evidence bundle
    python 01_gpu_health.py --prometheus /var/lib/node_exporter/gpu_health.prom   # textfile-collector output

Exit codes follow the GCM health-check / Nagios plugin convention: 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN (the
check could not read what it needs; the reason is printed). Overall: CRITICAL > WARN > UNKNOWN > OK.
It reads only: it never resets, reconfigures or loads anything on the GPU.
Needs: pip install nvidia-ml-py
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import pynvml

OK, WARN, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "OK", WARN: "WARN", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
RANK = {OK: 0, UNKNOWN: 1, WARN: 2, CRITICAL: 3}  # which verdict wins when findings are combined

# Xid -> (class, immediate action, verdict), after NVIDIA's Xid catalog. 13/31/43 are the application's.
XID = {
    13: ("application", "RESTART_APP: fix the program (graphics engine exception); not a hardware fault", WARN),
    31: ("application", "RESTART_APP: fix the program (MMU fault: bad address); not a hardware fault", WARN),
    43: ("application", "RESTART_APP: the program's channel stopped; not a hardware fault", WARN),
    48: ("memory", "RESET_GPU: double-bit ECC error; drain, capture evidence, reset", CRITICAL),
    63: ("memory", "RESET_GPU when drained: a row remap was recorded and applies at the next reset", WARN),
    64: ("memory", "CONTACT_SUPPORT: row remap failed; drain the node and open an RMA", CRITICAL),
    74: ("nvlink", "RESET_GPU: NVLink error; capture evidence, reset, RMA if it recurs", CRITICAL),
    79: ("bus", "DRAIN the node: the GPU fell off the bus; capture evidence, reboot, RMA if it recurs", CRITICAL),
    92: ("memory", "watch: high single-bit ECC rate", WARN),
    94: ("memory", "RESTART_APP: contained ECC error; only the affected program died", WARN),
    95: ("memory", "RESET_GPU: uncontained ECC error; drain and reset", CRITICAL),
    119: ("firmware", "RESET_GPU: GSP timeout", CRITICAL),
    120: ("firmware", "RESET_GPU: GSP error", CRITICAL),
    154: ("recovery", "read the recovery action (check `recovery`)", WARN),
}
RECOVERY = {0: ("NONE", OK), 1: ("GPU_RESET", WARN), 2: ("NODE_REBOOT", CRITICAL), 3: ("DRAIN_P2P", CRITICAL),
            4: ("DRAIN_AND_RESET", CRITICAL), 5: ("RECOVER_IMEX_DOMAIN", CRITICAL), 6: ("BUS_RESET", CRITICAL),
            7: ("SYSTEM_REBOOT", CRITICAL)}
INIT_ERRORS = {  # nvmlInit failure -> what it means on a node
    "DRIVER_NOT_LOADED": "the kernel module is not loaded (dkms build failed? Secure Boot?): see the driver runbook",
    "LIB_RM_VERSION_MISMATCH": "driver/library version mismatch: the driver was upgraded but the old kernel module"
                               " is loaded; drain and reboot",
    "LIBRARY_NOT_FOUND": "no libnvidia-ml.so.1: driver not installed, or a container started without the NVIDIA"
                         " runtime",
    "UNKNOWN": "'Unknown Error': in a container this is the lost-device-nodes bug after systemctl daemon-reload;"
               " restart the container",
    "NO_PERMISSION": "no permission on /dev/nvidia*",
}
KERNEL_XID = re.compile(r"^\[\s*(?P<t>\d+\.\d+)\].*NVRM: Xid \(PCI:(?P<bus>[0-9a-fA-F:.]+)\): (?P<code>\d+)")


class Context:
    """NVML state shared by the checks: the init error, or a handle (or the error getting it) per GPU."""

    def __init__(self, args):
        self.args = args
        self.init_error = None
        self.gpus = []  # (index, handle or None, error or None)
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            self.init_error = err
            return
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                self.gpus.append((index, pynvml.nvmlDeviceGetHandleByIndex(index), None))
            except pynvml.NVMLError as err:
                self.gpus.append((index, None, err))

    def readable(self):
        return [(i, h) for i, h, err in self.gpus if h is not None]


def error_name(err) -> str:
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
    """Run inspect(index, handle) -> [(verdict, line)] on every readable GPU; an NVML error is UNKNOWN."""
    findings = []
    for index, handle in ctx.readable():
        try:
            findings += inspect(index, handle)
        except pynvml.NVMLError as err:
            findings.append((UNKNOWN, f"GPU {index}: NVML says {err} ({error_name(err)})"))
    return combine(findings)


# ---- the checks, one per runbook -------------------------------------------------------------------------------
def check_driver(ctx):
    if ctx.init_error is not None:
        name = error_name(ctx.init_error)
        return CRITICAL, [f"nvmlInit failed: {ctx.init_error} (NVML_ERROR_{name}): "
                          + INIT_ERRORS.get(name, "see the driver runbook")]
    driver = pynvml.nvmlSystemGetDriverVersion()
    cuda = pynvml.nvmlSystemGetCudaDriverVersion()
    have = (cuda // 1000, cuda % 1000 // 10)
    lines = [f"driver {driver}, built for CUDA {have[0]}.{have[1]}, {len(ctx.gpus)} GPU(s)"]
    if ctx.args.need_cuda:
        need = tuple(int(x) for x in ctx.args.need_cuda.split(".")[:2])
        if have < need:
            return CRITICAL, lines + [f"the program needs CUDA {ctx.args.need_cuda}: the driver is insufficient;"
                                      " upgrade the driver or use a build for CUDA <= "
                                      f"{have[0]}.{have[1]}"]
        lines.append(f"CUDA {ctx.args.need_cuda} needed: the driver is new enough")
    return OK, lines


def check_bus(ctx):
    findings = []
    for index, handle, err in ctx.gpus:
        if err is not None:
            lost = isinstance(err, pynvml.NVMLError_GpuIsLost)
            findings.append((CRITICAL if lost else UNKNOWN, f"GPU {index}: {err}"
                             + (" - fell off the bus: drain, capture evidence, reboot" if lost else "")))
        else:
            findings.append((OK, f"GPU {index}: {pynvml.nvmlDeviceGetPciInfo(handle).busId} answers"))
    if ctx.args.expect_gpus is not None and len(ctx.gpus) < ctx.args.expect_gpus:
        findings.append((CRITICAL, f"{len(ctx.gpus)} GPU(s) enumerated, {ctx.args.expect_gpus} expected:"
                                   " a GPU is missing from the bus"))
    return combine(findings) if findings else (CRITICAL, ["NVML sees no GPU"])


def check_memory(ctx):
    def inspect(index, handle):
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        share = mem.used / mem.total
        line = f"GPU {index}: {mem.used / 2**30:.1f} of {mem.total / 2**30:.1f} GiB used ({share:.0%})"
        if share >= ctx.args.memory_warn:
            return [(WARN, line + ": the next allocation may OOM; see the OOM runbook")]
        return [(OK, line)]
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
                findings.append((CRITICAL if used >= 1 else WARN,
                                 f"GPU {index}: PID {proc.pid} holds {used:.1f} GiB but no such process exists"
                                 " (dead, or in another PID namespace): see the stuck-memory runbook"))
        return findings or [(OK, f"GPU {index}: no compute processes")]
    return per_gpu(ctx, inspect)


def check_clocks(ctx):
    hw = {pynvml.nvmlClocksEventReasonHwThermalSlowdown: "HW thermal slowdown",
          pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown: "HW power brake",
          pynvml.nvmlClocksEventReasonHwSlowdown: "HW slowdown"}
    sw = {pynvml.nvmlClocksEventReasonSwThermalSlowdown: "SW thermal slowdown",
          pynvml.nvmlClocksEventReasonApplicationsClocksSetting: "application clocks locked"}

    def inspect(index, handle):
        reasons = pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
        sm = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
        sm_max = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
        power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000
        limit = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
        default = pynvml.nvmlDeviceGetPowerManagementDefaultLimit(handle) / 1000
        temp = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        line = (f"GPU {index}: reasons 0x{reasons:x}, SM {sm}/{sm_max} MHz, {power:.0f}/{limit:.0f} W, {temp} C")
        findings = [(CRITICAL, f"{line}: {name}") for bit, name in hw.items() if reasons & bit]
        findings += [(WARN, f"{line}: {name}") for bit, name in sw.items() if reasons & bit]
        if limit < default * 0.98:
            findings.append((WARN, f"{line}: power limit lowered from the default {default:.0f} W"))
        if not findings:
            normal = " (SW power cap at the limit is normal)" if reasons & pynvml.nvmlClocksEventReasonSwPowerCap else ""
            findings.append((OK, line + normal))
        return findings
    return per_gpu(ctx, inspect)


def kernel_xids(ctx):
    """Xid lines from the kernel log (dmesg, or --kernel-log FILE) no older than --xid-hours; None if unreadable."""
    try:
        if ctx.args.kernel_log:
            with open(ctx.args.kernel_log, encoding="utf-8", errors="replace") as f:
                text = f.read()
        else:
            text = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10, check=True).stdout
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    horizon = uptime - ctx.args.xid_hours * 3600
    return [(m["bus"], int(m["code"])) for m in map(KERNEL_XID.match, text.splitlines())
            if m and float(m["t"]) >= horizon]


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
    if handles:
        try:
            seen = listen_for_xids(handles, ctx.args.xid_seconds)
            lines.append(f"listened {ctx.args.xid_seconds:g} s for Xid events on {len(handles)} GPU(s)")
        except pynvml.NVMLError as err:  # e.g. no permission in a restricted container: the kernel log remains
            lines.append(f"NVML Xid events unavailable ({err}): kernel log only")
            handles = []
    logged = kernel_xids(ctx)
    if logged is None:
        lines.append("kernel log not readable (run as root, or pass --kernel-log FILE)")
    else:
        lines.append(f"kernel log: {len(logged)} Xid line(s) in the last {ctx.args.xid_hours:g} h")
        seen += [(f"PCI {bus}", code) for bus, code in logged]
    if not handles and logged is None:
        return UNKNOWN, lines + ["no readable GPU and no kernel log"]
    findings = []
    for code in sorted({code for _, code in seen}):
        where = ", ".join(sorted({w for w, c in seen if c == code}))
        cls, action, verdict = XID.get(code, ("unlisted", "look it up in NVIDIA's Xid catalog", WARN))
        findings.append((verdict, f"Xid {code} ({cls}) on {where}: {action}"))
    verdict, found = combine(findings) if findings else (OK, ["no Xid"])
    return verdict, lines + found


def check_ecc(ctx):
    def inspect(index, handle):
        current, _ = pynvml.nvmlDeviceGetEccMode(handle)
        if not current:
            return [(WARN, f"GPU {index}: ECC is disabled")]
        unc = pynvml.nvmlDeviceGetTotalEccErrors(handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                                 pynvml.NVML_VOLATILE_ECC)
        corr = pynvml.nvmlDeviceGetTotalEccErrors(handle, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                                                  pynvml.NVML_VOLATILE_ECC)
        try:
            sram = pynvml.nvmlDeviceGetMemoryErrorCounter(handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                                          pynvml.NVML_AGGREGATE_ECC, pynvml.NVML_MEMORY_LOCATION_SRAM)
        except pynvml.NVMLError_NotSupported:
            sram = 0  # no per-location counters on this GPU: the totals above still count
        try:
            rows_corr, rows_unc, pending, failed = pynvml.nvmlDeviceGetRemappedRows(handle)
        except pynvml.NVMLError_NotSupported:  # pre-Ampere (page retirement instead) or MIG instances active
            return [(WARN if unc else OK, f"GPU {index}: volatile ECC {corr} corrected / {unc} uncorrected;"
                                          " row remapping not readable here")]
        line = (f"GPU {index}: volatile ECC {corr} corrected / {unc} uncorrected, aggregate SRAM uncorrected"
                f" {sram}, remapped rows {rows_corr}+{rows_unc}, pending {bool(pending)}, failed {bool(failed)}")
        if failed:
            return [(CRITICAL, line + ": row remap FAILED - drain and RMA")]
        if sram > 4:
            return [(CRITICAL, line + ": more than 4 aggregate SRAM uncorrectable errors - RMA")]
        if pending:
            return [(WARN, line + ": remap pending - drain, then reset the GPU to apply it")]
        if unc:
            return [(WARN, line + ": uncorrectable errors since the driver loaded - see the ECC runbook")]
        return [(OK, line)]
    return per_gpu(ctx, inspect)


def check_recovery(ctx):
    def inspect(index, handle):
        value = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])[0]
        if value.nvmlReturn != pynvml.NVML_SUCCESS:
            return [(UNKNOWN, f"GPU {index}: recovery action not readable ({pynvml.NVMLError(value.nvmlReturn)})")]
        name, verdict = RECOVERY.get(value.value.uiVal, (f"value {value.value.uiVal}", WARN))
        return [(verdict, f"GPU {index}: driver's recovery action {name}")]
    return per_gpu(ctx, inspect)


def gpm_sm_active(handle, seconds):
    """GPM SM activity in percent between two samples, or None where GPM is not supported (pre-Hopper)."""
    if not pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice:
        return None
    first, second = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    try:
        pynvml.nvmlGpmSampleGet(handle, first)
        time.sleep(seconds)
        pynvml.nvmlGpmSampleGet(handle, second)
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics, request.sample1, request.sample2 = 1, first, second
        request.metrics[0].metricId = pynvml.NVML_GPM_METRIC_SM_UTIL
        pynvml.nvmlGpmMetricsGet(request)
        return request.metrics[0].value if request.metrics[0].nvmlReturn == pynvml.NVML_SUCCESS else None
    finally:
        pynvml.nvmlGpmSampleFree(first)
        pynvml.nvmlGpmSampleFree(second)


def activity(ctx):
    """Per readable GPU: (index, NVML util %, GPM SM active % or None, SM MHz), read once and shared."""
    if not hasattr(ctx, "_activity"):
        ctx._activity = []
        for index, handle in ctx.readable():
            util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            sm = gpm_sm_active(handle, ctx.args.sample_seconds) if util >= 50 else None
            clock = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
            ctx._activity.append((index, util, sm, clock))
    return ctx._activity


def check_collective(ctx):
    findings = []
    for index, util, sm, _ in activity(ctx):
        line = f"GPU {index}: NVML utilization {util}%" + ("" if sm is None else f", SM active {sm:.1f}%")
        if util >= 90 and sm is not None and sm < 10:
            findings.append((CRITICAL, line + ": a kernel is resident but the SMs do nothing - a hung collective?"
                                              " dump the stacks on every rank"))
        elif util >= 90 and sm is None:
            findings.append((UNKNOWN, line + ": no GPM here; compare DCGM_FI_PROF_SM_ACTIVE"))
        else:
            findings.append((OK, line))
    return combine(findings)


def check_straggler(ctx):
    busy = [(i, sm, clock) for i, util, sm, clock in activity(ctx) if util >= 90]
    if len(busy) < 2:
        return (OK, [f"{len(busy)} busy GPU(s): no peers to compare"]) if ctx.readable() else combine([])
    clock_median = statistics.median(c for _, _, c in busy)
    sms = [sm for _, sm, _ in busy if sm is not None]
    sm_median = statistics.median(sms) if sms else None
    findings = []
    for index, sm, clock in busy:
        line = f"GPU {index}: SM {clock} MHz (node median {clock_median:.0f})" + (
            "" if sm is None else f", SM active {sm:.0f}% (median {sm_median:.0f}%)")
        if clock < 0.9 * clock_median:
            findings.append((WARN, line + ": clocks well below its peers - the job runs at this GPU's pace"))
        elif sm is not None and sm > sm_median + 30:
            findings.append((WARN, line + ": busy while its peers wait - the slow rank"))
        else:
            findings.append((OK, line))
    return combine(findings)


def check_links(ctx):
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
            findings.append((CRITICAL, line + nv + f": link(s) {down} down - see the links runbook"))
        return findings or [(OK, line + nv + ("" if busy or gen == gen_max else " (idle GPUs lower the generation)"))]
    return per_gpu(ctx, inspect)


CHECKS = {"driver": check_driver, "bus": check_bus, "memory": check_memory, "processes": check_processes,
          "clocks": check_clocks, "xid": check_xid, "ecc": check_ecc, "recovery": check_recovery,
          "collective": check_collective, "straggler": check_straggler, "links": check_links}


def run(ctx, names):
    results = {}
    for name in names:
        if name != "driver" and ctx.init_error is not None:
            verdict, lines = UNKNOWN, [f"NVML did not initialize ({ctx.init_error}): see the driver check"]
        else:
            try:
                verdict, lines = CHECKS[name](ctx)
            except pynvml.NVMLError as err:
                verdict, lines = UNKNOWN, [f"NVML says {err} ({error_name(err)})"]
        results[name] = {"verdict": NAMES[verdict], "code": verdict, "evidence": lines}
    return results


def prometheus(results) -> str:
    out = ["# HELP gpu_health_check Verdict of a GPU health check: 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN.",
           "# TYPE gpu_health_check gauge"]
    out += [f'gpu_health_check{{check="{name}"}} {r["code"]}' for name, r in results.items()]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="GPU node health checks (exit 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN)")
    parser.add_argument("--check", choices=list(CHECKS), action="append", help="run only this check (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--prometheus", metavar="FILE", help="also write a node_exporter textfile")
    parser.add_argument("--expect-gpus", type=int, help="GPUs this node should have (a missing one is CRITICAL)")
    parser.add_argument("--need-cuda", metavar="X.Y", help="CUDA version the workload needs (e.g. torch.version.cuda)")
    parser.add_argument("--memory-warn", type=float, default=0.95, help="used share that warns (default 0.95)")
    parser.add_argument("--xid-seconds", type=float, default=2.0, help="how long to listen for Xid events")
    parser.add_argument("--xid-hours", type=float, default=24.0, help="how far back kernel-log Xids count")
    parser.add_argument("--kernel-log", metavar="FILE", help="read Xids from this saved dmesg output")
    parser.add_argument("--sample-seconds", type=float, default=0.5, help="GPM sampling window")
    args = parser.parse_args(argv)
    if args.need_cuda and not re.fullmatch(r"\d+\.\d+(\.\d+)?", args.need_cuda):
        parser.error(f"--need-cuda {args.need_cuda!r}: write MAJOR.MINOR, e.g. 12.4")
    ctx = Context(args)
    try:
        results = run(ctx, args.check or list(CHECKS))
    finally:
        if ctx.init_error is None:
            pynvml.nvmlShutdown()
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
    return worst


if __name__ == "__main__":
    sys.exit(main())
