"""'GPU utilization' (NVML) versus SM activity (Hopper GPM metrics) for three workloads.

NVML utilization is the share of time at least one kernel was running. GPM SM activity is the share of SMs
(and time) that had work. One single-thread kernel spinning on one SM reads as a fully utilized GPU while its SM
activity cannot exceed 1/(number of SMs); a stream of tiny kernels shows what launch overhead does to both.
"""
import json
import threading
import time

import pynvml
import torch

GPM_METRICS = {"sm_activity": pynvml.NVML_GPM_METRIC_SM_UTIL, "sm_occupancy": pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
               "tensor_activity": pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL}


def gpm_metrics(handle, sample1, sample2) -> dict:
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(GPM_METRICS)
    request.sample1, request.sample2 = sample1, sample2
    for slot, metric in enumerate(GPM_METRICS.values()):
        request.metrics[slot].metricId = metric
    pynvml.nvmlGpmMetricsGet(request)
    return {name: request.metrics[slot].value for slot, name in enumerate(GPM_METRICS)}


# --8<-- [start:uuid]
def nvml_handle(device: int):
    """NVML's handle for CUDA device `device`, found by the GPU's UUID.

    NVML numbers every GPU of the node in its own order and ignores CUDA_VISIBLE_DEVICES, so NVML's index 0 is
    not CUDA's device 0 when CUDA_VISIBLE_DEVICES=5 (or when CUDA orders GPUs fastest first): on a shared node,
    asking NVML by index reads another job's GPU. The UUID names the same GPU in both.
    """
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    for prefix in ("GPU-", "MIG-"):  # a MIG instance has a MIG- UUID in NVML
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(prefix + uuid)
        except pynvml.NVMLError_NotFound:
            pass
    raise SystemExit(f"NVML has no device with the UUID of CUDA device {device} ({uuid})")
# --8<-- [end:uuid]


def sample_while(handle, workload, seconds: float) -> dict:
    """Run workload for `seconds` while a thread reads NVML utilization and GPM metrics once a second."""
    stop, readings = threading.Event(), []

    def sampler():
        before, after = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
        pynvml.nvmlGpmSampleGet(handle, before)
        while not stop.wait(1.0):
            pynvml.nvmlGpmSampleGet(handle, after)
            reading = gpm_metrics(handle, before, after)
            reading["nvml_utilization"] = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            readings.append(reading)
            before, after = after, before
        pynvml.nvmlGpmSampleFree(before)
        pynvml.nvmlGpmSampleFree(after)

    thread = threading.Thread(target=sampler)
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        workload()
    torch.cuda.synchronize()
    stop.set()
    thread.join()
    steady = readings[1:] or readings  # the first second includes the ramp-up
    return {key: sum(r[key] for r in steady) / len(steady) for key in steady[0]}


def cycles_for(seconds: float) -> int:
    """Clock cycles that torch.cuda._sleep spins for `seconds` on this GPU, measured (the clock varies by card)."""
    probe = 10_000_000
    torch.cuda._sleep(probe)  # warm-up
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(probe)
    end.record()
    end.synchronize()
    return int(probe * seconds / (start.elapsed_time(end) / 1e3))


def main():
    pynvml.nvmlInit()
    device = torch.cuda.current_device()
    handle = nvml_handle(device)
    if not pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice:
        raise SystemExit(f"{pynvml.nvmlDeviceGetName(handle)} has no GPM metrics (Hopper or newer needed)")
    sm_count = torch.cuda.get_device_properties(device).multi_processor_count
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    tiny = torch.zeros(64, device="cuda")
    spin_cycles = cycles_for(0.05)

    def big_matmuls():
        for _ in range(20):
            torch.matmul(a, b)
        torch.cuda.synchronize()

    def one_block():
        for _ in range(10):  # queued back to back: a spinning kernel is resident for the whole second
            torch.cuda._sleep(spin_cycles)  # PyTorch's spin kernel: 1 block of 1 thread, busy for N clock cycles
        torch.cuda.synchronize()

    def tiny_kernels():
        for _ in range(1000):
            tiny.add_(1.0)  # one 64-element kernel: launch overhead dominates
        torch.cuda.synchronize()

    results = {"busy bf16 matmul": sample_while(handle, big_matmuls, 6),
               "single-block spin kernel": sample_while(handle, one_block, 6),
               "stream of tiny kernels": sample_while(handle, tiny_kernels, 6)}
    one_sm_pct = 100 / sm_count  # SM activity of a GPU where exactly one SM works all the time
    spin = results["single-block spin kernel"]
    print(f"{pynvml.nvmlDeviceGetName(handle)} ({sm_count} SMs), means over 1-second samples")
    print(f"{'workload':26} {'NVML util %':>12} {'SM activity %':>14} {'occupancy %':>12} {'tensor %':>9}")
    for workload, r in results.items():
        print(f"{workload:26} {r['nvml_utilization']:12.1f} {r['sm_activity']:14.2f} {r['sm_occupancy']:12.3f}"
              f" {r['tensor_activity']:9.2f}")
    print(f"one block on one SM of {sm_count}: SM activity can reach at most 100/{sm_count} = {one_sm_pct:.2f} %;"
          f" measured {spin['sm_activity']:.2f} % ({spin['sm_activity'] / one_sm_pct:.0%} of that bound)")
    results["device"] = {"name": pynvml.nvmlDeviceGetName(handle), "sm_count": sm_count,
                         "one_sm_activity_pct": one_sm_pct,
                         "spin_sm_activity_vs_one_sm": spin["sm_activity"] / one_sm_pct}
    with open("busy_vs_utilized.json", "w") as f:
        json.dump(results, f, indent=1)
    pynvml.nvmlShutdown()


if __name__ == "__main__":
    main()
