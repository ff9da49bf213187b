"""The simulated `pynvml` module.

It starts as a copy of nvidia-ml-py's own module namespace (constants, ctypes structures, NVMLError and its
subclasses: the real classes, so `except pynvml.NVMLError_GpuIsLost` behaves the same), then every function
that would call the driver is replaced: by a simulation below when there is one, else by a stub that says so on
stderr and raises NVMLError_NotSupported. Nothing here ever loads libnvidia-ml.
"""
import ctypes
import functools
import inspect
import math
import sys
import threading
import time
import types

from handbook.gpusim.real import real_pynvml
from handbook.gpusim.scenario import CLOCK_EVENT_REASONS, FABRIC_STATES, MAX_MIG_DEVICES, Scenario

PURE_HELPERS = {"nvmlExceptionClass", "nvmlStructToFriendlyObject", "nvmlFriendlyObjectToStruct"}
NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId of a process or event outside MIG

class EventSet:
    def __init__(self):
        self.cursors = {}  # gpu index -> (time, order) of the last event delivered (or the registration time)


class Simulator:
    """Plays a Scenario through the NVML functions below; method names and parameters are pynvml's own."""

    def __init__(self, scenario: Scenario, speed: float, at: float):
        self.real = real_pynvml()
        self.scenario, self.speed, self.at = scenario, speed, at
        self.lock = threading.RLock()
        self.t0 = None  # time.monotonic() of the first nvmlInit
        self.frozen = False  # True: time stands at `at` (a stand-in tool's snapshot, the same on every run)
        self.refcount = 0
        self.warned = set()
        self._memory = []  # ctypes buffers whose addresses are handles; kept alive here
        self.handles = [self._pointer(self.real.c_nvmlDevice_t) for _ in scenario.gpus]
        self.handle_index = {self._address(h): i for i, h in enumerate(self.handles)}
        # MIG: one handle per declared instance; mig_index maps its address to (gpu index, MigSpec).
        self.mig_handles = {(g.index, m.slot): self._pointer(self.real.c_nvmlDevice_t) for g in scenario.gpus for m in g.mig}
        self.mig_index = {self._address(h): (gi, scenario.gpus[gi].mig[slot]) for (gi, slot), h in self.mig_handles.items()}
        self.event_sets = {}
        self.samples = {}

    # ---- plumbing --------------------------------------------------------------------------------------------
    def _pointer(self, pointer_type):
        buffer = (ctypes.c_char * 8)()
        self._memory.append(buffer)
        return ctypes.cast(buffer, pointer_type)

    @staticmethod
    def _address(pointer):
        try:
            return ctypes.cast(pointer, ctypes.c_void_p).value
        except (TypeError, ctypes.ArgumentError):
            return None

    def fail(self, code):
        raise self.real.NVMLError(code)

    def now(self) -> float:
        """Seconds into the scenario: `at` when nvmlInit first ran, then `speed` times faster than the wall."""
        if self.frozen:
            return self.at
        return self.at + self.speed * (time.monotonic() - self.t0)

    def _initialized(self):
        if self.refcount <= 0:
            self.fail(self.real.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle):
        """(GpuSpec, now) for a handle, raising what NVML raises for a bad handle or a lost GPU."""
        self._initialized()
        index = self.handle_index.get(self._address(handle))
        if index is None and self._address(handle) in self.mig_index:  # a MIG handle answers as its parent GPU
            index = self.mig_index[self._address(handle)][0]
        if index is None:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        spec, t = self.scenario.gpus[index], self.now()
        if spec.lost(t):
            self.fail(self.real.NVML_ERROR_GPU_IS_LOST)
        if spec.wedged(t):  # a wedged GPU: the call waits on the GPU (a GSP RPC timeout), then fails
            time.sleep(spec.static["wedge_s"] / self.speed)
            self.fail(self.real.NVML_ERROR_UNKNOWN)
        return spec, t

    def _value(self, handle, name):
        spec, t = self._gpu(handle)
        return spec.value(name, t)

    def unsimulated(self, name, real_function):
        def stub(*args, **kwargs):
            self._initialized()
            if name not in self.warned:
                self.warned.add(name)
                print(f"gpusim: {name} is not simulated; raising NVMLError_NotSupported", file=sys.stderr)
            self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)

        stub = functools.update_wrapper(stub, real_function)
        stub.__gpusim_stub__ = True
        return stub

    # ---- library ---------------------------------------------------------------------------------------------
    def nvmlInitWithFlags(self, flags):
        with self.lock:
            if self.scenario.init_error:
                self.fail(getattr(self.real, "NVML_ERROR_" + self.scenario.init_error))
            if self.t0 is None:
                self.t0 = time.monotonic()
            self.refcount += 1

    def nvmlInit(self):
        self.nvmlInitWithFlags(0)

    def nvmlShutdown(self):
        with self.lock:
            self._initialized()
            self.refcount -= 1

    def nvmlErrorString(self, result):
        return self.real.NVMLError._errcode_to_string.get(result, "Unknown Error")

    def nvmlSystemGetDriverVersion(self):
        self._initialized()
        return self.scenario.driver_version

    def nvmlSystemGetCudaDriverVersion(self):
        self._initialized()
        return self.scenario.cuda_driver_version

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self.nvmlSystemGetCudaDriverVersion()

    def nvmlSystemGetNVMLVersion(self):
        self._initialized()
        return f"{self.scenario.cuda_driver_version // 1000}.{self.scenario.driver_version}"

    def nvmlSystemGetProcessName(self, pid):
        self._initialized()
        for gpu in self.scenario.gpus:
            for p in gpu.processes:
                if p.pid == pid and p.alive:  # a dead PID the driver still lists has no name to read
                    return p.name
        self.fail(self.real.NVML_ERROR_NOT_FOUND)

    # ---- devices ---------------------------------------------------------------------------------------------
    def nvmlDeviceGetCount(self):
        self._initialized()
        return len(self.scenario.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._initialized()
        if not isinstance(index, int) or not 0 <= index < len(self.handles):
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        self._gpu(self.handles[index])  # a lost GPU has no handle
        return self.handles[index]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._initialized()
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self.scenario.gpus:
            if gpu.uuid == uuid:
                return self.nvmlDeviceGetHandleByIndex(gpu.index)
            for mig in gpu.mig:
                if mig.uuid == uuid:
                    return self.nvmlDeviceGetMigDeviceHandleByIndex(self.nvmlDeviceGetHandleByIndex(gpu.index), mig.slot)
        self.fail(self.real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetHandleByPciBusId(self, pciBusId):
        self._initialized()
        bus_id = pciBusId.decode() if isinstance(pciBusId, bytes) else pciBusId
        for gpu in self.scenario.gpus:
            if bus_id.upper() in (self._bus_id(gpu.index), self._bus_id(gpu.index)[4:]):
                return self.nvmlDeviceGetHandleByIndex(gpu.index)
        self.fail(self.real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle):
        return self._gpu(handle)[0].index

    def nvmlDeviceGetMinorNumber(self, handle):
        return self._gpu(handle)[0].index

    def nvmlDeviceGetName(self, handle):
        mig = self._mig(handle)
        return self._gpu(handle)[0].static["model"] + (f" MIG {mig.profile}" if mig else "") + " (simulated)"

    def nvmlDeviceGetUUID(self, handle):
        mig = self._mig(handle)
        return mig.uuid if mig else self._gpu(handle)[0].uuid

    def nvmlDeviceGetSerial(self, handle):
        return f"simulated-{self._gpu(handle)[0].index}"

    def nvmlDeviceGetVbiosVersion(self, handle):
        self._gpu(handle)
        return "96.00.00.00.00 (simulated)"

    @staticmethod
    def _bus_id(index):
        return f"00000000:{0x18 + 0x10 * index:02X}:00.0"

    def nvmlDeviceGetPciInfo_v3(self, handle):
        spec, _ = self._gpu(handle)
        info = self.real.nvmlPciInfo_t()
        info.busId = info.busIdLegacy = self._bus_id(spec.index)
        info.bus = 0x18 + 0x10 * spec.index
        return info

    def nvmlDeviceGetPciInfo(self, handle):
        return self.nvmlDeviceGetPciInfo_v3(handle)

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return self._gpu(handle)[0].static["compute_capability"]

    def nvmlDeviceGetArchitecture(self, device):
        cc = self._gpu(device)[0].static["compute_capability"]
        arch = {(7, 0): "VOLTA", (7, 5): "TURING", (8, 0): "AMPERE", (8, 6): "AMPERE", (8, 9): "ADA",
                (9, 0): "HOPPER", (10, 0): "BLACKWELL"}.get(cc, "UNKNOWN")
        return getattr(self.real, "NVML_DEVICE_ARCH_" + arch)

    def nvmlDeviceGetPersistenceMode(self, handle):
        self._gpu(handle)
        return self.real.NVML_FEATURE_ENABLED

    def nvmlDeviceGetComputeMode(self, handle):
        self._gpu(handle)
        return self.real.NVML_COMPUTEMODE_DEFAULT

    # ---- MIG (see scenario.py, "MIG") -------------------------------------------------------------------------
    def _mig(self, handle):
        """The MigSpec of a MIG handle, None for a whole GPU's handle."""
        found = self.mig_index.get(self._address(handle))
        return found[1] if found else None

    def _not_on_mig(self, handle):
        if self._mig(handle):  # NVML answers these for the parent GPU only
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        return self._gpu(handle)[0]

    def nvmlDeviceGetMigMode(self, device):
        spec = self._not_on_mig(device)
        r = self.real
        return [r.NVML_DEVICE_MIG_ENABLE if spec.mig_mode else r.NVML_DEVICE_MIG_DISABLE,
                r.NVML_DEVICE_MIG_ENABLE if spec.static["mig_mode_pending"] else r.NVML_DEVICE_MIG_DISABLE]

    def nvmlDeviceIsMigDeviceHandle(self, device):
        self._gpu(device)
        return self._mig(device) is not None

    def nvmlDeviceGetMaxMigDeviceCount(self, device):
        spec = self._not_on_mig(device)
        return MAX_MIG_DEVICES if spec.mig_mode else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device, index):
        spec = self._not_on_mig(device)
        if not spec.mig_mode:
            self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)
        if not isinstance(index, int) or not 0 <= index < MAX_MIG_DEVICES:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(spec.mig):
            self.fail(self.real.NVML_ERROR_NOT_FOUND)
        return self.mig_handles[(spec.index, index)]

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, migDevice):
        mig = self._mig(migDevice)
        if mig is None:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        return self.handles[self._gpu(migDevice)[0].index]

    def nvmlDeviceGetGpuInstanceId(self, device):
        mig = self._mig(device)
        self._gpu(device)
        if mig is None:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        return mig.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, device):
        mig = self._mig(device)
        self._gpu(device)
        if mig is None:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        return mig.compute_instance_id

    def nvmlDeviceGetPerformanceState(self, handle):
        return int(self._value(handle, "pstate"))

    def nvmlDeviceGetPowerState(self, handle):
        return self.nvmlDeviceGetPerformanceState(handle)

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle):
        return self._gpu(handle)[0].static["pcie_generation"]

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle):
        return self._gpu(handle)[0].static["pcie_generation_max"]

    def nvmlDeviceGetGpuMaxPcieLinkGeneration(self, handle):
        return self._gpu(handle)[0].static["pcie_generation_max"]

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle):
        return self._gpu(handle)[0].static["pcie_width"]

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle):
        return self._gpu(handle)[0].static["pcie_width_max"]

    def nvmlDeviceGetNvLinkState(self, device, link):
        spec, _ = self._gpu(device)
        if not isinstance(link, int) or not 0 <= link < self.real.NVML_NVLINK_MAX_LINKS:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        if link >= spec.static["nvlink_links"]:
            self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)
        down = link in spec.static["nvlink_down"]
        return self.real.NVML_FEATURE_DISABLED if down else self.real.NVML_FEATURE_ENABLED

    def _violation_ns(self, spec, t, bits) -> int:
        """Nanoseconds since the scenario's start during which any of `bits` was an active clock event reason,
        on the wall clock (a scenario played N times faster accumulates scenario seconds N times faster)."""
        return int(sum(spec.reason_seconds(bit, 0.0, t) for bit in bits) * 1e9 / self.speed)

    def _counter_fields(self):
        """Field id -> clock event reason bits whose active time it counts (in ns, as the violation counters do)."""
        r, bits = self.real, CLOCK_EVENT_REASONS
        return {r.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP: [bits["sw_power_cap"]],
                r.NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST: [bits["sync_boost"]],
                r.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN: [bits["sw_thermal_slowdown"]],
                r.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: [bits["hw_thermal_slowdown"]],
                r.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN: [bits["hw_power_brake_slowdown"]]}

    def nvmlDeviceGetFieldValues(self, handle, fieldIds):
        """The recovery-action field and the clock-event-reason counters are simulated; every other field comes back
        NOT_SUPPORTED in its slot."""
        spec, t = self._gpu(handle)
        r = self.real
        counters = self._counter_fields()
        values = (r.c_nvmlFieldValue_t * len(fieldIds))()
        for i, field_id in enumerate(fieldIds):
            try:
                values[i].fieldId, values[i].scopeId = field_id
            except TypeError:
                values[i].fieldId = field_id
            values[i].timestamp = int(time.time() * 1e6)
            if values[i].fieldId == getattr(r, "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION", -1):
                values[i].valueType = r.NVML_VALUE_TYPE_UNSIGNED_INT
                values[i].value.uiVal = int(spec.value("recovery_action", t))
                values[i].nvmlReturn = r.NVML_SUCCESS
            elif values[i].fieldId in counters:
                values[i].valueType = r.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
                values[i].value.ullVal = self._violation_ns(spec, t, counters[values[i].fieldId])
                values[i].nvmlReturn = r.NVML_SUCCESS
            else:
                values[i].nvmlReturn = r.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetViolationStatus(self, device, perfPolicyType):
        spec, t = self._gpu(device)
        r, bits = self.real, CLOCK_EVENT_REASONS
        policies = {r.NVML_PERF_POLICY_POWER: [bits["sw_power_cap"]],
                    r.NVML_PERF_POLICY_THERMAL: [bits["sw_thermal_slowdown"], bits["hw_thermal_slowdown"]],
                    r.NVML_PERF_POLICY_SYNC_BOOST: [bits["sync_boost"]]}
        if perfPolicyType not in policies:
            self.fail(r.NVML_ERROR_NOT_SUPPORTED)
        violation = r.c_nvmlViolationTime_t()
        violation.referenceTime = int(time.time() * 1e6)
        violation.violationTime = self._violation_ns(spec, t, policies[perfPolicyType])
        return violation

    # ---- fabric (NVSwitch systems: Fabric Manager registers every GPU) ---------------------------------------
    def _fabric(self, device, info):
        spec = self._not_on_mig(device)
        target = getattr(info, "_obj", info)  # a structure, or byref(structure)
        target.state = FABRIC_STATES[spec.static["fabric_state"]]
        status = spec.static["fabric_status"]
        target.status = self.real.NVML_SUCCESS if status == "SUCCESS" else getattr(self.real, "NVML_ERROR_" + status)
        target.cliqueId = 0
        if hasattr(target, "healthMask"):
            target.healthMask = 0
        return target

    def nvmlDeviceGetGpuFabricInfo(self, device, gpuFabricInfo):
        self._fabric(device, gpuFabricInfo)
        return self.real.NVML_SUCCESS

    def nvmlDeviceGetGpuFabricInfoV(self, device, gpuFabricInfo):
        self._fabric(device, gpuFabricInfo)
        return self.real.NVML_SUCCESS

    # ---- NVLink error counters -------------------------------------------------------------------------------
    def nvmlDeviceGetNvLinkErrorCounter(self, device, link, counter):
        spec, t = self._gpu(device)
        r = self.real
        self.nvmlDeviceGetNvLinkState(device, link)  # a link that does not exist fails the same way
        if link != spec.static["nvlink_error_link"]:
            return 0
        names = {r.NVML_NVLINK_ERROR_DL_REPLAY: "nvlink_replay_errors",
                 r.NVML_NVLINK_ERROR_DL_RECOVERY: "nvlink_recovery_errors",
                 r.NVML_NVLINK_ERROR_DL_CRC_FLIT: "nvlink_crc_errors", r.NVML_NVLINK_ERROR_DL_CRC_DATA: None,
                 r.NVML_NVLINK_ERROR_DL_ECC_DATA: None}
        if counter not in names:
            self.fail(r.NVML_ERROR_INVALID_ARGUMENT)
        return int(spec.value(names[counter], t)) if names[counter] else 0

    def nvmlDeviceGetFanSpeed(self, handle):
        self._gpu(handle)  # the simulated boards are passively cooled, as SXM modules are: no fan to read
        self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)

    # ---- memory, utilization, temperature, power, clocks -----------------------------------------------------
    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        spec, t = self._gpu(handle)
        mig = self._mig(handle)
        total = (mig.memory_total_mib if mig else spec.static["memory_total_mib"]) * 2**20
        used = int(round(mig.memory_used.at(t) if mig else spec.value("memory_used_mib", t))) * 2**20
        reserved = 0 if mig else spec.static["memory_reserved_mib"] * 2**20
        if version:  # v2: `used` is what contexts allocated; driver and firmware reservations apart
            memory = self.real.c_nvmlMemory_v2_t()
            memory.version, memory.reserved = version, reserved
            memory.total, memory.used, memory.free = total, used, total - used - reserved
        else:  # v1: `used` counts the reservations too
            memory = self.real.c_nvmlMemory_t()
            memory.total, memory.used, memory.free = total, used + reserved, total - used - reserved
        return memory

    def nvmlDeviceGetUtilizationRates(self, handle):
        spec, t = self._gpu(handle)
        util = self.real.c_nvmlUtilization_t()
        util.gpu = int(round(spec.value("gpu_util_pct", t)))
        util.memory = int(round(spec.value("mem_util_pct", t)))
        return util

    def nvmlDeviceGetTemperature(self, handle, sensor):
        spec, t = self._gpu(handle)
        if sensor != self.real.NVML_TEMPERATURE_GPU:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        return int(round(spec.value("temperature_c", t)))

    def nvmlDeviceGetMarginTemperature(self, handle):
        """T.Limit: degrees C of headroom below the GPU's max operating temperature (negative past it)."""
        spec, t = self._gpu(handle)
        if tuple(spec.static["compute_capability"]) < (9, 0):
            self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)  # nvidia-smi shows absolute thresholds before Hopper
        return int(spec.static["temperature_max_operating_c"] - round(spec.value("temperature_c", t)))

    def nvmlDeviceGetTemperatureV(self, handle, sensor, version=None):
        return self.nvmlDeviceGetTemperature(handle, sensor)

    def nvmlDeviceGetTemperatureThreshold(self, handle, threshold):
        spec, _ = self._gpu(handle)
        r = self.real
        values = {r.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: spec.static["temperature_shutdown_c"],
                  r.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: spec.static["temperature_slowdown_c"],
                  r.NVML_TEMPERATURE_THRESHOLD_GPU_MAX: spec.static["temperature_max_operating_c"],
                  r.NVML_TEMPERATURE_THRESHOLD_MEM_MAX: spec.static["temperature_max_operating_c"]}
        if threshold not in values:
            self.fail(r.NVML_ERROR_NOT_SUPPORTED)
        return int(values[threshold])

    def nvmlDeviceGetPowerUsage(self, handle):
        return int(round(self._value(handle, "power_w") * 1000))  # milliwatts

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        spec, t = self._gpu(handle)
        return int(spec.timelines["power_w"].integral(0, t) * 1000)  # millijoules since the scenario's t=0

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return int(self._gpu(handle)[0].static["power_limit_w"] * 1000)

    def nvmlDeviceGetPowerManagementLimit(self, handle):
        """The limit the host requested (-pl); the enforced one is lower when another limiter caps the GPU."""
        return int(self._gpu(handle)[0].static["power_requested_limit_w"] * 1000)

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle):
        static = self._gpu(handle)[0].static
        return [int(static["power_min_limit_w"] * 1000), int(static["power_max_limit_w"] * 1000)]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle):
        return int(self._gpu(handle)[0].static["power_default_limit_w"] * 1000)

    def _clock(self, handle, type, current: bool):
        spec, t = self._gpu(handle)
        r = self.real
        if type in (r.NVML_CLOCK_SM, r.NVML_CLOCK_GRAPHICS):
            value = spec.value("sm_clock_mhz", t) if current else spec.static["sm_clock_max_mhz"]
        elif type == r.NVML_CLOCK_MEM:
            value = spec.value("mem_clock_mhz", t) if current else spec.static["mem_clock_max_mhz"]
        elif type == r.NVML_CLOCK_VIDEO:
            self.fail(r.NVML_ERROR_NOT_SUPPORTED)
        else:
            self.fail(r.NVML_ERROR_INVALID_ARGUMENT)
        return int(round(value))

    def nvmlDeviceGetClockInfo(self, handle, type):
        return self._clock(handle, type, current=True)

    def nvmlDeviceGetMaxClockInfo(self, handle, type):
        return self._clock(handle, type, current=False)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return int(self._value(handle, "clocks_event_reasons"))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return self.nvmlDeviceGetCurrentClocksEventReasons(handle)

    def nvmlDeviceGetSupportedClocksEventReasons(self, handle):
        self._gpu(handle)
        return functools.reduce(lambda a, b: a | b, CLOCK_EVENT_REASONS.values())

    def nvmlDeviceGetSupportedClocksThrottleReasons(self, handle):
        return self.nvmlDeviceGetSupportedClocksEventReasons(handle)

    # ---- ECC, row remapping, page retirement -----------------------------------------------------------------
    def nvmlDeviceGetEccMode(self, handle):
        on = self._gpu(handle)[0].static["ecc_enabled"]
        state = self.real.NVML_FEATURE_ENABLED if on else self.real.NVML_FEATURE_DISABLED
        return [state, state]

    def nvmlDeviceGetCurrentEccMode(self, handle):
        return self.nvmlDeviceGetEccMode(handle)[0]

    def nvmlDeviceGetPendingEccMode(self, handle):
        return self.nvmlDeviceGetEccMode(handle)[1]

    def nvmlDeviceGetTotalEccErrors(self, handle, errorType, counterType):
        """DRAM and SRAM errors together, as NVML totals them."""
        return (self._ecc(handle, errorType, counterType, "ecc")
                + self._ecc(handle, errorType, counterType, "sram"))

    def _ecc(self, handle, errorType, counterType, where):
        spec, t = self._gpu(handle)
        r = self.real
        if not spec.static["ecc_enabled"]:
            self.fail(r.NVML_ERROR_NOT_SUPPORTED)
        kind = {r.NVML_MEMORY_ERROR_TYPE_CORRECTED: "corrected", r.NVML_MEMORY_ERROR_TYPE_UNCORRECTED: "uncorrected"}
        scope = {r.NVML_VOLATILE_ECC: "volatile", r.NVML_AGGREGATE_ECC: "aggregate"}
        if errorType not in kind or counterType not in scope:
            self.fail(r.NVML_ERROR_INVALID_ARGUMENT)
        return int(spec.value(f"{where}_{kind[errorType]}_{scope[counterType]}", t))

    def nvmlDeviceGetMemoryErrorCounter(self, handle, errorType, counterType, locationType):
        r = self.real
        if locationType == r.NVML_MEMORY_LOCATION_DRAM:
            return self._ecc(handle, errorType, counterType, "ecc")
        if locationType == r.NVML_MEMORY_LOCATION_SRAM:
            return self._ecc(handle, errorType, counterType, "sram")
        self._ecc(handle, errorType, counterType, "ecc")  # same argument checks
        return 0  # the other locations (L1, L2, register file...) count nothing in the simulator

    def nvmlDeviceGetSramEccErrorStatus(self, device, status):
        """SRAM ECC counts and NVIDIA's SRAM threshold-exceeded flag (uncorrectable counts are all SEC-DED here)."""
        spec, t = self._gpu(device)
        if not spec.static["ecc_enabled"]:
            self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)
        target = getattr(status, "_obj", status)
        value = {name: int(spec.value(f"sram_{name}", t)) for name in
                 ("corrected_volatile", "corrected_aggregate", "uncorrected_volatile", "uncorrected_aggregate")}
        target.aggregateUncParity, target.volatileUncParity = 0, 0
        target.aggregateUncSecDed, target.volatileUncSecDed = value["uncorrected_aggregate"], value["uncorrected_volatile"]
        target.aggregateCor, target.volatileCor = value["corrected_aggregate"], value["corrected_volatile"]
        target.aggregateUncBucketL2, target.aggregateUncBucketSm = value["uncorrected_aggregate"], 0
        target.aggregateUncBucketPcie = target.aggregateUncBucketMcu = target.aggregateUncBucketOther = 0
        target.bThresholdExceeded = int(spec.value("sram_threshold_exceeded", t))
        return self.real.NVML_SUCCESS

    def nvmlDeviceGetRemappedRows(self, device):
        spec, t = self._gpu(device)
        return tuple(int(spec.value(k, t)) for k in ("remapped_rows_correctable", "remapped_rows_uncorrectable",
                                                      "row_remap_pending", "row_remap_failure"))

    # The simulated GPUs are Ampere or later, which remap rows instead of retiring pages.
    def nvmlDeviceGetRetiredPages(self, device, sourceFilter):
        self._gpu(device)
        self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetRetiredPages_v2(self, device, sourceFilter):
        return self.nvmlDeviceGetRetiredPages(device, sourceFilter)

    def nvmlDeviceGetRetiredPagesPendingStatus(self, device):
        return self.nvmlDeviceGetRetiredPages(device, 0)

    # ---- processes -------------------------------------------------------------------------------------------
    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        spec, t = self._gpu(handle)
        running = []
        for p in spec.processes:
            if p.start_s <= t < p.end_s:
                running.append(self.real.nvmlFriendlyObject({
                    "pid": p.pid, "usedGpuMemory": int(p.used_mib * 2**20),
                    "gpuInstanceId": NO_INSTANCE, "computeInstanceId": NO_INSTANCE}))
        return running

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle):
        return self.nvmlDeviceGetComputeRunningProcesses(handle)

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle):
        return self.nvmlDeviceGetComputeRunningProcesses(handle)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        self._gpu(handle)
        return []

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, handle):
        return self.nvmlDeviceGetGraphicsRunningProcesses(handle)

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, handle):
        return self.nvmlDeviceGetGraphicsRunningProcesses(handle)

    # ---- events (Xid) ----------------------------------------------------------------------------------------
    def nvmlEventSetCreate(self):
        self._initialized()
        pointer = self._pointer(self.real.c_nvmlEventSet_t)
        self.event_sets[self._address(pointer)] = EventSet()
        return pointer

    def _event_set(self, eventSet) -> EventSet:
        self._initialized()
        event_set = self.event_sets.get(self._address(eventSet))
        if event_set is None:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        return event_set

    def nvmlDeviceGetSupportedEventTypes(self, handle):
        self._gpu(handle)
        r = self.real
        return (r.nvmlEventTypeXidCriticalError | r.nvmlEventTypeSingleBitEccError
                | r.nvmlEventTypeDoubleBitEccError | r.nvmlEventTypePState | r.nvmlEventTypeClock)

    def nvmlDeviceRegisterEvents(self, handle, eventTypes, eventSet):
        with self.lock:
            spec, t = self._gpu(handle)
            event_set = self._event_set(eventSet)
            if eventTypes & ~self.nvmlDeviceGetSupportedEventTypes(handle):
                self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)
            if eventTypes & self.real.nvmlEventTypeXidCriticalError:
                event_set.cursors.setdefault(spec.index, (t, math.inf))  # only what happens from now on

    def nvmlEventSetWait_v2(self, eventSet, timeoutms):
        deadline = time.monotonic() + timeoutms / 1000
        while True:
            with self.lock:
                event_set = self._event_set(eventSet)
                now = self.now()
                first, upcoming = None, math.inf
                for index, (after, order) in event_set.cursors.items():
                    gpu = self.scenario.gpus[index]
                    for when, seq, code in gpu.xid_between(after - 1e-9, now):
                        if (when, seq) > (after, order) and (first is None or when < first[1]):
                            first = (index, when, seq, code)
                            break
                    upcoming = min(upcoming, self._next_xid(gpu, now))
                if first:
                    index, when, seq, code = first
                    event_set.cursors[index] = (when, seq)
                    data = self.real.c_nvmlEventData_t()
                    data.device = self.handles[index]
                    data.eventType = self.real.nvmlEventTypeXidCriticalError
                    data.eventData = code
                    data.gpuInstanceId = data.computeInstanceId = NO_INSTANCE
                    return data
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail(self.real.NVML_ERROR_TIMEOUT)
            time.sleep(max(0.001, min(remaining, (upcoming - now) / self.speed)))

    def nvmlEventSetWait(self, eventSet, timeoutms):
        return self.nvmlEventSetWait_v2(eventSet, timeoutms)

    @staticmethod
    def _next_xid(gpu, now):
        period = gpu.static["xid_repeat_s"]
        horizon = period if period else (gpu.xid[-1][0] - now if gpu.xid else 0)
        upcoming = gpu.xid_between(now, now + max(horizon, 0) + 1e-6)
        return upcoming[0][0] if upcoming else math.inf

    def nvmlEventSetFree(self, eventSet):
        with self.lock:
            self._event_set(eventSet)
            del self.event_sets[self._address(eventSet)]

    # ---- GPM (Hopper and later) ------------------------------------------------------------------------------
    GPM_METRICS = {
        "NVML_GPM_METRIC_GRAPHICS_UTIL": "gpm_graphics_util_pct",
        "NVML_GPM_METRIC_SM_UTIL": "gpm_sm_util_pct",
        "NVML_GPM_METRIC_SM_OCCUPANCY": "gpm_sm_occupancy_pct",
        "NVML_GPM_METRIC_ANY_TENSOR_UTIL": "gpm_tensor_util_pct",
        "NVML_GPM_METRIC_DRAM_BW_UTIL": "gpm_dram_bw_util_pct",
    }

    def nvmlGpmQueryDeviceSupport(self, device):
        spec, _ = self._gpu(device)
        support = self.real.c_nvmlGpmSupport_t()
        support.version = self.real.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = int(spec.static["gpm_supported"])
        return support

    def nvmlGpmQueryIfStreamingEnabled(self, device):
        self._gpu(device)
        return 0

    def nvmlGpmSampleAlloc(self):
        self._initialized()
        pointer = self._pointer(self.real.c_nvmlGpmSample_t)
        self.samples[self._address(pointer)] = None
        return pointer

    def nvmlGpmSampleFree(self, gpmSample):
        self._initialized()
        if self.samples.pop(self._address(gpmSample), False) is False:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlGpmSampleGet(self, device, gpmSample):
        spec, t = self._gpu(device)
        if not spec.static["gpm_supported"]:
            self.fail(self.real.NVML_ERROR_NOT_SUPPORTED)
        address = self._address(gpmSample)
        if address not in self.samples:
            self.fail(self.real.NVML_ERROR_INVALID_ARGUMENT)
        self.samples[address] = (spec.index, t)
        return gpmSample

    def nvmlGpmMetricsGet(self, metricsGet):
        self._initialized()
        r = self.real
        if metricsGet.version != r.NVML_GPM_METRICS_GET_VERSION:
            self.fail(r.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        first = self.samples.get(self._address(metricsGet.sample1))
        second = self.samples.get(self._address(metricsGet.sample2))
        if not first or not second or first[0] != second[0]:
            self.fail(r.NVML_ERROR_INVALID_ARGUMENT)
        spec = self.scenario.gpus[first[0]]
        if spec.lost(self.now()):
            self.fail(r.NVML_ERROR_GPU_IS_LOST)
        known = {getattr(r, k): v for k, v in self.GPM_METRICS.items()}
        t1, t2 = sorted((first[1], second[1]))
        for i in range(metricsGet.numMetrics):
            metric = metricsGet.metrics[i]
            timeline = known.get(metric.metricId)
            if timeline is None:
                metric.nvmlReturn, metric.value = r.NVML_ERROR_NOT_SUPPORTED, 0.0
            else:
                metric.nvmlReturn, metric.value = r.NVML_SUCCESS, spec.timelines[timeline].mean(t1, t2)
        return metricsGet


def bind(method, real_function):
    """A plain function calling `method`, with the real function's name, docstring and signature."""

    def simulated(*args, **kwargs):
        return method(*args, **kwargs)

    return functools.update_wrapper(simulated, real_function)


def build(scenario: Scenario, speed: float, at: float) -> types.ModuleType:
    """A fresh `pynvml` module object playing `scenario`."""
    real = real_pynvml()
    sim = Simulator(scenario, speed, at)
    module = types.ModuleType("pynvml", f"Simulated NVML (handbook gpusim), scenario {scenario.name!r}. "
                                        "Device names end in '(simulated)'; no real GPU is read.")
    for name, value in vars(real).items():
        if not name.startswith("__"):
            module.__dict__[name] = value
    for name, value in vars(real).items():
        reaches_driver = name.startswith(("nvml", "_nvml", "c_nvmlSystem")) or name == "_LoadNvmlLibrary"
        if isinstance(value, types.FunctionType) and reaches_driver and name not in PURE_HELPERS:
            own = getattr(Simulator, name, None)
            if own is not None and inspect.isfunction(own):
                module.__dict__[name] = bind(getattr(sim, name), value)
            else:
                module.__dict__[name] = sim.unsimulated(name, value)
    module.nvmlLib = None
    module.__file__ = __file__
    module.__gpusim__ = sim
    return module
