"""Sample GPU utilization in a background thread while your code runs.

NVML utilization (the share of time any kernel ran), the SM clock and the board power on every NVIDIA GPU; GPM SM
activity and tensor activity (how much of the GPU worked) where NVML supports GPM (Hopper and newer). It samples
the GPU this process computes on, found by UUID: NVML numbers GPUs its own way and ignores CUDA_VISIBLE_DEVICES.

    with UtilSampler(interval=0.2) as sampler:
        train()
    print(summarize(sampler.values("sm_activity")))

Run as a script, it samples a matrix-multiply loop and prints a summary.
"""
import json
import os
import threading
import time

import pynvml
import torch

GPM_METRICS = {"sm_activity": pynvml.NVML_GPM_METRIC_SM_UTIL, "tensor_activity": pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL}
KEYS = ("nvml_util", *GPM_METRICS)


def cuda_gpu_uuid(device: int | None = None) -> str | None:
    """UUID of the CUDA device this process computes on (torch numbers devices after CUDA_VISIBLE_DEVICES)."""
    if not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_properties(torch.cuda.current_device() if device is None else device).uuid)


def find_gpu(uuid: str | None = None):
    """NVML handle and a description of the GPU to sample; call after nvmlInit().

    With CUDA: the device's UUID (GPU-... or, for a MIG instance, MIG-...). Without CUDA in this process (a CPU run
    watching a GPU, or the handbook's simulator): the first entry of CUDA_VISIBLE_DEVICES, read as CUDA reads it,
    a UUID or a unique prefix of one, or an index in nvidia-smi's order; unset or empty (CUDA sees no GPU, so the
    readings cannot describe this process's work anyway), the first GPU."""
    uuid = uuid or cuda_gpu_uuid()
    if uuid:
        for name in (uuid, f"GPU-{uuid}", f"MIG-{uuid}"):
            try:
                return pynvml.nvmlDeviceGetHandleByUUID(name), f"CUDA device {name}"
            except pynvml.NVMLError:
                continue
        raise RuntimeError(f"NVML has no GPU with UUID {uuid}: is NVML from the same driver as CUDA?")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    entry = (visible or "").split(",")[0].strip()
    if not entry:
        why = "unset" if visible is None else "empty"
        return pynvml.nvmlDeviceGetHandleByIndex(0), f"NVML GPU 0 (no CUDA device here; CUDA_VISIBLE_DEVICES is {why})"
    if entry.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(entry)), f"NVML GPU {entry} (CUDA_VISIBLE_DEVICES={visible})"
    matches = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        if pynvml.nvmlDeviceGetUUID(handle).startswith(entry):
            matches.append(handle)
    if len(matches) != 1:
        raise RuntimeError(f"CUDA_VISIBLE_DEVICES={visible}: {entry!r} names {len(matches)} GPUs in NVML, not one")
    return matches[0], f"{entry} (CUDA_VISIBLE_DEVICES={visible})"


class UtilSampler:
    """Each sample covers the `interval` seconds that end at its time stamp `t` (time.monotonic())."""

    def __init__(self, interval: float = 0.2, uuid: str | None = None):
        if interval <= 0:
            raise ValueError(f"interval {interval}: must be > 0 seconds")
        self.interval, self.uuid, self.samples = interval, uuid, []
        self._stop = threading.Event()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            raise RuntimeError(f"NVML cannot start ({err}): utilization needs an NVIDIA driver") from None
        try:
            self.handle, self.source = find_gpu(self.uuid)
            self.name = pynvml.nvmlDeviceGetName(self.handle)
            self.gpu_uuid = pynvml.nvmlDeviceGetUUID(self.handle)
        except (pynvml.NVMLError, RuntimeError) as err:
            pynvml.nvmlShutdown()
            raise RuntimeError(f"NVML cannot read the GPU to sample: {err}") from None
        try:
            self.gpm = bool(pynvml.nvmlGpmQueryDeviceSupport(self.handle).isSupportedDevice)
        except pynvml.NVMLError:  # an older driver or GPU: NVML utilization only
            self.gpm = False
        self._thread = threading.Thread(target=self._loop, name="util-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        pynvml.nvmlShutdown()

    def _gpm(self, before, after) -> dict:
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(GPM_METRICS)
        request.sample1, request.sample2 = before, after
        for slot, metric in enumerate(GPM_METRICS.values()):
            request.metrics[slot].metricId = metric
        pynvml.nvmlGpmMetricsGet(request)
        return {name: request.metrics[slot].value for slot, name in enumerate(GPM_METRICS)}

    def _loop(self):
        pair = [pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()] if self.gpm else None
        if pair:
            pynvml.nvmlGpmSampleGet(self.handle, pair[0])
        try:
            while not self._stop.wait(self.interval):
                row = {"t": time.monotonic(), "nvml_util": float(pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)}
                try:
                    row["sm_clock_mhz"] = float(pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM))
                    row["power_w"] = pynvml.nvmlDeviceGetPowerUsage(self.handle) / 1000
                except pynvml.NVMLError:  # not supported on this GPU (a MIG instance, some vGPUs)
                    pass
                if pair:
                    pynvml.nvmlGpmSampleGet(self.handle, pair[1])
                    row.update(self._gpm(pair[0], pair[1]))
                    pair.reverse()  # this sample is the start of the next interval
                self.samples.append(row)
        finally:
            for sample in pair or []:
                pynvml.nvmlGpmSampleFree(sample)

    def values(self, key: str, t0: float = float("-inf"), t1: float = float("inf")) -> list[float]:
        """Readings of `key` whose whole interval lies inside [t0, t1]."""
        return window(self.samples, key, t0, t1, self.interval)


def window(samples: list[dict], key: str, t0: float, t1: float, interval: float) -> list[float]:
    return [s[key] for s in samples if key in s and s["t"] - interval >= t0 and s["t"] <= t1]


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the two nearest ranks (numpy's default method)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"n": len(values), "mean": sum(values) / len(values), "p5": percentile(values, 5),
            "p50": percentile(values, 50), "p95": percentile(values, 95), "min": min(values), "max": max(values)}


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n, dtype, seconds = (8192, torch.bfloat16, 5.0) if device == "cuda" else (256, torch.float32, 1.0)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)  # cuBLAS picks its kernel now, not inside the measured busy window
    if device == "cuda":
        torch.cuda.synchronize()
    try:
        sampler = UtilSampler(interval=0.2).start()
    except RuntimeError as err:
        raise SystemExit(str(err)) from None
    try:
        time.sleep(1.0)  # one idle second first, to see the difference
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            for _ in range(20):
                torch.matmul(a, b)
            if device == "cuda":
                torch.cuda.synchronize()
        t1 = time.monotonic()
        time.sleep(0.5)
    finally:
        sampler.stop()
    print(f"NVML sees {sampler.name} ({sampler.gpu_uuid}, from {sampler.source}); the workload ran on {device}"
          + ("" if device == "cuda" else " (so these readings describe some other workload, or a simulator)"))
    print(f"{n}x{n} {str(dtype).removeprefix('torch.')} matmul loop, {seconds:.0f} s; samples every {sampler.interval} s"
          + ("" if sampler.gpm else "; this GPU has no GPM metrics"))
    print(f"{'metric':16} {'idle mean':>10} {'busy mean':>10} {'p5':>6} {'p50':>6} {'p95':>6} {'n':>4}")
    summary = {}
    for key in KEYS if sampler.gpm else KEYS[:1]:
        idle, busy = summarize(sampler.values(key, t1=t0)), summarize(sampler.values(key, t0, t1))
        summary[key] = {"idle": idle, "busy": busy}
        if busy:
            print(f"{key:16} {idle['mean'] if idle else float('nan'):10.1f} {busy['mean']:10.1f} {busy['p5']:6.1f}"
                  f" {busy['p50']:6.1f} {busy['p95']:6.1f} {busy['n']:4d}")
    start = sampler.samples[0]["t"] if sampler.samples else t0
    chart = {"title": f"Utilization while a matmul loop runs ({sampler.name})",
             "x": {"label": "time", "unit": "s"}, "y": {"label": "utilization", "unit": "%"},
             "series": {k: [[round(s["t"] - start, 2), s[k]] for s in sampler.samples if k in s] for k in summary}}
    with open("utilization_samples.json", "w") as f:
        json.dump({"gpu": sampler.name, "uuid": sampler.gpu_uuid, "source": sampler.source, "device": device,
                   "window": [t0 - start, t1 - start], "summary": summary, "chart": chart}, f, indent=1)


if __name__ == "__main__":
    main()
