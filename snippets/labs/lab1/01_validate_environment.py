#!/usr/bin/env python3
"""Lab 1 environment check: what of the GPU stack is present on this machine, and what is missing.

    python 01_validate_environment.py            # report only (exit 0)
    python 01_validate_environment.py --strict   # exit 1 when a required layer is missing (for automation)

Layers, bottom up: kernel driver -> NVML/nvidia-smi -> CUDA toolkit -> container toolkit -> Kubernetes
device plugin -> monitoring tools. Every check has a timeout and never needs root.
"""
import argparse
import importlib.metadata
import json
import re
import shutil
import subprocess
from pathlib import Path

RESULTS = []  # (status, layer, detail); status OK, MISSING, WARN, INFO
REQUIRED = {"driver", "nvml", "nvidia-smi"}


def report(status: str, layer: str, detail: str):
    RESULTS.append((status, layer, detail))
    print(f"{status:<8}{layer:<27}{detail}")


def run(*command: str, timeout: float = 15) -> tuple[int, str]:
    """(exit status, stdout+stderr) of a command; 127 when it is not installed, 124 on timeout."""
    if not shutil.which(command[0]):
        return 127, f"{command[0]} not on PATH"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(command)} did not answer in {timeout:g}s"
    return done.returncode, (done.stdout + done.stderr).strip()


def check_driver():
    version = Path("/proc/driver/nvidia/version")
    if version.exists():
        first = version.read_text().splitlines()[0]
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", first)
        report("OK", "driver", f"kernel module {match[1] if match else first.strip()}")
    else:
        report("MISSING", "driver", "no NVIDIA kernel module loaded (/proc/driver/nvidia/version absent)")
    nodes = sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))
    report("OK" if nodes else "MISSING", "device nodes", ", ".join(nodes) if nodes else "no /dev/nvidia<N>")


def check_nvml() -> str | None:
    """The newest CUDA version the driver supports ('13.0'), or None."""
    try:
        import pynvml
    except ImportError:
        report("MISSING", "nvml", "pynvml not installed: pip install nvidia-ml-py")
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        hint = {
            "NVMLError_LibraryNotFound": "libnvidia-ml.so.1 not found: install the driver",
            "NVMLError_DriverNotLoaded": "kernel module not loaded: see dmesg",
            "NVMLError_LibRmVersionMismatch": "driver upgraded without reboot: reboot the node",
        }.get(type(err).__name__, "")
        report("MISSING", "nvml", f"nvmlInit failed: {type(err).__name__} ({err}){'; ' + hint if hint else ''}")
        return None
    try:
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
                 for i in range(pynvml.nvmlDeviceGetCount())]
        supported = f"{cuda // 1000}.{cuda % 1000 // 10}"
        report("OK", "nvml", f"driver {pynvml.nvmlSystemGetDriverVersion()}, CUDA <= {supported}, "
                             f"{len(names)} GPU(s): {', '.join(sorted(set(names)))}")
        return supported
    finally:
        pynvml.nvmlShutdown()


def check_nvidia_smi():
    status, out = run("nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader")
    if status == 0:
        report("OK", "nvidia-smi", f"{len(out.splitlines())} GPU(s)")
    else:
        report("MISSING", "nvidia-smi", out.splitlines()[-1] if out else f"exit status {status}")


def check_toolkit(driver_cuda: str | None):
    status, out = run("nvcc", "--version")
    match = re.search(r"release (\d+\.\d+)", out)
    if status != 0 or not match:
        report("MISSING", "CUDA toolkit", "nvcc not found (only needed to compile CUDA code; "
                                          "PyTorch wheels bring their own CUDA libraries)")
        return
    toolkit = match[1]
    tk, drv = tuple(map(int, toolkit.split("."))), tuple(map(int, (driver_cuda or "0.0").split(".")))
    # A driver that reports CUDA X.y is at or above major X's floor, so every X.z toolkit runs on it (minor-version
    # compatibility, with a limited feature set); only a newer major needs a newer driver (or cuda-compat).
    if driver_cuda and tk[0] > drv[0]:
        report("WARN", "CUDA toolkit", f"nvcc {toolkit}: a newer major version than the driver supports "
               f"({driver_cuda}); programs built with it fail with 'CUDA driver version is insufficient'")
    elif driver_cuda and tk > drv:
        report("OK", "CUDA toolkit", f"nvcc {toolkit}: newer than the driver's {driver_cuda}, same major: runs "
               "through minor-version compatibility, but its PTX cannot be JIT-compiled by this driver")
    else:
        report("OK", "CUDA toolkit", f"nvcc {toolkit}")


def check_containers():
    status, out = run("nvidia-ctk", "--version")
    report("OK" if status == 0 else "MISSING", "container toolkit",
           out.splitlines()[0] if status == 0 else "nvidia-ctk not found (NVIDIA Container Toolkit)")
    daemon = Path("/etc/docker/daemon.json")
    if daemon.exists():
        try:
            runtimes = json.loads(daemon.read_text()).get("runtimes", {})
        except (OSError, json.JSONDecodeError) as err:
            report("WARN", "docker runtime", f"cannot read {daemon}: {err}")
        else:
            report("OK" if "nvidia" in runtimes else "MISSING", "docker runtime",
                   "nvidia runtime configured" if "nvidia" in runtimes
                   else f"no nvidia runtime in {daemon}: sudo nvidia-ctk runtime configure --runtime=docker")
    containerd = Path("/etc/containerd/config.toml")
    if containerd.exists():
        configured = "nvidia" in containerd.read_text(errors="replace")
        report("OK" if configured else "INFO", "containerd runtime",
               "nvidia runtime configured" if configured else f"no nvidia runtime in {containerd}")


def check_kubernetes():
    status, out = run("kubectl", "get", "nodes", "-o", "json", timeout=10)
    if status == 127:
        report("INFO", "kubernetes", "kubectl not on PATH (skip if this node is not in a cluster)")
        return
    if status != 0:
        report("WARN", "kubernetes", f"kubectl cannot list nodes: {out.splitlines()[-1] if out else status}")
        return
    nodes = json.loads(out)["items"]
    gpus = {n["metadata"]["name"]: n["status"].get("allocatable", {}).get("nvidia.com/gpu", "0") for n in nodes}
    with_gpus = {name: count for name, count in gpus.items() if count != "0"}
    report("OK" if with_gpus else "MISSING", "device plugin",
           f"allocatable nvidia.com/gpu: {with_gpus}" if with_gpus
           else "no node offers nvidia.com/gpu: install the device plugin or the GPU Operator")


def check_monitoring():
    for program in ("prometheus", "promtool", "dcgmi"):
        path = shutil.which(program)
        report("OK" if path else "INFO", program, path or "not on PATH")
    for package in ("nvidia-ml-py", "prometheus-client", "torch"):
        try:
            report("OK", f"python: {package}", importlib.metadata.version(package))
        except importlib.metadata.PackageNotFoundError:
            report("INFO", f"python: {package}", f"not installed (pip install {package})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when the driver, NVML or nvidia-smi is missing")
    args = parser.parse_args()
    check_driver()
    driver_cuda = check_nvml()
    check_nvidia_smi()
    check_toolkit(driver_cuda)
    check_containers()
    check_kubernetes()
    check_monitoring()
    missing = sorted({layer for status, layer, _ in RESULTS if status == "MISSING" and layer in REQUIRED})
    print(f"\n{'GPU node ready' if not missing else 'not a working GPU node: missing ' + ', '.join(missing)}")
    return 1 if (args.strict and missing) else 0


if __name__ == "__main__":
    raise SystemExit(main())
