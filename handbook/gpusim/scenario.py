"""Scenario files: what the simulated GPUs report, as functions of simulated time.

A scenario is a TOML file in handbook/gpusim/scenarios/ (or any path ending in .toml):

    description = "one line, shown by `python -m handbook.gpusim list`"

    [system]
    driver_version = "580.159.04"
    cuda_driver_version = 13000      # what nvmlSystemGetCudaDriverVersion returns (1000*major + 10*minor)
    init_error = "LIBRARY_NOT_FOUND" # optional: nvmlInit raises NVMLError for NVML_ERROR_<this>

    [gpu_defaults]                   # merged under every [[gpus]] table
    model = "NVIDIA H100 80GB HBM3"  # the device name gets " (simulated)" appended, always
    ...

    [[gpus]]                         # one table per GPU; `copies = N` repeats it N times
    temperature_c = [[0, 45], [120, 91]]   # keyframes [seconds, value]: linear in between, flat after

A value is a constant or a list of [seconds, value] keyframes. Continuous quantities (temperatures, clocks,
utilizations, power, memory) interpolate linearly; counters, flags and clock event reasons hold their last
keyframe (a step). `xid = [[seconds, code], ...]` lists Xid events; `processes` lists compute processes;
`resets = [seconds, ...]` lists GPU resets an operator made (the kernel log gets the runbooks' reset marker).
Faults the troubleshooting runbooks need: `wedged_at_s` (NVML calls on the GPU block for `wedge_s`, then fail),
`fabric_state` (NVSwitch fabric registration), the SRAM ECC counters and threshold flag, the requested vs
enforced power limit, MIG mode pending vs current, and `[system] dmesg_restricted` (a non-root reader with
kernel.dmesg_restrict=1: the dmesg stand-in refuses, as the real one does).
A GPU may run in MIG mode with declared instances (`mig_mode = true` and `[[gpus.mig]]` tables with a profile
such as "1g.18gb"): see "MIG" below and scenarios/mig-*.toml.
A value may also be `{recording = "section/page/NN_name", key = "file.json/key"}`: a figure recorded on a real
GPU, read at load time (from_recordings.py).
Every mistake is reported as one line naming the file and what to fix.
"""
import bisect
import math
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from handbook.gpusim import from_recordings, real

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

# Bits of nvmlDeviceGetCurrentClocksEventReasons (nvml.h nvmlClocksEventReason*), by the names scenarios use.
CLOCK_EVENT_REASONS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}

# name -> (kind, lower bound, upper bound); kind "linear" or "step" timelines, or a static type.
TIMELINES = {
    "gpu_util_pct": ("linear", 0, 100),
    "mem_util_pct": ("linear", 0, 100),
    "memory_used_mib": ("linear", 0, None),
    "temperature_c": ("linear", -40, 150),
    "power_w": ("linear", 0, None),
    "sm_clock_mhz": ("linear", 0, None),
    "mem_clock_mhz": ("linear", 0, None),
    "gpm_sm_util_pct": ("linear", 0, 100),
    "gpm_sm_occupancy_pct": ("linear", 0, 100),
    "gpm_tensor_util_pct": ("linear", 0, 100),
    "gpm_dram_bw_util_pct": ("linear", 0, 100),
    "gpm_graphics_util_pct": ("linear", 0, 100),
    "clocks_event_reasons": ("step", 0, None),
    "ecc_corrected_volatile": ("step", 0, None),
    "ecc_corrected_aggregate": ("step", 0, None),
    "ecc_uncorrected_volatile": ("step", 0, None),
    "ecc_uncorrected_aggregate": ("step", 0, None),
    "remapped_rows_correctable": ("step", 0, None),
    "remapped_rows_uncorrectable": ("step", 0, None),
    "row_remap_pending": ("step", 0, 1),
    "row_remap_failure": ("step", 0, 1),
    "pstate": ("step", 0, 15),
    "recovery_action": ("step", 0, 7),  # NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: nvmlGpuRecoveryAction_t
    # SRAM ECC (nvmlDeviceGetSramEccErrorStatus): uncorrectable counts are SEC-DED, the flag is bThresholdExceeded
    "sram_corrected_volatile": ("step", 0, None),
    "sram_corrected_aggregate": ("step", 0, None),
    "sram_uncorrected_volatile": ("step", 0, None),
    "sram_uncorrected_aggregate": ("step", 0, None),
    "sram_threshold_exceeded": ("step", 0, 1),
    "memory_temperature_c": ("linear", -40, 150),  # HBM temperature; defaults to temperature_c's timeline
    # NVLink error counters of link nvlink_error_link (nvmlDeviceGetNvLinkErrorCounter): counters that climb
    "nvlink_crc_errors": ("linear", 0, None),
    "nvlink_replay_errors": ("linear", 0, None),
    "nvlink_recovery_errors": ("linear", 0, None),
}
STATIC = {  # name -> (python type(s), default); None default = required (except mig_mode_pending)
    "model": (str, None),
    "memory_total_mib": (int, None),
    "compute_capability": (list, [9, 0]),
    "power_limit_w": ((int, float), None),
    "sm_clock_max_mhz": ((int, float), None),
    "mem_clock_max_mhz": ((int, float), None),
    "temperature_slowdown_c": ((int, float), None),
    "temperature_shutdown_c": ((int, float), None),
    "ecc_enabled": (bool, True),
    "gpm_supported": (bool, True),
    "lost_at_s": ((int, float), -1),
    "xid_repeat_s": ((int, float), 0),
    "pcie_generation": (int, 5),
    "pcie_width": (int, 16),
    "nvlink_links": (int, 0),
    "pcie_generation_max": (int, -1),  # -1: the same as pcie_generation (a link trained at its best)
    "pcie_width_max": (int, -1),       # -1: the same as pcie_width
    "nvlink_down": (list, []),         # link indices nvmlDeviceGetNvLinkState reports disabled
    "nvlink_error_link": (int, 0),     # the link the nvlink_*_errors counters belong to
    "power_default_limit_w": ((int, float), -1),  # -1: the same as power_limit_w (nobody lowered it)
    # power_limit_w is the limit in force (nvmlDeviceGetEnforcedPowerLimit, "Current Power Limit"); the requested one
    # (nvmlDeviceGetPowerManagementLimit, "Requested Power Limit", what -pl set) is higher when another limiter, such
    # as an out-of-band cap from the BMC, holds the GPU below what the host asked for.
    "power_requested_limit_w": ((int, float), -1),  # -1: the same as power_limit_w
    "power_min_limit_w": ((int, float), -1),        # -1: 2/7 of the default limit (200 W of 700 W)
    "power_max_limit_w": ((int, float), -1),        # -1: the default limit
    "temperature_max_operating_c": ((int, float), -1),  # -1: 2 C below temperature_slowdown_c (T.Limit reference)
    "memory_reserved_mib": (int, 0),   # reserved by driver and firmware: in v1 "used", apart in nvmlMemory_v2
    "wedged_at_s": ((int, float), -1),  # from then on every NVML call on this GPU blocks wedge_s, then fails
    "wedge_s": ((int, float), 30),
    "fabric_state": (str, "not_supported"),  # no NVSwitch fabric; "completed" for an HGX board
    "fabric_status": (str, "SUCCESS"),  # an NVML_ERROR_* name, or SUCCESS
    "mig_mode_pending": (bool, None),   # None: the same as mig_mode (no change waits for a reset)
}
FABRIC_STATES = {"not_supported": 0, "not_started": 1, "in_progress": 2, "completed": 3}
LISTS = {"xid", "processes", "resets"}
GPU_KEYS = set(TIMELINES) | set(STATIC) | LISTS | {"copies"} | {"mig_mode", "mig"}

# ---- MIG ------------------------------------------------------------------------------------------------
# A GPU table may turn MIG mode on and declare its MIG instances (GPU instance + one compute instance each):
#
#     [[gpus]]
#     model = "NVIDIA H200"
#     memory_total_mib = 143771
#     mig_mode = true                 # nvmlDeviceGetMigMode -> [ENABLE, ENABLE]; without instances CUDA sees none
#     [[gpus.mig]]                    # one table per instance, in slot order (nvmlDeviceGetMigDeviceHandleByIndex)
#     profile = "3g.71gb"             # a profile name of MIG_PROFILES below
#     [[gpus.mig]]
#     profile = "1g.18gb"
#     memory_used_mib = 2048          # optional, a constant or [[seconds, MiB], ...] keyframes like memory_used_mib
#     memory_total_mib = 16384        # optional: the instance's own memory (default: its 1/8 slices of the card)
#
# Every instance gets a UUID "MIG-<uuid>", GPU instance id and compute instance id (nvmlDeviceGetGpuInstanceId,
# nvmlDeviceGetComputeInstanceId), and its own memory (nvmlDeviceGetMemoryInfo on the MIG handle); the parent
# answers nvmlDeviceGetMaxMigDeviceCount = 7. See handbook/gpusim/scenarios/mig-*.toml.
# Profiles: "Ng.XXgb" = N compute slices of 7 and a share of the 8 memory slices; names as in NVIDIA's MIG user
# guide, "Supported MIG Profiles" (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html):
# H200 141GB, H100 80GB and A100 80GB. profile -> (compute slices of 7, memory slices of 8).
MIG_PROFILES = {
    "1g.18gb": (1, 1), "1g.35gb": (1, 2), "2g.35gb": (2, 2), "3g.71gb": (3, 4), "4g.71gb": (4, 4), "7g.141gb": (7, 8),
    "1g.10gb": (1, 1), "1g.20gb": (1, 2), "2g.20gb": (2, 2), "3g.40gb": (3, 4), "4g.40gb": (4, 4), "7g.80gb": (7, 8),
}
MIG_KEYS = {"profile", "memory_total_mib", "memory_used_mib"}
MAX_MIG_DEVICES = 7


@dataclass(frozen=True)
class MigSpec:
    """One MIG instance of a simulated GPU."""

    slot: int
    profile: str
    memory_total_mib: int
    memory_used: "Timeline"
    gpu_instance_id: int
    compute_instance_id: int
    uuid: str


def mig_specs(raw: dict, scenario: str, gpu_index: int, label: str, fail) -> tuple:
    mode, tables = raw.get("mig_mode", False), raw.get("mig", [])
    if not isinstance(mode, bool):
        fail(f"{label}: mig_mode must be true or false")
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        fail(f"{label}: declare MIG instances as [[gpus.mig]] tables with profile = \"1g.18gb\" (see scenario.py)")
    if tables and not mode:
        fail(f"{label}: [[gpus.mig]] instances need mig_mode = true on the GPU")
    if len(tables) > MAX_MIG_DEVICES:
        fail(f"{label}: at most {MAX_MIG_DEVICES} MIG instances per GPU")
    specs, compute, memory = [], 0, 0
    for slot, table in enumerate(tables):
        where = f"{label} mig #{slot + 1}"
        unknown = set(table) - MIG_KEYS
        if unknown:
            fail(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(MIG_KEYS))})")
        profile = table.get("profile")
        if profile not in MIG_PROFILES:
            fail(f"{where}: profile {profile!r} is not a MIG profile (known: {', '.join(MIG_PROFILES)})")
        slices, mem_slices = MIG_PROFILES[profile]
        compute, memory = compute + slices, memory + mem_slices
        if compute > 7 or memory > 8:
            fail(f"{where}: the instances need more than the GPU's 7 compute / 8 memory slices")
        total = table.get("memory_total_mib", raw["memory_total_mib"] * mem_slices // 8)
        if isinstance(total, bool) or not isinstance(total, int) or not 0 < total <= raw["memory_total_mib"]:
            fail(f"{where}: memory_total_mib must be a whole number of MiB within the GPU's memory_total_mib")
        used = timeline(table.get("memory_used_mib", 0), False, 0, total, f"{where}: memory_used_mib", fail)
        name = f"handbook-gpusim/{scenario}/{gpu_index}/mig/{slot}"
        specs.append(MigSpec(slot, profile, total, used, gpu_instance_id=slot + 1, compute_instance_id=0,
                             uuid="MIG-" + str(uuid.uuid5(uuid.NAMESPACE_URL, name))))
    return tuple(specs)
TIMELINE_DEFAULTS = {name: 0 for name in TIMELINES}
SYSTEM_KEYS = {"driver_version": str, "cuda_driver_version": int, "init_error": str, "dmesg_restricted": bool}
PROCESS_KEYS = {"pid": int, "name": str, "used_mib": (int, float), "start_s": (int, float), "end_s": (int, float),
                "alive": bool}  # alive = false: the driver still lists the PID, the OS has no such process


class ScenarioError(ValueError):
    """A scenario that cannot be played; str() is one line: `file: what to fix`."""


def shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Timeline:
    """Keyframes (seconds, value); `step` holds each value until the next keyframe, else linear in between."""

    times: tuple
    values: tuple
    step: bool

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return self.values[0]
        if i == len(self.times) or self.step:
            return self.values[i - 1]
        t0, t1, v0, v1 = self.times[i - 1], self.times[i], self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def integral(self, a: float, b: float) -> float:
        """The exact integral of the (piecewise linear or step) curve from a to b."""
        if b <= a:
            return 0.0
        cuts = [a] + [t for t in self.times if a < t < b] + [b]
        total = 0.0
        for lo, hi in zip(cuts, cuts[1:]):
            if self.step:
                total += self.at(lo) * (hi - lo)
            else:  # linear on [lo, hi]: trapezoid is exact
                total += (self.at(lo) + self.at(hi)) / 2 * (hi - lo)
        return total

    def mean(self, a: float, b: float) -> float:
        return self.integral(a, b) / (b - a) if b > a else self.at(b)


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    used_mib: float
    start_s: float = 0.0
    end_s: float = math.inf
    alive: bool = True


@dataclass(frozen=True)
class GpuSpec:
    index: int
    static: dict
    timelines: dict  # name -> Timeline
    xid: tuple  # ((seconds, code), ...) sorted
    processes: tuple
    uuid: str
    mig: tuple = ()  # MigSpec of each MIG instance (see MIG above)
    mig_mode: bool = False
    resets: tuple = ()  # seconds at which an operator reset the GPU (sorted)

    def value(self, name: str, t: float) -> float:
        return self.timelines[name].at(t)

    def lost(self, t: float) -> bool:
        return self.static["lost_at_s"] >= 0 and t >= self.static["lost_at_s"]

    def wedged(self, t: float) -> bool:
        return self.static["wedged_at_s"] >= 0 and t >= self.static["wedged_at_s"]

    def reason_seconds(self, bit: int, a: float, b: float) -> float:
        """Seconds within [a, b] during which clock event reason `bit` was active (the violation counters)."""
        line = self.timelines["clocks_event_reasons"]
        cuts = [a] + [t for t in line.times if a < t < b] + [b]
        return sum(hi - lo for lo, hi in zip(cuts, cuts[1:]) if int(line.at(lo)) & bit)

    def xid_between(self, a: float, b: float) -> list:
        """Xid events with a < time <= b, as (time, order, code), repeating every xid_repeat_s if set."""
        if not self.xid or b <= a:
            return []
        period = self.static["xid_repeat_s"]
        if not period:
            return [(t, i, code) for i, (t, code) in enumerate(self.xid) if a < t <= b]
        events = []
        for k in range(max(0, math.floor(a / period) - 1), math.floor(b / period) + 1):
            for i, (t, code) in enumerate(self.xid):
                when = k * period + t
                if a < when <= b:
                    events.append((when, k * len(self.xid) + i, code))
        return sorted(events)


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str
    driver_version: str
    cuda_driver_version: int
    init_error: str | None
    gpus: tuple = field(default_factory=tuple)
    dmesg_restricted: bool = False


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml"))}


def find(name: str) -> Path:
    """A scenario's file, from its name (a file in scenarios/) or a path to a .toml file."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ScenarioError(f"{name}: no such scenario file")
        return path
    files = available()
    if name not in files:
        raise ScenarioError(
            f"unknown GPU scenario {name!r}: use one of {', '.join(files)} "
            f"(the .toml files in {shown(SCENARIO_DIR)}/) or a path to a .toml file"
        )
    return files[name]


def load(name: str) -> Scenario:
    path = find(name)
    where = shown(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{where}: not valid TOML: {err}") from None
    try:  # values written {recording = ..., key = ...} come from a real GPU's recording (from_recordings.py)
        data = from_recordings.resolve(data, where)
    except from_recordings.RecordedValueError as err:
        raise ScenarioError(str(err)) from None
    return parse(data, path, where)


def parse(data: dict, path: Path, where: str) -> Scenario:
    def fail(message):
        raise ScenarioError(f"{where}: {message}")

    unknown = set(data) - {"description", "system", "gpu_defaults", "gpus"}
    if unknown:
        fail(f"unknown top-level key(s) {', '.join(sorted(unknown))} (known: description, [system], [gpu_defaults], [[gpus]])")
    if not isinstance(data.get("description"), str) or not data["description"].strip():
        fail('add a one-line `description = "..."` at the top')
    system = data.get("system", {})
    for key, value in system.items():
        if key not in SYSTEM_KEYS:
            fail(f"unknown key {key!r} in [system] (known: {', '.join(SYSTEM_KEYS)})")
        if not isinstance(value, SYSTEM_KEYS[key]):
            fail(f"[system] {key} must be a {SYSTEM_KEYS[key].__name__}")
    init_error = system.get("init_error")
    if init_error is not None:
        if not hasattr(real.real_pynvml(), "NVML_ERROR_" + init_error):  # the real module's error codes
            fail(f"[system] init_error {init_error!r} is not an NVML_ERROR_* name (e.g. LIBRARY_NOT_FOUND, "
                 "DRIVER_NOT_LOADED, LIB_RM_VERSION_MISMATCH)")
    defaults = data.get("gpu_defaults", {})
    tables = data.get("gpus", [])
    if not isinstance(tables, list):
        fail("write GPUs as [[gpus]] tables (an array of tables)")
    if init_error is None and not tables:
        fail("add at least one [[gpus]] table (or [system] init_error for a machine where NVML fails)")
    gpus = []
    for number, table in enumerate(tables, 1):
        merged = {**defaults, **table}
        label = f"[[gpus]] #{number}"
        for key in merged:
            if key not in GPU_KEYS:
                fail(f"unknown key {key!r} in {label} or [gpu_defaults] (known: {', '.join(sorted(GPU_KEYS))})")
        copies = merged.pop("copies", 1)
        if not isinstance(copies, int) or copies < 1:
            fail(f"{label}: copies must be a whole number >= 1")
        for _ in range(copies):
            gpus.append(gpu_spec(len(gpus), merged, path.stem, label, fail))
    return Scenario(
        name=path.stem,
        path=path,
        description=data["description"].strip(),
        driver_version=system.get("driver_version", "580.159.04"),
        cuda_driver_version=system.get("cuda_driver_version", 13000),
        init_error=init_error,
        gpus=tuple(gpus),
        dmesg_restricted=system.get("dmesg_restricted", False),
    )


def gpu_spec(index: int, raw: dict, scenario: str, label: str, fail) -> GpuSpec:
    static = {}
    for key, (types, default) in STATIC.items():
        value = raw.get(key, default)
        if value is None and key == "mig_mode_pending":
            value = bool(raw.get("mig_mode", False))
        if value is None:
            fail(f"{label}: {key} is required (set it in [gpu_defaults] or the table)")
        if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
            fail(f"{label}: {key} = {value!r} has the wrong type")
        static[key] = value
    cc = static["compute_capability"]
    if len(cc) != 2 or not all(isinstance(x, int) for x in cc):
        fail(f"{label}: compute_capability must be [major, minor], e.g. [9, 0]")
    static["compute_capability"] = tuple(cc)
    for key, base in (("pcie_generation_max", "pcie_generation"), ("pcie_width_max", "pcie_width"),
                      ("power_default_limit_w", "power_limit_w"), ("power_requested_limit_w", "power_limit_w"),
                      ("power_max_limit_w", "power_default_limit_w")):
        if static[key] == -1:
            static[key] = static[base]
    if static["power_min_limit_w"] == -1:
        static["power_min_limit_w"] = round(static["power_default_limit_w"] * 2 / 7 / 5) * 5
    if static["temperature_max_operating_c"] == -1:
        static["temperature_max_operating_c"] = static["temperature_slowdown_c"] - 2
    if static["fabric_state"] not in FABRIC_STATES:
        fail(f"{label}: fabric_state {static['fabric_state']!r} is not one of {', '.join(FABRIC_STATES)}")
    if static["fabric_status"] != "SUCCESS":
        if not hasattr(real.real_pynvml(), "NVML_ERROR_" + static["fabric_status"]):
            fail(f"{label}: fabric_status {static['fabric_status']!r} is SUCCESS or an NVML_ERROR_* name")
    if not all(isinstance(n, int) and 0 <= n < static["nvlink_links"] for n in static["nvlink_down"]):
        fail(f"{label}: nvlink_down lists link indices below nvlink_links ({static['nvlink_links']}), e.g. [3]")
    timelines = {}
    for key, (kind, low, high) in TIMELINES.items():
        default = raw.get("temperature_c", 0) if key == "memory_temperature_c" else TIMELINE_DEFAULTS[key]
        timelines[key] = timeline(raw.get(key, default), kind == "step", low, high,
                                  f"{label}: {key}", fail, reasons=key == "clocks_event_reasons")
    for t, used in zip(timelines["memory_used_mib"].times, timelines["memory_used_mib"].values):
        if used > static["memory_total_mib"]:
            fail(f"{label}: memory_used_mib {used} at {t}s exceeds memory_total_mib {static['memory_total_mib']}")
    xid = raw.get("xid", [])
    if not isinstance(xid, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], (int, float)) and e[0] >= 0
        and isinstance(e[1], int) and e[1] > 0 for e in xid
    ):
        fail(f"{label}: xid must be a list of [seconds, code] pairs, e.g. [[20, 79]]")
    resets = raw.get("resets", [])
    if not isinstance(resets, list) or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0
                                               for r in resets):
        fail(f"{label}: resets must be a list of seconds > 0 at which the GPU was reset, e.g. [60]")
    processes = []
    for p in raw.get("processes", []):
        if not isinstance(p, dict) or set(p) - set(PROCESS_KEYS) or not {"pid", "used_mib"} <= set(p):
            fail(f"{label}: each process is {{pid = N, used_mib = M, name = \"...\", start_s = S, end_s = E}} "
                 "(pid and used_mib required)")
        for key, value in p.items():
            if not isinstance(value, PROCESS_KEYS[key]):
                fail(f"{label}: process {key} = {value!r} has the wrong type")
        processes.append(Process(p["pid"], p.get("name", f"process-{p['pid']}"), p["used_mib"],
                                 p.get("start_s", 0.0), p.get("end_s", math.inf), p.get("alive", True)))
    return GpuSpec(
        index=index,
        static=static,
        timelines=timelines,
        xid=tuple(sorted((float(t), code) for t, code in xid)),
        processes=tuple(processes),
        uuid="GPU-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"handbook-gpusim/{scenario}/{index}")),
        mig=mig_specs({**raw, "memory_total_mib": static["memory_total_mib"]}, scenario, index, label, fail),
        mig_mode=bool(raw.get("mig_mode", False)),
        resets=tuple(sorted(float(r) for r in resets)),
    )


def timeline(raw, step: bool, low, high, label: str, fail, reasons: bool = False) -> Timeline:
    def value_of(v):
        if reasons and isinstance(v, list):
            unknown = [name for name in v if name not in CLOCK_EVENT_REASONS]
            if unknown:
                fail(f"{label}: unknown clock event reason(s) {unknown} (known: {', '.join(CLOCK_EVENT_REASONS)})")
            mask = 0
            for name in v:
                mask |= CLOCK_EVENT_REASONS[name]
            return mask
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            fail(f"{label}: {v!r} is not a number")
        if (low is not None and v < low) or (high is not None and v > high):
            fail(f"{label}: {v} is outside {low}..{'' if high is None else high}")
        return v

    if isinstance(raw, list) and raw and all(isinstance(k, list) for k in raw):
        times, values = [], []
        for key in raw:
            if len(key) != 2 or isinstance(key[0], bool) or not isinstance(key[0], (int, float)) or key[0] < 0:
                fail(f"{label}: keyframes are [seconds, value] pairs with seconds >= 0, got {key!r}")
            if times and key[0] <= times[-1]:
                fail(f"{label}: keyframe times must increase, got {key[0]} after {times[-1]}")
            times.append(float(key[0]))
            values.append(value_of(key[1]))
        return Timeline(tuple(times), tuple(values), step)
    if isinstance(raw, list) and not (reasons and all(isinstance(x, str) for x in raw)):
        fail(f"{label}: write a constant or keyframes [[seconds, value], ...]")
    return Timeline((0.0,), (value_of(raw),), step)
