"""Clock event reasons idle, then under a bf16 matmul load: what "normal" looks like before you call it throttling.

Samples NVML every 0.25 s: ~3 s idle, then ~10 s while the GPU multiplies bf16 matrices; over the load it also
differences NVML's own clock-event-reason counters (time each reason was active), the numbers a health check
should judge a window by. Reads only; it changes no clock, power or MIG setting. Writes clock_reasons.json.
Needs: pip install nvidia-ml-py torch (a CUDA build)
"""
import json
import statistics
import sys
import threading
import time

import pynvml
import torch

# --8<-- [start:reasons]
REASONS = ["GpuIdle", "ApplicationsClocksSetting", "SwPowerCap", "HwSlowdown", "SyncBoost", "SwThermalSlowdown",
           "HwThermalSlowdown", "HwPowerBrakeSlowdown", "DisplayClockSetting"]
NAMES = {getattr(pynvml, "nvmlClocksEventReason" + name): name for name in REASONS}


def decode(mask: int) -> list[str]:
    return [name for bit, name in sorted(NAMES.items()) if mask & bit]
# --8<-- [end:reasons]


# --8<-- [start:counters]
COUNTERS = {  # NVML field -> nanoseconds the reason was active since the driver loaded
    "SwPowerCap": pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP,
    "SwThermalSlowdown": pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN,
    "HwThermalSlowdown": pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN,
    "HwPowerBrakeSlowdown": pynvml.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN,
}


def counters(handle) -> dict:
    """{reason: counter value, or None where this GPU or driver does not support the field}."""
    values = pynvml.nvmlDeviceGetFieldValues(handle, list(COUNTERS.values()))
    return {name: (v.value.ullVal if v.nvmlReturn == pynvml.NVML_SUCCESS else None)
            for name, v in zip(COUNTERS, values)}


def counter_shares(before: dict, after: dict, seconds: float) -> dict:
    """Share of `seconds` each reason was active, by NVML's counters (in ns): what a window check should use."""
    return {name: (after[name] - before[name]) / 1e9 / seconds
            for name in COUNTERS if before[name] is not None and after[name] is not None}
# --8<-- [end:counters]


def sample(handle, seconds: float, stop: threading.Event | None = None) -> list[dict]:
    rows, end = [], time.monotonic() + seconds
    while time.monotonic() < end and not (stop and stop.is_set()):
        rows.append({"reasons": pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle),
                     "sm_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                     "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
                     "temp_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
                     "util": pynvml.nvmlDeviceGetUtilizationRates(handle).gpu})
        time.sleep(0.25)
    return rows


def summarise(rows: list[dict]) -> dict:
    seen = dict.fromkeys(REASONS + ["None"], 0)  # every reason gets a share, 0 when never seen
    for row in rows:
        for name in decode(row["reasons"]) or ["None"]:
            seen[name] = seen.get(name, 0) + 1
    return {"samples": len(rows), "reasons_share": {k: v / len(rows) for k, v in seen.items()},
            "sm_mhz_median": statistics.median(r["sm_mhz"] for r in rows),
            "power_w_median": statistics.median(r["power_w"] for r in rows),
            "temp_c_max": max(r["temp_c"] for r in rows), "util_median": statistics.median(r["util"] for r in rows)}


def nvml_handle_of_cuda_device(device: int = 0):
    """NVML's handle for the GPU that CUDA calls `device`, by UUID: NVML ignores CUDA_VISIBLE_DEVICES, so its index 0
    is another GPU whenever CUDA_VISIBLE_DEVICES names one that is not the node's first."""
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    for prefix in ("GPU-", "MIG-"):
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(prefix + uuid)
        except pynvml.NVMLError_NotFound:
            pass
    sys.exit(f"01_clock_reasons.py: NVML has no device with the UUID of CUDA device {device} ({uuid})")


def load(seconds: float) -> float:
    """bf16 matmuls for `seconds`; returns the achieved TFLOP/s."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            a @ b
        n += 20
        torch.cuda.synchronize()
    return 2 * 8192**3 * n / (time.perf_counter() - start) / 1e12


def main():
    if not torch.cuda.is_available():
        sys.exit("01_clock_reasons.py: no CUDA GPU visible to torch")
    pynvml.nvmlInit()
    try:
        handle = nvml_handle_of_cuda_device(0)  # the GPU the load below runs on
        limit = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
        sm_max = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
        idle = summarise(sample(handle, 3))
        rows, stop = [], threading.Event()
        sampler = threading.Thread(target=lambda: rows.extend(sample(handle, 30, stop)))
        before, started = counters(handle), time.monotonic()
        sampler.start()
        try:
            tflops = load(10)
        finally:
            stop.set()
            sampler.join()
        shares = counter_shares(before, counters(handle), time.monotonic() - started)
        busy = summarise(rows[4:])  # skip the first second: clocks ramp up as the load starts
    finally:
        pynvml.nvmlShutdown()
    result = {"card": torch.cuda.get_device_name(0), "power_limit_w": limit, "sm_max_mhz": sm_max,
              "idle": idle, "load": {**busy, "tflops_bf16": tflops, "counter_share": shares},
              "load_power_share_of_limit": busy["power_w_median"] / limit,
              "load_sm_share_of_max": busy["sm_mhz_median"] / sm_max}
    for phase in ("idle", "load"):
        p = result[phase]
        print(f"{phase:>4}: reasons {p['reasons_share']}, SM {p['sm_mhz_median']:.0f}/{sm_max} MHz, "
              f"{p['power_w_median']:.0f}/{limit:.0f} W, max {p['temp_c_max']} C")
    print(f"load: {tflops:.0f} TFLOP/s bf16; NVML's counters: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    with open("clock_reasons.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
