"""The smallest NVML exporter: a prometheus_client collector that reads NVML when Prometheus scrapes.

It prints one exposition (what GET /metrics returns) instead of serving it; serve it with
prometheus_client.start_http_server(9445, addr="127.0.0.1", registry=registry). Lab 1 builds the full exporter.
Needs: pip install nvidia-ml-py prometheus-client
"""
import pynvml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily


class NvmlCollector:
    def collect(self):
        util = GaugeMetricFamily("gpu_utilization_ratio", "Share of time a kernel ran", labels=["gpu", "uuid"])
        used = GaugeMetricFamily("gpu_memory_used_bytes", "Device memory in use", labels=["gpu", "uuid"])
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            labels = [str(index), pynvml.nvmlDeviceGetUUID(handle)]
            util.add_metric(labels, pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100)
            used.add_metric(labels, pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        yield util
        yield used


def main():
    pynvml.nvmlInit()
    try:
        registry = CollectorRegistry()
        registry.register(NvmlCollector())
        print(generate_latest(registry).decode())
    finally:
        pynvml.nvmlShutdown()


if __name__ == "__main__":
    main()
