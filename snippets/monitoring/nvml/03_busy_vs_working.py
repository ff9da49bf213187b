"""NVML utilization (was a kernel running?) next to GPM SM and tensor activity (how much of the GPU worked).

GPM (GPU Performance Monitoring) exists on Hopper and later; it computes metrics between two samples.
Needs: pip install nvidia-ml-py
"""
import time

import pynvml

METRICS = {
    "SM active": pynvml.NVML_GPM_METRIC_SM_UTIL,
    "SM occupancy": pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
    "tensor active": pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
}


def gpm_metrics(handle, seconds: float) -> dict:
    """GPM metrics averaged over `seconds`, in percent."""
    first, second = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    try:
        pynvml.nvmlGpmSampleGet(handle, first)
        time.sleep(seconds)
        pynvml.nvmlGpmSampleGet(handle, second)
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(METRICS)
        request.sample1, request.sample2 = first, second
        for i, metric in enumerate(METRICS.values()):
            request.metrics[i].metricId = metric
        pynvml.nvmlGpmMetricsGet(request)
        return {name: request.metrics[i].value for i, name in enumerate(METRICS)
                if request.metrics[i].nvmlReturn == pynvml.NVML_SUCCESS}
    finally:
        pynvml.nvmlGpmSampleFree(first)
        pynvml.nvmlGpmSampleFree(second)


def main():
    pynvml.nvmlInit()
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            busy = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            line = f"GPU {index}: NVML utilization {busy}%"
            if pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice:
                line += "".join(f", {name} {value:.1f}%" for name, value in gpm_metrics(handle, 0.5).items())
            else:
                line += " (no GPM on this GPU: use DCGM profiling metrics)"
            print(line)
    finally:
        pynvml.nvmlShutdown()


if __name__ == "__main__":
    main()
