#!/usr/bin/env python3
"""Lab 1 environment check: what of the GPU stack is present on this machine, and what is missing.

    python 01_validate_environment.py            # report only (exit 0)
    python 01_validate_environment.py --strict   # exit 1 when a required layer is missing (for automation)

Layers, bottom up: kernel driver -> NVML/nvidia-smi -> a CUDA context -> Fabric Manager (NVSwitch systems) ->
CUDA toolkit -> container toolkit and runtime -> Kubernetes device plugin -> monitoring tools. NVML and
nvidia-smi can see every GPU while CUDA cannot start (an HGX board whose Fabric Manager is down), so the node
counts as ready only once a CUDA context was created. Every check has a timeout and never needs root.
"""
import argparse
import ctypes
import importlib.metadata
import json
import re
import shutil
import subprocess
from pathlib import Path

RESULTS = []  # (status, layer, detail); status OK, MISSING, WARN, INFO
REQUIRED = {"driver", "nvml", "nvidia-smi", "cuda context", "fabric manager"}
SYS_PCI = Path("/sys/bus/pci/devices")  # NVSwitches are PCI bridges (class 0x0680) of vendor 0x10de
PROC = Path("/proc")
CONTAINERD = Path("/etc/containerd")
# CUresult codes worth a sentence (CUDA driver API, cuda.h); the rest are printed with cuGetErrorString.
CUDA_HINTS = {
    100: "no CUDA device visible: CUDA_VISIBLE_DEVICES, a GPU in MIG mode without instances, or no GPU in this container",
    802: "the system is not ready: on an NVSwitch (HGX/DGX) node, Fabric Manager has not set up the NVLink fabric; "
         "sudo systemctl enable --now nvidia-fabricmanager (the same version as the driver)",
    803: "the user-mode driver and the kernel module differ: reboot after a driver upgrade",
    35: "the driver is older than this libcuda expects: a driver/library mismatch",
    999: "unknown error: read dmesg for an Xid",
}
FABRIC_STATE = {0: "not supported", 1: "not started", 2: "in progress", 3: "completed"}  # nvmlGpuFabricState_t


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


def check_nvml() -> tuple[str | None, list]:
    """(the newest CUDA version the driver supports, e.g. '13.0', or None; each GPU's NVLink fabric state)."""
    try:
        import pynvml
    except ImportError:
        report("MISSING", "nvml", "pynvml not installed: pip install nvidia-ml-py")
        return None, []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        hint = {
            "NVMLError_LibraryNotFound": "libnvidia-ml.so.1 not found: install the driver",
            "NVMLError_DriverNotLoaded": "kernel module not loaded: see dmesg",
            "NVMLError_LibRmVersionMismatch": "driver upgraded without reboot: reboot the node",
        }.get(type(err).__name__, "")
        report("MISSING", "nvml", f"nvmlInit failed: {type(err).__name__} ({err}){'; ' + hint if hint else ''}")
        return None, []
    try:
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        names = [pynvml.nvmlDeviceGetName(h) for h in handles]
        supported = f"{cuda // 1000}.{cuda % 1000 // 10}"
        report("OK", "nvml", f"driver {pynvml.nvmlSystemGetDriverVersion()}, CUDA <= {supported}, "
                             f"{len(names)} GPU(s): {', '.join(sorted(set(names)))}")
        persistence = []
        for h in handles:
            try:
                persistence.append(pynvml.nvmlDeviceGetPersistenceMode(h) == pynvml.NVML_FEATURE_ENABLED)
            except pynvml.NVMLError:
                pass
        if persistence:
            report("OK" if all(persistence) else "WARN", "persistence mode",
                   "enabled on every GPU" if all(persistence) else
                   f"off on {persistence.count(False)} GPU(s): sudo systemctl enable --now nvidia-persistenced")
        return supported, [fabric_state(pynvml, h) for h in handles]
    finally:
        pynvml.nvmlShutdown()


def fabric_state(pynvml, handle) -> int | None:
    """nvmlGpuFabricState_t of one GPU (Hopper and later), or None where NVML cannot say."""
    info = pynvml.c_nvmlGpuFabricInfo_t()
    try:
        pynvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info))
    except (pynvml.NVMLError, AttributeError):
        return None
    return info.state


def nvswitch_count() -> int:
    count = 0
    for dev in SYS_PCI.glob("*"):
        try:
            vendor, cls = (dev / "vendor").read_text().strip(), (dev / "class").read_text().strip()
        except OSError:
            continue
        count += vendor == "0x10de" and cls.startswith("0x0680")
    return count


def fabric_manager_running() -> bool | None:
    """Is nv-fabricmanager running? None when it cannot be told (no /proc to read)."""
    status, _ = run("systemctl", "is-active", "--quiet", "nvidia-fabricmanager", timeout=5)
    if status == 0:
        return True
    try:
        return any((p / "comm").read_text().strip() == "nv-fabricmanager" for p in PROC.glob("[0-9]*"))
    except OSError:
        return None


def check_fabric(states: list, switches: int, fm_running: bool | None):
    """NVSwitch systems (HGX/DGX A100, H100, H200, B200) need Fabric Manager before CUDA can start."""
    registered = [s for s in states if s not in (None, 0)]
    if not switches and not registered:
        report("INFO", "fabric manager", "no NVSwitch on this node: not needed")
        return
    where = f"{switches} NVSwitch(es) on the PCI bus" if switches else "GPUs in an NVLink fabric"
    if registered and all(s == 3 for s in registered):
        if fm_running is False:
            report("WARN", "fabric manager", f"{where}, fabric set up, but nv-fabricmanager is not running: "
                                             "NVLink errors will go unhandled; sudo systemctl restart nvidia-fabricmanager")
        else:
            report("OK", "fabric manager", f"{where}, fabric state completed on {len(registered)} GPU(s)")
        return
    if registered:
        stuck = sorted({FABRIC_STATE.get(s, str(s)) for s in registered if s != 3})
        report("MISSING", "fabric manager", f"{where}, GPU fabric state {', '.join(stuck)}: Fabric Manager "
               f"{'is not running' if not fm_running else 'has not finished'}; CUDA fails with 'system not yet "
               "initialized' (802): sudo systemctl enable --now nvidia-fabricmanager (its version must match the driver)")
    elif fm_running:
        report("OK", "fabric manager", f"{where}, nv-fabricmanager running")
    else:
        report("MISSING", "fabric manager", f"{where}, nv-fabricmanager not running: install "
               "nvidia-fabricmanager-BRANCH at the driver's version and enable it")


def check_cuda(load=ctypes.CDLL):
    """Create a CUDA context on the first visible device through the driver API (libcuda), as any CUDA program does."""
    try:
        lib = load("libcuda.so.1")
    except OSError:
        report("MISSING", "cuda context", "libcuda.so.1 not found: the driver's user-mode library is not installed")
        return

    def explain(code: int) -> str:
        text = ctypes.c_char_p()
        name = text.value.decode() if lib.cuGetErrorString(code, ctypes.byref(text)) == 0 and text.value else "?"
        return f"CUresult {code} ({name}){': ' + CUDA_HINTS[code] if code in CUDA_HINTS else ''}"

    code = lib.cuInit(0)
    if code:
        report("MISSING", "cuda context", f"cuInit failed: {explain(code)}")
        return
    count, device, context = ctypes.c_int(), ctypes.c_int(), ctypes.c_void_p()
    code = lib.cuDeviceGetCount(ctypes.byref(count))
    if code or count.value == 0:
        report("MISSING", "cuda context", f"no CUDA device: {explain(code or 100)}")
        return
    code = lib.cuDeviceGet(ctypes.byref(device), 0) or lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), device)
    if code:
        report("MISSING", "cuda context", f"cannot create a context on device 0: {explain(code)}")
        return
    lib.cuDevicePrimaryCtxRelease(device)
    report("OK", "cuda context", f"created on device 0 of {count.value} visible")


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
    check_containerd()


def check_containerd():
    """Since toolkit 1.18, nvidia-ctk writes its containerd settings to conf.d/99-nvidia.toml and adds an imports
    line to config.toml; older toolkits edit config.toml itself. Kubernetes pods get the GPU through the nvidia
    runtime when it is the default (--set-as-default) or when they name a RuntimeClass for it."""
    main, dropins = CONTAINERD / "config.toml", sorted((CONTAINERD / "conf.d").glob("*.toml"))
    files = [f for f in (main, *dropins) if f.exists()]
    if not files:
        return
    text = {f: f.read_text(errors="replace") for f in files}
    imported = main.exists() and re.search(r'^\s*imports\s*=.*conf\.d', text[main], re.M)
    if dropins and not imported:
        report("WARN", "containerd runtime", f"{dropins[0]} is not imported by {main}: containerd ignores it "
               "(nvidia-ctk runtime configure adds the imports line; rerun it)")
        text = {f: t for f, t in text.items() if f == main}
        if not re.search(r"runtimes\.nvidia\]", text.get(main, "")):
            return
    has_runtime = [f for f, t in text.items() if re.search(r"runtimes\.nvidia\]", t)]
    is_default = [f for f, t in text.items() if re.search(r'default_runtime_name\s*=\s*"nvidia"', t)]
    if has_runtime and is_default:
        report("OK", "containerd runtime", f"nvidia runtime, the default ({is_default[0]})")
    elif has_runtime:
        report("WARN", "containerd runtime", f"nvidia runtime in {has_runtime[0]} but not the default: pods need "
               "runtimeClassName: nvidia and a RuntimeClass; or sudo nvidia-ctk runtime configure "
               "--runtime=containerd --set-as-default && sudo systemctl restart containerd")
    else:
        report("MISSING", "containerd runtime", "no nvidia runtime: sudo nvidia-ctk runtime configure "
               "--runtime=containerd --set-as-default && sudo systemctl restart containerd")


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
    status, out = run("kubectl", "get", "runtimeclass", "nvidia", "-o", "name", timeout=10)
    report("OK" if status == 0 else "INFO", "runtimeclass",
           "RuntimeClass nvidia exists" if status == 0 else
           "no RuntimeClass nvidia: pods cannot use runtimeClassName: nvidia (fine if nvidia is containerd's default)")


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
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when the driver, NVML, nvidia-smi, a CUDA context or Fabric Manager is missing")
    args = parser.parse_args()
    check_driver()
    driver_cuda, fabric = check_nvml()
    check_nvidia_smi()
    check_fabric(fabric, nvswitch_count(), fabric_manager_running())
    check_cuda()
    check_toolkit(driver_cuda)
    check_containers()
    check_kubernetes()
    check_monitoring()
    missing = sorted({layer for status, layer, _ in RESULTS if status == "MISSING" and layer in REQUIRED})
    print(f"\n{'GPU node ready' if not missing else 'not a working GPU node: missing ' + ', '.join(missing)}")
    return 1 if (args.strict and missing) else 0


if __name__ == "__main__":
    raise SystemExit(main())
