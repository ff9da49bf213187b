"""Gather what NVIDIA support and an RMA ask for into one archive, before anyone resets the GPU or the node.

    python 01_evidence_bundle.py                   # -> gpu-evidence-HOST-20261201T0712Z.tar.gz in the cwd
    python 01_evidence_bundle.py --dcgm            # also `dcgmi diag -r 2 -j` (needs the GPUs idle: ~2 min)
    python 01_evidence_bundle.py --bug-report      # also nvidia-bug-report.sh's report (minutes; needs root)

A GPU reset clears the volatile ECC counters, applies the pending remap and clears the driver's recovery action;
a reboot also empties the kernel's ring buffer, which `dmesg` reads: capture first. A tool that is missing, fails
or does not answer within --timeout is recorded in MANIFEST.json with its error, and every NVML call has a
deadline (--nvml-timeout): a wedged GPU (Xid 119/120) is recorded as wedged, and the bundle is still written.
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
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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
    "dmesg.txt": ["dmesg"],  # this boot's ring buffer: a reboot empties it, and a chatty node overwrites its start
    "journal-kernel-7d.txt": ["journalctl", "-k", "--no-pager", "--since", "-7d"],  # earlier boots, if persistent
    "uname.txt": ["uname", "-a"],
}
# --8<-- [end:commands]
STUCK = []  # what did not return: a child that ignored SIGKILL, an NVML call still blocked in the driver


def run(command, timeout) -> dict:
    """Run one command with a deadline; its output, or why there is none. Never waits on a child stuck in the
    driver (a wedged GPU can leave nvidia-smi unkillable in an ioctl): it is recorded and left behind."""
    started = time.monotonic()
    out, status, error = "", None, ""
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace")
    except FileNotFoundError:
        error = f"{command[0]}: not installed"
    else:
        try:
            out, err = proc.communicate(timeout=timeout)
            status, error = proc.returncode, err[-2000:]
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                out, _ = proc.communicate(timeout=5)
                error = f"timed out after {timeout:g} s: killed (a wedged GPU?)"
            except subprocess.TimeoutExpired:
                error = f"timed out after {timeout:g} s and did not exit when killed: stuck in the driver"
                STUCK.append(" ".join(command))
    return {"command": command, "exit": status, "error": error, "seconds": round(time.monotonic() - started, 2),
            "text": out}


def bug_report(timeout) -> tuple[bytes | None, dict]:
    """nvidia-bug-report.sh writes its report to a file (gzipped, with .gz appended), not to stdout: run it in a
    scratch folder and keep that file; its console messages go to the manifest."""
    with tempfile.TemporaryDirectory() as scratch:
        base = os.path.join(scratch, "nvidia-bug-report.log")
        result = run(["nvidia-bug-report.sh", "--output-file", base], timeout)
        result["console"] = result.pop("text")[-2000:]
        for path in (base + ".gz", base):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    return f.read(), result
        result["error"] = (result["error"] + "; " if result["error"] else "") + "it wrote no report file"
        return None, result


def with_deadline(seconds, function, *args):
    """function(*args) in a helper thread: its value or exception, or TimeoutError after `seconds`."""
    box = {}

    def target():
        try:
            box["value"] = function(*args)
        except BaseException as err:  # handed to the caller below
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)  # a blocked call is abandoned, never joined
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        STUCK.append(f"NVML call {getattr(function, '__name__', function)}")
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def read(function, *args):
    """One NVML value; a failed call is kept as its error, never dropped."""
    try:
        value = function(*args)
        return value.decode() if isinstance(value, bytes) else value
    except pynvml.NVMLError as err:
        return f"error: {err}"


def gpu_record(index) -> dict:
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as err:
        return {"index": index, "error": str(err)}
    field = read(pynvml.nvmlDeviceGetFieldValues, h, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
    sram = pynvml.c_nvmlEccSramErrorStatus_v1_t()
    sram_read = read(pynvml.nvmlDeviceGetSramEccErrorStatus, h, ctypes.byref(sram))
    return {
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
    }


def nvml_dump(deadline) -> dict:
    """What NVML says about each GPU, each GPU under its own deadline: a GPU whose calls block (a GSP timeout)
    is recorded as wedged, and the others are still read."""
    try:
        with_deadline(deadline, pynvml.nvmlInit)
    except (pynvml.NVMLError, TimeoutError) as err:
        return {"init_error": str(err)}
    stuck = len(STUCK)
    try:
        dump = {"driver": read(pynvml.nvmlSystemGetDriverVersion),
                "cuda_driver": read(pynvml.nvmlSystemGetCudaDriverVersion), "gpus": []}
        for index in range(with_deadline(deadline, pynvml.nvmlDeviceGetCount)):
            try:
                dump["gpus"].append(with_deadline(deadline, gpu_record, index))
            except TimeoutError as err:
                dump["gpus"].append({"index": index, "error": f"NVML gave {err}: the GPU is wedged (Xid 119/120?)"})
        return dump
    except TimeoutError as err:
        return {"error": f"NVML gave {err}"}
    finally:
        if len(STUCK) == stuck:  # nvmlShutdown would wait for a call that is still blocked
            pynvml.nvmlShutdown()


def seconds(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds > 0")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Collect GPU evidence into one archive before any reset")
    parser.add_argument("--dcgm", action="store_true", help="also run dcgmi diag -r 2 -j (GPUs must be idle)")
    parser.add_argument("--bug-report", action="store_true", help="also run nvidia-bug-report.sh (as root)")
    parser.add_argument("--out", default=".", help="directory for the archive (default: here)")
    parser.add_argument("--timeout", type=seconds, default=60.0,
                        help="seconds each quick command may take (dcgmi and the bug report get 900)")
    parser.add_argument("--nvml-timeout", type=seconds, default=10.0, help="seconds NVML may take per GPU")
    args = parser.parse_args(argv)
    commands = dict(COMMANDS)
    if args.dcgm:
        commands["dcgmi-diag-r2.json"] = ["dcgmi", "diag", "-r", "2", "-j"]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    files, manifest = {}, {"host": socket.gethostname(), "utc": stamp, "python": sys.version.split()[0],
                           "platform": platform.platform(), "items": {}}
    # The commands run side by side, so a wedged GPU costs one --timeout, not one per command. The pool is not
    # joined: a child stuck in the driver must not keep the bundle from being written.
    pool = ThreadPoolExecutor(len(commands) + 1)
    running = {name: pool.submit(run, command, 900 if name.startswith("dcgmi") else args.timeout)
               for name, command in commands.items()}
    report = pool.submit(bug_report, 900) if args.bug_report else None
    files["nvml.json"] = json.dumps(nvml_dump(args.nvml_timeout), indent=2)
    for name, future in running.items():
        result = future.result()
        files[name] = result.pop("text")
        manifest["items"][name] = result
    if report is not None:
        data, result = report.result()
        manifest["items"]["nvidia-bug-report.log.gz"] = result
        if data is not None:
            files["nvidia-bug-report.log.gz"] = data
    pool.shutdown(wait=False)
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            files["proc-driver-nvidia-version.txt"] = f.read()
    except OSError as err:
        manifest["items"]["proc-driver-nvidia-version.txt"] = {"error": str(err)}
    if os.path.exists("gpu_health.json"):  # the last report of 01_gpu_health.py run here, if any
        with open("gpu_health.json", encoding="utf-8") as f:
            files["gpu_health.json"] = f.read()
    if STUCK:
        manifest["stuck"] = STUCK
    files["MANIFEST.json"] = json.dumps(manifest, indent=2)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"gpu-evidence-{socket.gethostname()}-{stamp}.tar.gz")
    with tarfile.open(path + ".tmp", "w:gz") as tar:
        for name, content in files.items():
            data = content if isinstance(content, bytes) else content.encode()
            info = tarfile.TarInfo(f"gpu-evidence-{stamp}/{name}")
            info.size, info.mtime = len(data), time.time()
            tar.addfile(info, io.BytesIO(data))
    os.replace(path + ".tmp", path)  # a half-written archive never carries the final name
    missing = [n for n, item in manifest["items"].items() if item.get("exit") not in (0, None) or item.get("error")]
    print(f"wrote {path} ({len(files)} files)")
    if missing:
        print(f"incomplete items (see MANIFEST.json): {', '.join(missing)}")
    if STUCK:  # a call still blocked in the driver: leave without waiting for it
        print(f"still blocked, left behind: {'; '.join(STUCK)}")
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
