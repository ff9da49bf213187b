"""Record what the real tools print on this node, so that a simulator of them can be compared with the real thing.

Runs nvidia-smi in the forms the runbooks use (plain, -q, -q -d ..., --help-query-*, --query-gpu and
--query-compute-apps with every field the handbook's stand-in plays), once idle and once while a small CUDA
process holds memory, reads dmesg as this user (and as nobody when run as root), and asks NVML for the values
behind the fields (recovery action, clock-event-reason counters, SRAM ECC status, fabric state, power limits).
Writes everything to real_tool.json and prints one line per command. Reads only; changes nothing. About 20 s.
Needs: nvidia-smi on PATH, pip install nvidia-ml-py; torch with CUDA for the busy capture (skipped without it).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pynvml

FIELDS = (  # --query-gpu fields: canonical names and the aliases the runbooks type (clocks.sm, gpu_name...)
    "timestamp,driver_version,count,index,name,serial,uuid,pci.bus_id,persistence_mode,compute_mode,compute_cap,"
    "pstate,gpu_recovery_action,temperature.gpu,temperature.gpu.tlimit,temperature.memory,utilization.gpu,"
    "utilization.memory,memory.total,memory.reserved,memory.used,memory.free,power.draw,power.draw.average,"
    "power.draw.instant,power.limit,enforced.power.limit,power.default_limit,power.min_limit,power.max_limit,"
    "clocks.current.graphics,clocks.current.sm,clocks.current.memory,clocks.max.graphics,clocks.max.sm,"
    "clocks.max.memory,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,"
    "ecc.mode.current,ecc.mode.pending,ecc.errors.uncorrected.aggregate.sram.thresholdExceeded,retired_pages.pending,"
    "remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure,"
    "mig.mode.current,mig.mode.pending,fabric.state,fabric.status,remapped_rows.histogram.max,"
    "remapped_rows.histogram.high,remapped_rows.histogram.partial,remapped_rows.histogram.low,"
    "remapped_rows.histogram.none,ecc.errors.corrected.volatile.total,ecc.errors.corrected.volatile.dram,"
    "ecc.errors.corrected.volatile.sram,ecc.errors.corrected.aggregate.total,ecc.errors.corrected.aggregate.dram,"
    "ecc.errors.corrected.aggregate.sram,ecc.errors.uncorrected.volatile.total,ecc.errors.uncorrected.volatile.dram,"
    "ecc.errors.uncorrected.volatile.sram,ecc.errors.uncorrected.aggregate.total,"
    "ecc.errors.uncorrected.aggregate.dram,ecc.errors.uncorrected.aggregate.sram,clocks_event_reasons.active,"
    "clocks_event_reasons.supported,clocks_event_reasons.gpu_idle,clocks_event_reasons.applications_clocks_setting,"
    "clocks_event_reasons.sw_power_cap,clocks_event_reasons.hw_slowdown,clocks_event_reasons.hw_thermal_slowdown,"
    "clocks_event_reasons.hw_power_brake_slowdown,clocks_event_reasons.sync_boost,"
    "clocks_event_reasons.sw_thermal_slowdown,clocks_throttle_reasons.active,clocks_throttle_reasons.hw_slowdown,"
    "clocks_event_reasons_counters.sw_power_cap,clocks_event_reasons_counters.sync_boost,"
    "clocks_event_reasons_counters.sw_thermal_slowdown,clocks_event_reasons_counters.hw_thermal_slowdown,"
    "clocks_event_reasons_counters.hw_power_brake_slowdown,gpu_name,gpu_serial,gpu_uuid,gpu_bus_id,clocks.gr,"
    "clocks.sm,clocks.mem,clocks.max.gr,clocks.max.mem,gpu.power.requested_limit,gpu.power.current_limit,"
    "gpu.power.default_limit,gpu.power.min_limit,gpu.power.max_limit,gpu.power.draw.average,"
    "gpu.power.draw.instant,remapped_rows.sbe,remapped_rows.dbe"
).split(",")
APP_FIELDS = "timestamp,gpu_name,gpu_bus_id,gpu_serial,gpu_uuid,pid,process_name,name,used_gpu_memory,used_memory"
IDLE = {
    "plain": ["nvidia-smi"],
    "q": ["nvidia-smi", "-q"],
    "q_d": ["nvidia-smi", "-q", "-d", "ECC,ROW_REMAPPER,PERFORMANCE,TEMPERATURE,POWER"],
    "q_d_more": ["nvidia-smi", "-q", "-d", "MEMORY,UTILIZATION,CLOCK,COMPUTE,PIDS,PAGE_RETIREMENT"],
    "help_query_gpu": ["nvidia-smi", "--help-query-gpu"],
    "help_query_compute_apps": ["nvidia-smi", "--help-query-compute-apps"],
    "csv": ["nvidia-smi", "--query-gpu=" + ",".join(FIELDS), "--format=csv"],
    "apps": ["nvidia-smi", "--query-compute-apps=" + APP_FIELDS, "--format=csv"],
    "dmesg": ["dmesg"],
}
BUSY = {name: IDLE[name] for name in ("plain", "apps")} | {"q_pids": ["nvidia-smi", "-q", "-d", "PIDS"]}
HOLDER = """import torch, time
x = torch.empty(2**30, dtype=torch.uint8, device="cuda")   # 1 GiB held, so the process shows in the tables
print("holding", flush=True)
time.sleep(15)
"""


def run(argv) -> dict:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return {"argv": argv, "exit": None, "stdout": "", "stderr": f"{argv[0]}: not found"}
    except subprocess.TimeoutExpired:
        return {"argv": argv, "exit": None, "stdout": "", "stderr": "timed out after 60 s"}
    out = done.stdout
    if argv[0] == "dmesg":  # the driver's lines only, not the whole kernel log
        out = "\n".join(line for line in out.splitlines() if re.search(r"NVRM|nvidia|gpu-reset", line))
    return {"argv": argv, "exit": done.returncode, "stdout": out, "stderr": done.stderr[-2000:]}


def run_all(commands: dict) -> dict:
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(commands, pool.map(run, commands.values())))


def csv_headers(result, fields) -> dict:
    """{field asked for: the header nvidia-smi printed for it}, from a --format=csv run."""
    lines = result["stdout"].splitlines()
    if result["exit"] != 0 or not lines:
        return {}
    return dict(zip(fields, lines[0].split(", ")))


def one_by_one(fields) -> dict:
    """Each field on its own, for a tool that refuses one of them: header, or the tool's refusal."""
    out = {}
    for field in fields:
        result = run(["nvidia-smi", f"--query-gpu={field}", "--format=csv"])
        out[field] = result["stdout"].splitlines()[0] if result["exit"] == 0 else f"refused: {result['stdout'][:80]}"
    return out


def nvml_probe() -> dict:
    def read(function, *args):
        try:
            value = function(*args)
            return value.decode() if isinstance(value, bytes) else value
        except pynvml.NVMLError as err:
            return f"error: {err}"

    import ctypes

    # The GPU the captures' first rows describe: nvidia-smi's GPU 0, taken by UUID so NVML reads that very board
    # (NVML ignores CUDA_VISIBLE_DEVICES; the CUDA child of busy_capture only makes a process to list).
    first = run(["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader", "-i", "0"])["stdout"].strip()
    pynvml.nvmlInit()
    try:
        h = pynvml.nvmlDeviceGetHandleByUUID(first) if first.startswith("GPU-") else pynvml.nvmlDeviceGetHandleByIndex(0)
        fields = {name: getattr(pynvml, name) for name in dir(pynvml) if name.startswith("NVML_FI_DEV_") and any(
            key in name for key in ("GPU_RECOVERY_ACTION", "CLOCKS_EVENT_REASON", "PERF_POLICY_POWER"))}
        values = {}
        for name, fid in sorted(fields.items()):
            v = read(pynvml.nvmlDeviceGetFieldValues, h, [fid])
            values[name] = v if isinstance(v, str) else (
                None if v[0].nvmlReturn else (v[0].value.ullVal if v[0].valueType == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
                else v[0].value.uiVal))
        sram = pynvml.c_nvmlEccSramErrorStatus_v1_t()
        sram_result = read(pynvml.nvmlDeviceGetSramEccErrorStatus, h, ctypes.byref(sram))
        fabric = pynvml.c_nvmlGpuFabricInfo_t()
        fabric_result = read(pynvml.nvmlDeviceGetGpuFabricInfo, h, ctypes.byref(fabric))
        v1, v2 = read(pynvml.nvmlDeviceGetMemoryInfo, h), read(pynvml.nvmlDeviceGetMemoryInfo, h, pynvml.nvmlMemory_v2)
        return {
            "name": read(pynvml.nvmlDeviceGetName, h), "uuid": read(pynvml.nvmlDeviceGetUUID, h),
            "driver": read(pynvml.nvmlSystemGetDriverVersion),
            "field_values": values,
            "sram": sram_result if isinstance(sram_result, str) else {
                "threshold_exceeded": sram.bThresholdExceeded, "aggregate_unc_secded": sram.aggregateUncSecDed,
                "aggregate_unc_parity": sram.aggregateUncParity},
            "fabric": fabric_result if isinstance(fabric_result, str) else {"state": fabric.state,
                                                                            "status": fabric.status},
            "memory_v1_used": v1 if isinstance(v1, str) else v1.used,
            "memory_v2": v2 if isinstance(v2, str) else {"used": v2.used, "reserved": v2.reserved},
            "margin_temperature": read(pynvml.nvmlDeviceGetMarginTemperature, h),
            "power_requested_mw": read(pynvml.nvmlDeviceGetPowerManagementLimit, h),
            "power_enforced_mw": read(pynvml.nvmlDeviceGetEnforcedPowerLimit, h),
            "power_constraints_mw": read(pynvml.nvmlDeviceGetPowerManagementLimitConstraints, h),
            "mig_mode": read(pynvml.nvmlDeviceGetMigMode, h),
        }
    finally:
        pynvml.nvmlShutdown()


def busy_capture() -> dict:
    """The busy commands while a child holds 1 GiB through CUDA; {} with the reason when that cannot be done."""
    try:
        import torch  # noqa: F401

        if not torch.cuda.is_available():
            return {"skipped": "torch sees no CUDA device"}
    except ImportError:
        return {"skipped": "torch is not installed"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        if holder.stdout.readline().strip() != "holding":
            return {"skipped": "the CUDA holder process did not start"}
        time.sleep(1)  # let NVML list the new context
        return {"pid": holder.pid, "commands": run_all(BUSY)}
    finally:
        holder.kill()
        holder.wait()


def main() -> int:
    if shutil.which("nvidia-smi") is None:
        sys.exit("nvidia-smi is not on PATH: run this on a node with the NVIDIA driver")
    commands = run_all(IDLE)
    headers = csv_headers(commands["csv"], FIELDS) or one_by_one(FIELDS)
    result = {"user": os.getuid(), "commands": commands, "csv_headers": headers,
              "apps_headers": csv_headers(commands["apps"], APP_FIELDS.split(",")), "nvml": nvml_probe()}
    if os.getuid() == 0 and shutil.which("setpriv"):  # what a user without CAP_SYSLOG gets
        result["commands"]["dmesg_nobody"] = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                                  "dmesg"])
    result["busy"] = busy_capture()
    with open("real_tool.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    for name, r in list(result["commands"].items()) + list(result["busy"].get("commands", {}).items()):
        print(f"{' '.join(r['argv'])[:70]:<72} exit {r['exit']}, {len(r['stdout'].splitlines())} lines")
    print(f"{len(headers)} --query-gpu headers; busy capture: {result['busy'].get('skipped', 'done')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
