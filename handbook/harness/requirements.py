"""Hardware requirements written in a fence, e.g. ``requires="gpu mem>=40GiB cc>=9.0"``, and this machine's.

Grammar: space-separated terms, each one of
  gpu            at least one NVIDIA GPU that CUDA will see (NVML's GPUs, narrowed by CUDA_VISIBLE_DEVICES)
  gpus>=N        at least N GPUs
  mem>=SIZE      every GPU has at least SIZE of memory (units GiB, GB, MiB, MB); a MIG instance counts its own slice
  cc>=MAJOR.MINOR  compute capability of every GPU at least this (9.0 = Hopper)
Every term except gpu implies gpu.
"""
import functools
import os
import re
from dataclasses import dataclass

UNITS = {"GiB": 2**30, "GB": 10**9, "MiB": 2**20, "MB": 10**6}
TERM = re.compile(
    r"^(?:(?P<gpu>gpu)|gpus>=(?P<gpus>[1-9]\d*)|mem>=(?P<mem>\d+(?:\.\d+)?)(?P<unit>GiB|GB|MiB|MB)"
    r"|cc>=(?P<cc>\d+\.\d+))$"
)


class RequirementError(ValueError):
    """A requirement string that does not follow the grammar above."""


@dataclass(frozen=True)
class Requirements:
    text: str
    gpus: int = 0
    mem_bytes: int = 0
    cc: tuple[int, int] = (0, 0)


def parse(text: str) -> Requirements:
    terms = text.split()
    if not terms:
        raise RequirementError('requires="" is empty: write e.g. requires="gpu" or drop the option')
    gpus, mem, cc = 1, 0, (0, 0)
    for term in terms:
        m = TERM.match(term)
        if not m:
            raise RequirementError(
                f"malformed requirement {term!r}: use gpu, gpus>=N, mem>=40GiB or cc>=9.0"
            )
        if m["gpus"]:
            gpus = max(gpus, int(m["gpus"]))
        elif m["mem"]:
            mem = max(mem, int(float(m["mem"]) * UNITS[m["unit"]]))
        elif m["cc"]:
            major, minor = m["cc"].split(".")
            cc = max(cc, (int(major), int(minor)))
    return Requirements(text=" ".join(terms), gpus=gpus, mem_bytes=mem, cc=cc)


@dataclass(frozen=True)
class Device:
    """One GPU as CUDA will see it: a whole GPU, or a MIG instance with its own slice of memory."""

    uuid: str  # what CUDA_VISIBLE_DEVICES takes to pin exactly this device ("GPU-..." or "MIG-...")
    name: str
    mem_bytes: int
    cc: tuple[int, int]
    parent_uuid: str = ""  # the physical GPU of a MIG instance (what a per-GPU lock is keyed on)


@dataclass(frozen=True)
class Hardware:
    """What this machine offers a CUDA program (after CUDA_VISIBLE_DEVICES); `why_none` says why no GPU was found."""

    gpus: int = 0
    min_mem_bytes: int = 0
    min_cc: tuple[int, int] = (0, 0)
    why_none: str = ""
    devices: tuple[Device, ...] = ()


def unmet(req: Requirements, hw: Hardware) -> str | None:
    """The reason `hw` cannot run a block needing `req`, or None when it can."""
    if hw.gpus < req.gpus:
        have = f"{hw.gpus} GPU(s)" if hw.gpus else f"no GPU ({hw.why_none})"
        return f"requires {req.text} (this machine: {have})"
    if hw.min_mem_bytes < req.mem_bytes:
        return f"requires {req.text} (smallest GPU has {hw.min_mem_bytes / 2**30:.1f} GiB)"
    if hw.min_cc < req.cc:
        return f"requires {req.text} (compute capability {hw.min_cc[0]}.{hw.min_cc[1]})"
    return None


def detect() -> Hardware:
    """Ask NVML, the same library the pages teach, without creating a CUDA context; honours CUDA_VISIBLE_DEVICES."""
    return _detect(os.environ.get(VISIBLE))


VISIBLE = "CUDA_VISIBLE_DEVICES"


@functools.cache
def _detect(visible: str | None) -> Hardware:
    try:
        import pynvml
    except ImportError:
        return Hardware(why_none="nvidia-ml-py is not installed")
    if visible is not None and not visible.strip():
        return Hardware(why_none=f'{VISIBLE}="" hides every GPU')
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return Hardware(why_none=f"NVML: {err}")
    try:
        gpus = [physical_gpu(pynvml, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
        if not gpus:
            return Hardware(why_none="NVML sees no device")
        devices = visible_devices(gpus, visible)
        if not devices:
            return Hardware(why_none=f"{VISIBLE}={visible!r} names none of the {len(gpus)} GPU(s) NVML sees")
        return Hardware(gpus=len(devices), min_mem_bytes=min(d.mem_bytes for d in devices),
                        min_cc=min(d.cc for d in devices), devices=tuple(devices))
    except pynvml.NVMLError as err:
        return Hardware(why_none=f"NVML: {err}")
    finally:
        pynvml.nvmlShutdown()


@dataclass(frozen=True)
class PhysicalGpu:
    whole: Device
    mig: tuple[Device, ...]  # its MIG instances when MIG mode is on (possibly none yet), else ()
    mig_enabled: bool


def physical_gpu(pynvml, handle) -> PhysicalGpu:
    def text(value):
        return value.decode() if isinstance(value, bytes) else value

    cc = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    whole = Device(text(pynvml.nvmlDeviceGetUUID(handle)), text(pynvml.nvmlDeviceGetName(handle)),
                   pynvml.nvmlDeviceGetMemoryInfo(handle).total, cc)
    try:
        enabled = pynvml.nvmlDeviceGetMigMode(handle)[0] == pynvml.NVML_DEVICE_MIG_ENABLE
    except (pynvml.NVMLError, AttributeError):  # pre-Ampere, or a driver without MIG: no MIG
        enabled = False
    if not enabled:
        return PhysicalGpu(whole, (), False)
    instances = []
    for i in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
        except pynvml.NVMLError:  # NOT_FOUND: no instance in this slot
            continue
        instances.append(Device(text(pynvml.nvmlDeviceGetUUID(mig)), text(pynvml.nvmlDeviceGetName(mig)),
                                pynvml.nvmlDeviceGetMemoryInfo(mig).total, cc, parent_uuid=whole.uuid))
    return PhysicalGpu(whole, tuple(instances), True)


def visible_devices(gpus: list[PhysicalGpu], visible: str | None) -> list[Device]:
    """The devices a CUDA program sees, by CUDA's rules: without CUDA_VISIBLE_DEVICES every GPU, a MIG-enabled
    GPU as its first instance; with it, the listed indices or (prefixes of) GPU-/MIG- UUIDs in order, up to the
    first entry that names nothing. A process enumerates at most one MIG device (NVIDIA MIG user guide,
    "CUDA Device Enumeration": https://docs.nvidia.com/datacenter/tesla/mig-user-guide/)."""
    def as_cuda_sees(gpu: PhysicalGpu) -> Device | None:
        return (gpu.mig[0] if gpu.mig else None) if gpu.mig_enabled else gpu.whole

    if visible is None:
        wanted = [as_cuda_sees(g) for g in gpus]
    else:
        wanted = []
        for token in (t.strip() for t in visible.split(",")):
            if token.isdigit():
                found = as_cuda_sees(gpus[int(token)]) if int(token) < len(gpus) else None
            else:
                candidates = [(d, as_cuda_sees(g) if d is g.whole else d) for g in gpus for d in (g.whole, *g.mig)]
                matches = [seen for d, seen in candidates if token and d.uuid.startswith(token)]
                found = matches[0] if len(matches) == 1 else None  # an ambiguous prefix names nothing
            if found is None or found in wanted:
                break  # CUDA ignores everything from the first entry it cannot use
            wanted.append(found)
    devices, seen_mig = [], False
    for device in wanted:
        if device is None:
            continue
        if device.parent_uuid:
            if seen_mig:
                continue
            seen_mig = True
        devices.append(device)
    return devices
