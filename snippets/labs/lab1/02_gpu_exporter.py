#!/usr/bin/env python3
"""Lab 1 GPU exporter: reads every GPU through NVML and serves the values to Prometheus.

    python 02_gpu_exporter.py --port 9445 --interval 5     # then: curl -s 127.0.0.1:9445/metrics

Every --interval seconds it reads each GPU (utilization, memory, temperature, power, clocks and why they are
lowered, ECC and row remapping, processes, and GPM SM/tensor activity where the GPU has GPM). A second thread
counts Xid errors from an NVML event set. It never stops serving: when nvmlInit fails (no driver, driver/library
mismatch) it exports gpu_exporter_nvml_up 0 and retries; when a GPU is lost it exports gpu_up 0 for that GPU
and keeps reporting the others; every NVML error is counted in gpu_exporter_errors_total{gpu, error}.
Needs: pip install nvidia-ml-py prometheus-client
"""
import argparse
import ctypes
import logging
import signal
import threading
import time

import pynvml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("gpu-exporter")

# Bits of nvmlDeviceGetCurrentClocksEventReasons: why the SM clock is below its maximum.
CLOCK_EVENT_REASONS = {
    "gpu_idle": pynvml.nvmlClocksEventReasonGpuIdle,
    "applications_clocks_setting": pynvml.nvmlClocksEventReasonApplicationsClocksSetting,
    "sw_power_cap": pynvml.nvmlClocksEventReasonSwPowerCap,
    "hw_slowdown": pynvml.nvmlClocksEventReasonHwSlowdown,
    "sync_boost": pynvml.nvmlClocksEventReasonSyncBoost,
    "sw_thermal_slowdown": pynvml.nvmlClocksEventReasonSwThermalSlowdown,
    "hw_thermal_slowdown": pynvml.nvmlClocksEventReasonHwThermalSlowdown,
    "hw_power_brake_slowdown": pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
}
# GPM metrics (Hopper and later), as percentages over the time between two samples.
GPM_METRICS = {
    "sm_active": pynvml.NVML_GPM_METRIC_SM_UTIL,
    "sm_occupancy": pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
    "tensor_active": pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
}
ECC_COUNTERS = {
    ("corrected", "volatile"): (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC),
    ("corrected", "aggregate"): (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_AGGREGATE_ECC),
    ("uncorrected", "volatile"): (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC),
    ("uncorrected", "aggregate"): (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC),
}
GPU_LABELS = ["gpu", "uuid"]


def error_name(err: pynvml.NVMLError) -> str:
    """NVMLError_GpuIsLost -> 'GpuIsLost': the value of the `error` label."""
    return type(err).__name__.removeprefix("NVMLError_")


def handle_key(handle) -> int:
    """NVML handles are pointers; their address identifies the GPU in event data."""
    return ctypes.cast(handle, ctypes.c_void_p).value


class Gpu:
    """What the last poll read from one GPU. `values` holds only what NVML answered."""

    def __init__(self, index: int):
        self.index, self.uuid, self.name, self.compute_capability = index, "", "", ""
        self.up = False
        self.values: dict = {}
        self.gpm_supported: bool | None = None
        self.gpm_samples = None  # (previous, spare) sample buffers
        self.gpm_previous_taken = False

    @property
    def labels(self) -> list[str]:
        return [str(self.index), self.uuid]


class Exporter:
    """Polls NVML into a snapshot; Prometheus's scrapes read the snapshot through collect()."""

    def __init__(self):
        self.lock = threading.Lock()
        self.nvml_up = False
        self.nvml_ready = threading.Event()  # set once nvmlInit succeeded: the Xid watcher starts then
        self.driver_version = self.cuda_version = ""
        self.gpus: dict[int, Gpu] = {}
        self.handles: dict[int, int] = {}  # handle address -> GPU index, for Xid events
        self.errors: dict[tuple[str, str], int] = {}  # (gpu, error) -> count
        self.xids: dict[tuple[int, int], int] = {}  # (gpu index, xid) -> count
        self.last_poll = self.poll_seconds = 0.0
        self.logged: set = set()

    def count_error(self, gpu: int | None, err: Exception):
        name = error_name(err) if isinstance(err, pynvml.NVMLError) else type(err).__name__
        key = ("" if gpu is None else str(gpu), name)
        with self.lock:
            self.errors[key] = self.errors.get(key, 0) + 1
        if key not in self.logged:  # log each kind of error once; the counter keeps the rest
            self.logged.add(key)
            log.warning("%s: %s (%s)", "NVML" if gpu is None else f"GPU {gpu}", name, err)

    # ---- polling ---------------------------------------------------------------------------------------------
    def poll(self):
        started = time.monotonic()
        if not self.nvml_up:
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as err:
                self.count_error(None, err)
                return
            self.driver_version = pynvml.nvmlSystemGetDriverVersion()
            cuda = pynvml.nvmlSystemGetCudaDriverVersion()
            self.cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}"
            self.nvml_up = True
            self.nvml_ready.set()
            log.info("NVML up: driver %s, CUDA %s", self.driver_version, self.cuda_version)
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as err:
            self.count_error(None, err)
            return
        for index in range(count):
            gpu = self.gpus.get(index) or Gpu(index)
            self.read_gpu(gpu)
            with self.lock:
                self.gpus[index] = gpu
        with self.lock:
            self.last_poll, self.poll_seconds = time.time(), time.monotonic() - started

    def read_gpu(self, gpu: Gpu):
        values = {}

        def read(key, call):
            """values[key] = call(); a GPU without the feature leaves the key out, other errors are counted."""
            try:
                values[key] = call()
            except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_NoPermission):
                pass
            except pynvml.NVMLError_GpuIsLost:
                raise
            except pynvml.NVMLError as err:
                self.count_error(gpu.index, err)

        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(gpu.index)
            if not gpu.uuid:
                gpu.uuid = pynvml.nvmlDeviceGetUUID(handle)
                gpu.name = pynvml.nvmlDeviceGetName(handle)
                gpu.compute_capability = "%d.%d" % pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                with self.lock:
                    self.handles[handle_key(handle)] = gpu.index
            read("utilization", lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
            read("memory", lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
            read("temperature", lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
            read("slowdown_temperature", lambda: pynvml.nvmlDeviceGetTemperatureThreshold(
                handle, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN))
            read("power_mw", lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
            read("power_limit_mw", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
            read("energy_mj", lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            read("sm_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))
            read("sm_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM))
            read("clocks_event_reasons", lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
            for (kind, scope), (error_type, counter_type) in ECC_COUNTERS.items():
                read(f"ecc_{kind}_{scope}",
                     lambda e=error_type, c=counter_type: pynvml.nvmlDeviceGetTotalEccErrors(handle, e, c))
            read("remapped_rows", lambda: pynvml.nvmlDeviceGetRemappedRows(handle))
            read("processes", lambda: len(pynvml.nvmlDeviceGetComputeRunningProcesses(handle)))
            try:
                values.update(self.read_gpm(gpu, handle))
            except pynvml.NVMLError_GpuIsLost:
                raise
            except pynvml.NVMLError as err:
                self.count_error(gpu.index, err)
            gpu.up = True
        except pynvml.NVMLError as err:  # the GPU is lost (or never answered): report it down, drop stale values
            self.count_error(gpu.index, err)
            gpu.up, values = False, {}
        gpu.values = values

    def read_gpm(self, gpu: Gpu, handle) -> dict:
        """GPM SM/tensor activity between this poll and the previous one (Hopper and later)."""
        values = {}
        if gpu.gpm_supported is None:
            try:
                gpu.gpm_supported = bool(pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)
            except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
                gpu.gpm_supported = False
            if gpu.gpm_supported:
                gpu.gpm_samples = (pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc())
        if not gpu.gpm_supported:
            return values
        previous, current = gpu.gpm_samples
        pynvml.nvmlGpmSampleGet(handle, current)
        if gpu.gpm_previous_taken:
            request = pynvml.c_nvmlGpmMetricsGet_t()
            request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = len(GPM_METRICS)
            request.sample1, request.sample2 = previous, current
            for i, metric_id in enumerate(GPM_METRICS.values()):
                request.metrics[i].metricId = metric_id
            pynvml.nvmlGpmMetricsGet(request)
            for i, name in enumerate(GPM_METRICS):
                if request.metrics[i].nvmlReturn == pynvml.NVML_SUCCESS:
                    values["gpm_" + name] = request.metrics[i].value / 100
        gpu.gpm_samples, gpu.gpm_previous_taken = (current, previous), True
        return values

    # ---- Xid events ------------------------------------------------------------------------------------------
    def watch_xids(self, stop: threading.Event, retry_seconds: float):
        """Counts Xid events (nvmlEventTypeXidCriticalError) until `stop` is set."""
        while not stop.is_set():
            if not self.nvml_ready.wait(timeout=0.5):
                continue
            try:
                self.wait_for_xids(stop)
            except Exception as err:  # counted; the watcher starts over with a new event set
                self.count_error(None, err)
            stop.wait(retry_seconds)

    def wait_for_xids(self, stop: threading.Event):
        """Registers every GPU in one event set and counts its Xid events until `stop` or an error."""
        event_set = pynvml.nvmlEventSetCreate()
        try:
            registered = 0
            for index in range(pynvml.nvmlDeviceGetCount()):
                try:
                    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                    pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
                    with self.lock:
                        self.handles[handle_key(handle)] = index
                    registered += 1
                except pynvml.NVMLError_NotSupported:
                    log.info("GPU %d: Xid events not supported", index)
                except pynvml.NVMLError as err:
                    self.count_error(index, err)
            while registered and not stop.is_set():
                try:
                    event = pynvml.nvmlEventSetWait(event_set, 500)
                except pynvml.NVMLError_Timeout:
                    continue
                if event.eventType == pynvml.nvmlEventTypeXidCriticalError:
                    with self.lock:
                        index = self.handles.get(handle_key(event.device), -1)
                        key = (index, int(event.eventData))
                        self.xids[key] = self.xids.get(key, 0) + 1
                    log.warning("GPU %d: Xid %d", index, event.eventData)
        finally:
            pynvml.nvmlEventSetFree(event_set)

    # ---- what Prometheus reads -------------------------------------------------------------------------------
    def collect(self):
        with self.lock:
            gpus = [self.gpus[i] for i in sorted(self.gpus)]
            errors, xids = dict(self.errors), dict(self.xids)
            last_poll, poll_seconds, nvml_up = self.last_poll, self.poll_seconds, self.nvml_up

        def gauge(name, doc, labels=GPU_LABELS):
            return GaugeMetricFamily(name, doc, labels=labels)

        health = [
            gauge("gpu_exporter_nvml_up", "1 when NVML is initialised; 0 when nvmlInit fails (see errors)", []),
            gauge("gpu_exporter_gpus", "GPUs that NVML reports", []),
            gauge("gpu_exporter_last_poll_timestamp_seconds", "Unix time of the last complete poll", []),
            gauge("gpu_exporter_poll_duration_seconds", "How long the last poll of all GPUs took", []),
        ]
        health[0].add_metric([], int(nvml_up))
        health[1].add_metric([], len(gpus))
        if last_poll:
            health[2].add_metric([], last_poll)
            health[3].add_metric([], poll_seconds)
        errors_family = CounterMetricFamily("gpu_exporter_errors", "NVML calls that failed, by GPU and NVMLError",
                                            labels=["gpu", "error"])
        for (gpu_label, error), count in sorted(errors.items()):
            errors_family.add_metric([gpu_label, error], count)
        yield from health
        yield errors_family

        driver = gauge("gpu_driver_info", "Driver and the newest CUDA it supports (value 1)",
                       ["driver_version", "cuda_driver_version"])
        if nvml_up:
            driver.add_metric([self.driver_version, self.cuda_version], 1)
        yield driver

        info = gauge("gpu_info", "One series per GPU (value 1)", GPU_LABELS + ["name", "compute_capability"])
        up = gauge("gpu_up", "1 when the last poll read the GPU, 0 when it failed (GPU lost)")
        for gpu in gpus:
            info.add_metric(gpu.labels + [gpu.name, gpu.compute_capability], 1)
            up.add_metric(gpu.labels, int(gpu.up))
        yield info
        yield up
        yield from self.gpu_families(gpus)

        xid = CounterMetricFamily("gpu_xid_errors", "Xid errors seen in NVML events since the exporter started",
                                  labels=GPU_LABELS + ["xid"])
        uuids = {gpu.index: gpu.uuid for gpu in gpus}
        for (index, code), count in sorted(xids.items()):
            xid.add_metric([str(index), uuids.get(index, ""), str(code)], count)
        yield xid

    def gpu_families(self, gpus):
        families = {}

        def add(name, doc, gpu, value, kind="gauge", extra=None):
            if name not in families:
                family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                families[name] = family(name, doc, labels=GPU_LABELS + list(extra or {}))
            families[name].add_metric(gpu.labels + list((extra or {}).values()), value)

        docs = {
            "gpu_utilization_ratio": "NVML utilization: share of time at least one kernel ran (not SM activity)",
            "gpu_memory_copy_utilization_ratio": "NVML memory utilization: share of time device memory was read or written",
            "gpu_memory_used_bytes": "Device memory in use",
            "gpu_memory_total_bytes": "Device memory size",
            "gpu_temperature_celsius": "GPU temperature",
            "gpu_temperature_slowdown_celsius": "Temperature at which the GPU slows its clocks",
            "gpu_power_watts": "Power draw",
            "gpu_power_limit_watts": "Enforced power limit",
            "gpu_energy_joules": "Energy used since the driver loaded",
            "gpu_sm_clock_hertz": "SM clock",
            "gpu_sm_clock_max_hertz": "Maximum SM clock",
            "gpu_clocks_event_reasons": "Bitmask of nvmlClocksEventReason* bits: why the clock is below maximum",
            "gpu_clocks_event_active": "1 while a clock event reason is active",
            "gpu_ecc_errors": "ECC errors by type (corrected/uncorrected) and scope (volatile: since driver load)",
            "gpu_remapped_rows": "Memory rows remapped, by the kind of error that caused it",
            "gpu_row_remap_pending": "1 when a row remap waits for a GPU reset",
            "gpu_row_remap_failed": "1 when a row remap failed: the GPU needs service",
            "gpu_compute_processes": "Compute processes holding a context on the GPU",
            "gpu_gpm_supported": "1 when the GPU has GPM (SM and tensor activity below)",
            "gpu_sm_active_ratio": "GPM: share of SM cycles with at least one warp resident",
            "gpu_sm_occupancy_ratio": "GPM: resident warps / maximum warps, averaged over SMs",
            "gpu_tensor_active_ratio": "GPM: share of cycles the tensor cores worked",
        }
        for gpu in gpus:
            v = gpu.values
            if "utilization" in v:
                add("gpu_utilization_ratio", docs["gpu_utilization_ratio"], gpu, v["utilization"].gpu / 100)
                add("gpu_memory_copy_utilization_ratio", docs["gpu_memory_copy_utilization_ratio"], gpu,
                    v["utilization"].memory / 100)
            if "memory" in v:
                add("gpu_memory_used_bytes", docs["gpu_memory_used_bytes"], gpu, v["memory"].used)
                add("gpu_memory_total_bytes", docs["gpu_memory_total_bytes"], gpu, v["memory"].total)
            simple = {"temperature": ("gpu_temperature_celsius", 1),
                      "slowdown_temperature": ("gpu_temperature_slowdown_celsius", 1),
                      "power_mw": ("gpu_power_watts", 1e-3), "power_limit_mw": ("gpu_power_limit_watts", 1e-3),
                      "sm_clock_mhz": ("gpu_sm_clock_hertz", 1e6), "sm_clock_max_mhz": ("gpu_sm_clock_max_hertz", 1e6),
                      "processes": ("gpu_compute_processes", 1)}
            for key, (name, scale) in simple.items():
                if key in v:
                    add(name, docs[name], gpu, v[key] * scale)
            if "energy_mj" in v:
                add("gpu_energy_joules", docs["gpu_energy_joules"], gpu, v["energy_mj"] / 1000, "counter")
            if "clocks_event_reasons" in v:
                add("gpu_clocks_event_reasons", docs["gpu_clocks_event_reasons"], gpu, v["clocks_event_reasons"])
                for reason, bit in CLOCK_EVENT_REASONS.items():
                    add("gpu_clocks_event_active", docs["gpu_clocks_event_active"], gpu,
                        int(bool(v["clocks_event_reasons"] & bit)), extra={"reason": reason})
            for kind, scope in ECC_COUNTERS:
                if f"ecc_{kind}_{scope}" in v:
                    add("gpu_ecc_errors", docs["gpu_ecc_errors"], gpu, v[f"ecc_{kind}_{scope}"], "counter",
                        extra={"type": kind, "scope": scope})
            if "remapped_rows" in v:
                correctable, uncorrectable, pending, failed = v["remapped_rows"]
                for cause, rows in (("correctable", correctable), ("uncorrectable", uncorrectable)):
                    add("gpu_remapped_rows", docs["gpu_remapped_rows"], gpu, rows, "counter", extra={"cause": cause})
                add("gpu_row_remap_pending", docs["gpu_row_remap_pending"], gpu, int(bool(pending)))
                add("gpu_row_remap_failed", docs["gpu_row_remap_failed"], gpu, int(bool(failed)))
            if gpu.up and gpu.gpm_supported is not None:
                add("gpu_gpm_supported", docs["gpu_gpm_supported"], gpu, int(gpu.gpm_supported))
            for name in GPM_METRICS:
                if "gpm_" + name in v:
                    add(f"gpu_{name}_ratio", docs[f"gpu_{name}_ratio"], gpu, v["gpm_" + name])
        for name, doc in docs.items():  # every family is described even when no GPU has a value for it
            if name not in families:
                kind = CounterMetricFamily if name in ("gpu_energy_joules", "gpu_ecc_errors", "gpu_remapped_rows") \
                    else GaugeMetricFamily
                families[name] = kind(name, doc, labels=GPU_LABELS)
        yield from families.values()


def main():
    parser = argparse.ArgumentParser(description="Export NVML GPU metrics to Prometheus")
    parser.add_argument("--port", type=int, default=9445, help="port to serve /metrics on (default 9445)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; use 0.0.0.0 only behind a firewall)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between NVML polls (default 5)")
    args = parser.parse_args()
    if args.interval <= 0:
        parser.error("--interval must be > 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    exporter = Exporter()
    registry = CollectorRegistry()
    registry.register(exporter)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    watcher = threading.Thread(target=exporter.watch_xids, args=(stop, args.interval), daemon=True)
    watcher.start()  # registers for Xid events as soon as the first poll has initialised NVML
    exporter.poll()  # the first scrape already sees the GPUs
    server, _ = start_http_server(args.port, addr=args.address, registry=registry)
    log.info("serving http://%s:%d/metrics, polling every %gs", args.address, args.port, args.interval)
    while not stop.wait(args.interval):
        try:
            exporter.poll()
        except Exception as err:  # a bug or an unexpected NVML state must not stop the exporter
            exporter.count_error(None, err)
    server.shutdown()
    watcher.join(timeout=2)
    if exporter.nvml_up:
        pynvml.nvmlShutdown()
    log.info("stopped")


if __name__ == "__main__":
    main()
