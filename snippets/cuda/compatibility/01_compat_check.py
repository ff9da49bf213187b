#!/usr/bin/env python3
"""Does this CUDA stack work? The driver (from NVML) against a wheel's CUDA runtime and GPU architecture list.

    python 01_compat_check.py                      # the installed torch, when it is a CUDA build
    python 01_compat_check.py --wheel cu130        # a PyTorch wheel you have not installed yet
    python 01_compat_check.py --wheel-cuda 12.8 --wheel-arches sm_70,sm_75,sm_80,sm_86,sm_90,sm_100,sm_120
    python 01_compat_check.py --strict             # exit 1 unless the (or some candidate) wheel works

With a CPU-only torch and no wheel declared, it checks every wheel in WHEELS. It prints a verdict per wheel
(what works, what is missing, what to change) and writes compat_check.json. Exit status: 0 (1 with --strict
when nothing checked works); 2 when NVML fails or an argument is malformed.
"""
import argparse
import json
import re
import sys

import pynvml

# Oldest driver branch each CUDA major runs on through minor-version compatibility (NVIDIA CUDA Compatibility
# guide, https://docs.nvidia.com/deploy/cuda-compatibility/). A newer major needs a newer driver or cuda-compat.
MIN_DRIVER = {11: (450, 80, 2), 12: (525,), 13: (580,)}

# PyTorch's x86_64 release wheels: CUDA runtime and TORCH_CUDA_ARCH_LIST, from pytorch/pytorch
# .ci/manywheel/build_cuda.sh (PyTorch 2.9 and later). cu126 and cu128 ship SASS only; cu130 adds compute_120 PTX.
WHEELS = {
    "cu126": ("12.6", "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90"),
    "cu128": ("12.8", "sm_70 sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"),
    "cu130": ("13.0", "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120"),
}
ARCH = re.compile(r"^(sm|compute)_(\d+?)(\d)([af]?)$")  # sm_90 -> (sm, 9, 0, ""); sm_100a -> (sm, 10, 0, "a")
# Compute capabilities nvcc targets (CUDA 12.x/13.x), and the few that also have arch-specific ("a", CUDA 12.0+)
# and family-specific ("f", CUDA 12.9+) variants: there is no sm_80a or sm_90f. Sources: the CUDA Programming
# Guide's compute capability tables and NVIDIA's blog "NVIDIA Blackwell and NVIDIA CUDA 12.9 Introduce
# Family-Specific Architecture Features".
KNOWN_CC = {50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90, 100, 101, 103, 110, 120, 121}
ARCH_SPECIFIC = {90, 100, 101, 103, 110, 120, 121}   # sm_90a, sm_100a, ...
FAMILY_SPECIFIC = {100, 101, 103, 110, 120, 121}     # sm_100f, ...


def version(text: str, what: str = "CUDA version") -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    if not match:
        raise ValueError(f"{what} {text!r}: write MAJOR.MINOR, e.g. 12.8")
    return int(match[1]), int(match[2])


def arch_problem(arch: str) -> str | None:
    """Why `arch` names no real compilation target, or None when it does."""
    match = ARCH.match(arch)
    if not match:
        return "write sm_XY (SASS) or compute_XY (PTX), with an optional a or f suffix, e.g. sm_90,sm_90a,compute_90"
    cc, suffix = int(match[2] + match[3]), match[4]
    if cc not in KNOWN_CC:
        return f"compute capability {match[2]}.{match[3]} does not exist (known: {', '.join(cc_name(c) for c in sorted(KNOWN_CC))})"
    allowed = {"a": ARCH_SPECIFIC, "f": FAMILY_SPECIFIC}.get(suffix)
    if allowed is not None and cc not in allowed:
        kind = "arch-specific" if suffix == "a" else "family-specific"
        return (f"{cc_name(cc)} has no {kind} '{suffix}' variant (it exists for "
                f"{', '.join(f'{match[1]}_{c}{suffix}' for c in sorted(allowed))})")
    return None


def cc_name(cc: int) -> str:
    return f"{cc // 10}.{cc % 10}"


def parse_arches(items, strict: bool = True) -> list[str]:
    """Declared arches must all name real targets; torch's own list may hold forms this checker does not know:
    skip those."""
    arches = [a.strip() for a in items if a.strip()]
    for arch in arches:
        problem = arch_problem(arch)
        if strict and problem:
            raise ValueError(f"--wheel-arches: {arch!r}: {problem}")
    return [a for a in arches if not arch_problem(a)]


def dotted(v) -> str:
    return ".".join(map(str, v))


# --8<-- [start:runtime]
def runtime_check(driver: str, driver_cuda, wheel_cuda) -> tuple[str, list, list]:
    """(mode, problems, changes): can this driver run a CUDA `wheel_cuda` runtime at all?"""
    if wheel_cuda <= driver_cuda:
        return "native", [], []
    branch = tuple(int(x) for x in re.findall(r"\d+", driver))
    floor = MIN_DRIVER.get(wheel_cuda[0])
    if floor and branch >= floor:
        return "minor-version compatibility", [], []
    target = f"branch >= {dotted(floor)}" if floor else f"one that supports CUDA {dotted(wheel_cuda)}"
    problems = [f"driver {driver} was built for CUDA {dotted(driver_cuda)}; a CUDA {dotted(wheel_cuda)} runtime needs "
                f"a driver of {target}: the first CUDA call fails with 'CUDA driver version is insufficient for CUDA runtime version'"]
    changes = [f"upgrade the driver to {target}",
               f"or install a wheel built for CUDA {driver_cuda[0]}.x, which this driver runs",
               f"or, on a data-center GPU, add forward compatibility: apt install cuda-compat-{wheel_cuda[0]}-{wheel_cuda[1]}"]
    return "insufficient driver", problems, changes
# --8<-- [end:runtime]


# --8<-- [start:runs_on]
def runs_on(arch: str, cc) -> bool:
    """Can code for `arch` run on a GPU of compute capability `cc` (SASS as is, PTX after JIT)?

    sm_XY SASS: the same major, minor >= Y. compute_XY PTX: any GPU of X.Y or newer (the driver JIT-compiles it).
    The 'a' (arch-specific) forms, SASS and PTX alike, run on X.Y only: they are not forward compatible. The 'f'
    (family-specific) forms run on the same major with minor >= Y (sm_100f on 10.0 and 10.3), never on a newer major.
    """
    kind, major, minor, suffix = ARCH.match(arch).groups()
    major, minor = int(major), int(minor)
    if suffix == "a":
        return (major, minor) == tuple(cc)
    if suffix == "f" or kind == "sm":
        return major == cc[0] and minor <= cc[1]
    return (major, minor) <= tuple(cc)
# --8<-- [end:runs_on]


def kernel_check(cc, arches: list[str], mvc: bool, wheel_cuda) -> tuple[list, list, list]:
    """(problems, changes, notes): does the wheel hold code this compute capability can run?"""
    sass = [a for a in arches if a.startswith("sm_") and runs_on(a, cc)]
    ptx = [a for a in arches if a.startswith("compute_") and runs_on(a, cc)]
    sm = f"sm_{cc[0]}{cc[1]}"
    if sass:
        return [], [], [f"{sm}: native code ({', '.join(sass)})"]
    fitting = [name for name, (_, listed) in WHEELS.items() if sm in listed.split()]
    better = f"a wheel whose arch list has {sm}" + (f" (e.g. {', '.join(fitting)})" if fitting else "")
    if ptx and not mvc:
        return [], [], [f"{sm}: no native code; the driver JIT-compiles {ptx[-1]} PTX at first launch (slow start)"]
    if ptx:
        return ([f"{sm}: only {ptx[-1]} PTX, built by CUDA {dotted(wheel_cuda)}, newer than the driver: JIT fails "
                 "with cudaErrorUnsupportedPtxVersion (222)"],
                [f"upgrade the driver to one that supports CUDA {dotted(wheel_cuda)}", f"or install {better}"], [])
    return ([f"{sm}: no native code and no PTX it can JIT in [{' '.join(arches)}]: kernels fail with "
             "'no kernel image is available for execution on the device'"], [f"install {better}"], [])


def check_wheel(name: str, wheel_cuda, arches, system: dict) -> dict:
    mode, problems, changes = runtime_check(system["driver_version"], version(system["driver_cuda"]), wheel_cuda)
    notes = []
    empty = [g for g in system["gpus"] if g.get("mig_enabled") and g.get("mig_devices") == 0]
    if system["gpus"] and len(empty) == len(system["gpus"]):
        problems.append("every GPU is in MIG mode with no MIG instance: CUDA sees no device at all "
                        "(cudaGetDeviceCount() returns 0)")
        changes.append("create MIG instances (nvidia-smi mig -cgi PROFILES -C), or turn MIG mode off "
                       "(nvidia-smi -i N -mig 0, then reset the GPU)")
    elif empty:
        notes.append(f"GPU {', '.join(str(g['index']) for g in empty)} in MIG mode with no instance: "
                     "CUDA does not see it")
    if not system["gpus"]:
        problems.append("NVML lists no GPU: nothing for CUDA to run on")
    if mode == "minor-version compatibility":
        notes.append(f"runs through minor-version compatibility (driver CUDA {system['driver_cuda']} < "
                     f"{dotted(wheel_cuda)}): PTX from the newer compiler cannot be JIT-compiled")
    if mode != "insufficient driver":
        for cc in sorted({tuple(g["compute_capability"]) for g in system["gpus"]}):
            p, c, n = kernel_check(cc, arches, mode != "native", wheel_cuda)
            problems += p
            changes += [x for x in c if x not in changes]
            notes += n
    return {"wheel": name, "wheel_cuda": dotted(wheel_cuda), "arches": arches, "mode": mode,
            "works": not problems, "problems": problems, "changes": changes, "notes": notes}


def read_system() -> dict:
    pynvml.nvmlInit()
    try:
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # 1000*major + 10*minor: 13000 is 13.0
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpus.append({"index": i, "name": pynvml.nvmlDeviceGetName(handle),
                         "compute_capability": list(pynvml.nvmlDeviceGetCudaComputeCapability(handle)),
                         **mig_state(handle)})
        return {"driver_version": pynvml.nvmlSystemGetDriverVersion(),
                "driver_cuda": f"{cuda // 1000}.{cuda % 1000 // 10}", "gpus": gpus}
    finally:
        pynvml.nvmlShutdown()


def mig_state(handle) -> dict:
    """{"mig_enabled": bool, "mig_devices": N}: a GPU in MIG mode shows CUDA only its MIG instances."""
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError:  # not MIG-capable (NotSupported), or MIG unreadable: CUDA sees the whole GPU
        return {"mig_enabled": False, "mig_devices": None}
    if current != pynvml.NVML_DEVICE_MIG_ENABLE:
        return {"mig_enabled": False, "mig_devices": None}
    count = 0
    for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except pynvml.NVMLError_NotFound:
            continue
        count += 1
    return {"mig_enabled": True, "mig_devices": count}


def installed_torch():
    """(label, CUDA version, arch list) of the installed torch, or None when it is absent or a CPU build."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.version.cuda:
        return None
    # get_arch_list() is [] when no GPU is usable (e.g. driver too old); the arch flags are compiled in.
    flags = torch.cuda.get_arch_list() or (torch._C._cuda_getArchFlags() or "").split()
    return f"installed torch {torch.__version__}", torch.version.cuda, flags


def candidates(args) -> list[tuple]:
    if args.wheel_cuda or args.wheel_arches:
        if not (args.wheel_cuda and args.wheel_arches):
            raise ValueError("declare both --wheel-cuda and --wheel-arches")
        return [(f"declared CUDA {args.wheel_cuda}", args.wheel_cuda, args.wheel_arches.split(","))]
    if args.wheel:
        return [(f"PyTorch {args.wheel}", *WHEELS[args.wheel][:1], WHEELS[args.wheel][1].split())]
    torch_wheel = installed_torch()
    if torch_wheel:
        return [torch_wheel]
    print("torch here is absent or a CPU build: checking PyTorch's CUDA wheels instead")
    return [(f"PyTorch {name}", cuda, listed.split()) for name, (cuda, listed) in WHEELS.items()]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the argument and what it accepts, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def main() -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", choices=sorted(WHEELS), help="check one of PyTorch's wheels")
    parser.add_argument("--wheel-cuda", help="the wheel's CUDA runtime, MAJOR.MINOR (torch.version.cuda)")
    parser.add_argument("--wheel-arches", help="comma-separated, as torch.cuda.get_arch_list() prints them")
    parser.add_argument("--json", default="compat_check.json", help="where to write the verdict")
    parser.add_argument("--strict", action="store_true", help="exit 1 unless a checked wheel works")
    args = parser.parse_args()
    try:
        wheels = [(name, version(cuda, "--wheel-cuda" if name.startswith("declared") else "CUDA version"),
                   parse_arches(arches, strict=not name.startswith("installed")))
                  for name, cuda, arches in candidates(args)]
    except ValueError as err:
        parser.error(str(err))
    try:
        system = read_system()
    except pynvml.NVMLError as err:
        print(f"error: NVML failed ({type(err).__name__}: {err}): is the NVIDIA driver installed and loaded?",
              file=sys.stderr)
        return 2
    print(f"driver {system['driver_version']}: built for CUDA {system['driver_cuda']}")
    for gpu in system["gpus"]:
        mig = f", MIG on with {gpu['mig_devices']} instance(s)" if gpu["mig_enabled"] else ""
        print(f"GPU {gpu['index']}: {gpu['name']}, compute capability {dotted(gpu['compute_capability'])}{mig}")
    results = [check_wheel(name, cuda, arches, system) for name, cuda, arches in wheels]
    for r in results:
        print(f"\n{r['wheel']} (CUDA {r['wheel_cuda']}): {'WORKS' if r['works'] else 'DOES NOT WORK'} [{r['mode']}]")
        for label, items in (("lacks", r["problems"]), ("change", r["changes"]), ("note", r["notes"])):
            for item in items:
                print(f"  {label:<7}{item}")
    first = results[0]
    summary = {"works": any(r["works"] for r in results), "driver_version": system["driver_version"],
               "driver_cuda": system["driver_cuda"], "wheel": first["wheel"], "wheel_cuda": first["wheel_cuda"],
               "mode": first["mode"], "verdict": "works" if first["works"] else "does not work"}
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump({**summary, "gpus": system["gpus"], "wheels": results}, out, indent=2)
    return 1 if args.strict and not summary["works"] else 0


if __name__ == "__main__":
    sys.exit(main())
