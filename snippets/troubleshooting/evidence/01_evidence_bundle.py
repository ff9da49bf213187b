"""Gather what NVIDIA support and an RMA ask for into one archive, before anyone resets the GPU or the node.

    python 01_evidence_bundle.py                   # -> gpu-evidence-HOST-20261201T0712Z.tar.gz in the cwd
    python 01_evidence_bundle.py --dcgm            # also `dcgmi diag -r 2 -j` (needs the GPUs idle: ~2 min)
    python 01_evidence_bundle.py --bug-report      # also nvidia-bug-report.sh (minutes; needs root)

A reset clears the volatile ECC counters, the pending-remap state and the driver's view of what failed: capture
first. A tool that is missing or fails is recorded in MANIFEST.json with its error; the bundle is still written.
Needs: pip install nvidia-ml-py
"""
import argparse
import ctypes
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tarfile
import time

import pynvml

# --8<-- [start:commands]
COMMANDS = {  # file in the archive -> command
    "nvidia-smi-q.txt": ["nvidia-smi", "-q"],
    "nvidia-smi-query.csv": ["nvidia-smi", "--query-gpu=index,pci.bus_id,serial,uuid,name,driver_version,pstate,"
                             "temperature.gpu,power.draw,clocks.sm,clocks_event_reasons.active,"
                             "ecc.errors.uncorrected.volatile.total,remapped_rows.pending,remapped_rows.failure,"
                             "pcie.link.gen.current,pcie.link.width.current", "--format=csv"],
    "nvidia-smi-apps.csv": ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory,gpu_bus_id",
                            "--format=csv"],
    "nvidia-smi-nvlink.txt": ["nvidia-smi", "nvlink", "-s"],
    "dmesg.txt": ["dmesg"],
    "uname.txt": ["uname", "-a"],
}
# --8<-- [end:commands]


def run(command, timeout=120) -> dict:
    started = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        out, status, error = proc.stdout, proc.returncode, proc.stderr[-2000:]
    except FileNotFoundError:
        out, status, error = "", None, f"{command[0]}: not installed"
    except subprocess.TimeoutExpired:
        out, status, error = "", None, f"timed out after {timeout} s"
    return {"command": command, "exit": status, "error": error, "seconds": round(time.monotonic() - started, 2),
            "text": out}


def nvml_dump() -> dict:
    """What NVML says about each GPU; every call that fails is kept as its error, never dropped."""
    def read(function, *args):
        try:
            value = function(*args)
            return value.decode() if isinstance(value, bytes) else value
        except pynvml.NVMLError as err:
            return f"error: {err}"

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return {"init_error": str(err)}
    try:
        dump = {"driver": read(pynvml.nvmlSystemGetDriverVersion),
                "cuda_driver": read(pynvml.nvmlSystemGetCudaDriverVersion), "gpus": []}
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                h = pynvml.nvmlDeviceGetHandleByIndex(index)
            except pynvml.NVMLError as err:
                dump["gpus"].append({"index": index, "error": str(err)})
                continue
            field = read(pynvml.nvmlDeviceGetFieldValues, h, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
            sram = pynvml.c_nvmlEccSramErrorStatus_v1_t()
            sram_read = read(pynvml.nvmlDeviceGetSramEccErrorStatus, h, ctypes.byref(sram))
            dump["gpus"].append({
                "index": index, "name": read(pynvml.nvmlDeviceGetName, h), "uuid": read(pynvml.nvmlDeviceGetUUID, h),
                "serial": read(pynvml.nvmlDeviceGetSerial, h), "vbios": read(pynvml.nvmlDeviceGetVbiosVersion, h),
                "bus_id": read(lambda: pynvml.nvmlDeviceGetPciInfo(h).busId),
                "clocks_event_reasons": read(pynvml.nvmlDeviceGetCurrentClocksEventReasons, h),
                "remapped_rows": read(pynvml.nvmlDeviceGetRemappedRows, h),
                "ecc_uncorrected_volatile": read(pynvml.nvmlDeviceGetTotalEccErrors, h,
                                                 pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC),
                "ecc_uncorrected_aggregate": read(pynvml.nvmlDeviceGetTotalEccErrors, h,
                                                  pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC),
                "recovery_action": field if isinstance(field, str) else (
                    field[0].value.uiVal if field[0].nvmlReturn == pynvml.NVML_SUCCESS else "not supported"),
                "sram_threshold_exceeded": sram_read if isinstance(sram_read, str) else bool(sram.bThresholdExceeded),
                "pcie": [read(f, h) for f in (pynvml.nvmlDeviceGetCurrPcieLinkGeneration,
                                              pynvml.nvmlDeviceGetCurrPcieLinkWidth,
                                              pynvml.nvmlDeviceGetMaxPcieLinkGeneration,
                                              pynvml.nvmlDeviceGetMaxPcieLinkWidth)],
            })
        return dump
    finally:
        pynvml.nvmlShutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Collect GPU evidence into one archive before any reset")
    parser.add_argument("--dcgm", action="store_true", help="also run dcgmi diag -r 2 -j (GPUs must be idle)")
    parser.add_argument("--bug-report", action="store_true", help="also run nvidia-bug-report.sh")
    parser.add_argument("--out", default=".", help="directory for the archive (default: here)")
    args = parser.parse_args(argv)
    commands = dict(COMMANDS)
    if args.dcgm:
        commands["dcgmi-diag-r2.json"] = ["dcgmi", "diag", "-r", "2", "-j"]
    if args.bug_report:
        commands["nvidia-bug-report.txt"] = ["nvidia-bug-report.sh", "--output-file", "/tmp/nvidia-bug-report.log"]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    files, manifest = {}, {"host": socket.gethostname(), "utc": stamp, "python": sys.version.split()[0],
                           "platform": platform.platform(), "items": {}}
    for name, command in commands.items():
        result = run(command, timeout=900 if name.startswith(("dcgmi", "nvidia-bug")) else 120)
        files[name] = result.pop("text")
        manifest["items"][name] = result
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            files["proc-driver-nvidia-version.txt"] = f.read()
    except OSError as err:
        manifest["items"]["proc-driver-nvidia-version.txt"] = {"error": str(err)}
    files["nvml.json"] = json.dumps(nvml_dump(), indent=2)
    if os.path.exists("gpu_health.json"):  # the last report of 01_gpu_health.py run here, if any
        with open("gpu_health.json", encoding="utf-8") as f:
            files["gpu_health.json"] = f.read()
    files["MANIFEST.json"] = json.dumps(manifest, indent=2)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"gpu-evidence-{socket.gethostname()}-{stamp}.tar.gz")
    with tarfile.open(path + ".tmp", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"gpu-evidence-{stamp}/{name}")
            info.size, info.mtime = len(data), time.time()
            tar.addfile(info, io.BytesIO(data))
    os.replace(path + ".tmp", path)  # a half-written archive never carries the final name
    missing = [n for n, item in manifest["items"].items() if item.get("exit") not in (0, None) or item.get("error")]
    print(f"wrote {path} ({len(files)} files)")
    if missing:
        print(f"incomplete items (see MANIFEST.json): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
