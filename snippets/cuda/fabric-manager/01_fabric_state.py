#!/usr/bin/env python3
"""Has Fabric Manager set up this node's NVLink fabric? Each GPU's fabric state, read through NVML.

    python 01_fabric_state.py            # report, exit 0
    python 01_fabric_state.py --strict   # exit 1 when a GPU of an NVSwitch fabric is not ready for CUDA

On an NVSwitch system (HGX/DGX H100, H200, B200) a GPU registers with the NVLink fabric only once Fabric Manager
has configured it; until then its state is not started or in progress, NVML and nvidia-smi still list it, and
CUDA fails with CUDA_ERROR_SYSTEM_NOT_READY (802, "system not yet initialized"). A GPU outside any NVSwitch
fabric (a PCIe card, a lone GPU in a VM) reports "not supported", and needs no Fabric Manager. Writes
fabric_state.json. Exit status 2 when NVML cannot be read.
"""
import argparse
import ctypes
import json
import sys

import pynvml

STATES = {0: "not supported", 1: "not started", 2: "in progress", 3: "completed"}  # nvmlGpuFabricState_t


def fabric(handle) -> dict:
    """{"state": ..., "status": ...}: nvmlDeviceGetGpuFabricInfo (Hopper and later); status counts once completed."""
    info = pynvml.c_nvmlGpuFabricInfo_t()
    try:
        pynvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info))
    except pynvml.NVMLError_NotSupported:
        return {"state": "not supported", "status": None}
    except pynvml.NVMLError as err:
        return {"state": f"unreadable ({type(err).__name__})", "status": None}
    state = STATES.get(info.state, f"unknown {info.state}")
    status = None
    if info.state == 3:  # nvmlReturn_t of the registration, meaningful once completed
        status = "Success" if info.status == pynvml.NVML_SUCCESS else f"error {info.status} ({pynvml.nvmlErrorString(info.status)})"
    return {"state": state, "status": status, "clique": info.cliqueId if info.state == 3 else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 unless every fabric GPU is ready for CUDA")
    args = parser.parse_args()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        print(f"error: NVML failed ({type(err).__name__}: {err}): is the NVIDIA driver loaded?", file=sys.stderr)
        return 2
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpus.append({"index": i, "name": pynvml.nvmlDeviceGetName(handle), **fabric(handle)})
    finally:
        pynvml.nvmlShutdown()
    # --8<-- [start:verdict]
    in_fabric = [g for g in gpus if g["state"] != "not supported"]
    ready = [g for g in in_fabric if g["state"] == "completed" and g["status"] == "Success"]
    if not in_fabric:
        verdict = "no GPU in an NVSwitch fabric: Fabric Manager is not needed here"
    elif len(ready) == len(in_fabric):
        verdict = f"fabric ready: {len(ready)} GPU(s) registered, CUDA can start"
    else:
        verdict = (f"fabric NOT ready on {len(in_fabric) - len(ready)} of {len(in_fabric)} GPU(s): CUDA fails with "
                   "'system not yet initialized' (802); check systemctl status nvidia-fabricmanager and that its "
                   "version matches the driver")
    # --8<-- [end:verdict]
    for g in gpus:
        status = f", status {g['status']}" if g["status"] else ""
        print(f"GPU {g['index']}: {g['name']}: fabric {g['state']}{status}")
    print(verdict)
    with open("fabric_state.json", "w", encoding="utf-8") as out:
        json.dump({"gpus": gpus, "in_fabric": len(in_fabric), "ready": len(ready), "verdict": verdict}, out, indent=2)
    return 1 if args.strict and len(ready) != len(in_fabric) else 0


if __name__ == "__main__":
    sys.exit(main())
