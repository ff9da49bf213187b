"""Hardware requirements written in a fence, e.g. ``requires="gpu mem>=40GiB cc>=9.0"``, and this machine's.

Grammar: space-separated terms, each one of
  gpu            at least one NVIDIA GPU that NVML can see
  gpus>=N        at least N GPUs
  mem>=SIZE      every GPU has at least SIZE of memory (units GiB, GB, MiB, MB)
  cc>=MAJOR.MINOR  compute capability of every GPU at least this (9.0 = Hopper)
Every term except gpu implies gpu.
"""
import functools
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

    @property
    def needs_gpu(self) -> bool:
        return self.gpus > 0


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
class Hardware:
    """What this machine offers; `why_none` says why no GPU was found."""

    gpus: int = 0
    min_mem_bytes: int = 0
    min_cc: tuple[int, int] = (0, 0)
    why_none: str = ""


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


@functools.cache
def detect() -> Hardware:
    """Ask NVML, the same library the pages teach, without creating a CUDA context."""
    try:
        import pynvml
    except ImportError:
        return Hardware(why_none="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return Hardware(why_none=f"NVML: {err}")
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        if not handles:
            return Hardware(why_none="NVML sees no device")
        return Hardware(
            gpus=len(handles),
            min_mem_bytes=min(pynvml.nvmlDeviceGetMemoryInfo(h).total for h in handles),
            min_cc=min(tuple(pynvml.nvmlDeviceGetCudaComputeCapability(h)) for h in handles),
        )
    except pynvml.NVMLError as err:
        return Hardware(why_none=f"NVML: {err}")
    finally:
        pynvml.nvmlShutdown()
