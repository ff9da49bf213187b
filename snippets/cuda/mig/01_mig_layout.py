#!/usr/bin/env python3
"""How each GPU is partitioned by MIG, read through NVML: mode, instances, their profiles, memory and UUIDs.

    python 01_mig_layout.py      # read-only: it never changes the MIG mode or the instances

A profile "Ng.XXgb" is N of the GPU's 7 compute slices and about XX GB of its memory. The UUIDs printed are the
ones CUDA_VISIBLE_DEVICES and the Kubernetes device plugin hand to a container. Writes mig_layout.json.
"""
import json
import re
import sys

import pynvml

COMPUTE_SLICES = 7  # GPCs a MIG-capable data-center GPU splits into (MIG user guide)


def mig_mode(handle) -> tuple[str, str]:
    """(current, pending) MIG mode; pending differs until the GPU is reset after `nvidia-smi -mig 1`."""
    try:
        current, pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError_NotSupported:
        return "not supported", "not supported"
    name = {pynvml.NVML_DEVICE_MIG_ENABLE: "enabled", pynvml.NVML_DEVICE_MIG_DISABLE: "disabled"}
    return name.get(current, str(current)), name.get(pending, str(pending))


def instances(handle) -> list[dict]:
    found = []
    for slot in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except pynvml.NVMLError_NotFound:  # an empty slot: no instance there
            continue
        name = pynvml.nvmlDeviceGetName(mig)
        profile = re.search(r"(\d+)g\.(\d+)gb", name)
        memory = pynvml.nvmlDeviceGetMemoryInfo(mig)  # the instance's own memory, not the whole card's
        found.append({
            "slot": slot,
            "profile": profile[0] if profile else "?",
            "compute_slices": int(profile[1]) if profile else 0,
            "uuid": pynvml.nvmlDeviceGetUUID(mig),
            "gpu_instance_id": pynvml.nvmlDeviceGetGpuInstanceId(mig),
            "compute_instance_id": pynvml.nvmlDeviceGetComputeInstanceId(mig),
            "memory_total_mib": memory.total // 2**20,
            "memory_used_mib": memory.used // 2**20,
        })
    return found


def main() -> int:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        print(f"error: NVML failed ({type(err).__name__}: {err}): is the NVIDIA driver loaded?", file=sys.stderr)
        return 2
    gpus = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            current, pending = mig_mode(handle)
            total = pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
            gpu = {"index": index, "name": pynvml.nvmlDeviceGetName(handle), "mig_mode": current,
                   "mig_mode_pending": pending, "memory_total_mib": total, "instances": []}
            print(f"GPU {index}: {gpu['name']}, {total} MiB, MIG {current}"
                  + (f" (pending: {pending}, applies after a GPU reset)" if pending != current else ""))
            if current == "enabled":
                gpu["instances"] = instances(handle)
                used = sum(i["compute_slices"] for i in gpu["instances"])
                gpu["compute_slices_used"] = used
                for i in gpu["instances"]:
                    print(f"  slot {i['slot']}: {i['profile']:<9} GI {i['gpu_instance_id']} CI "
                          f"{i['compute_instance_id']}  {i['memory_used_mib']:>6} / {i['memory_total_mib']} MiB  "
                          f"{i['uuid']}")
                if not gpu["instances"]:
                    print("  no instances: CUDA sees no device here until `nvidia-smi mig -cgi ... -C` creates some")
                print(f"  compute slices in use: {used} of {COMPUTE_SLICES}")
            gpus.append(gpu)
    finally:
        pynvml.nvmlShutdown()
    with open("mig_layout.json", "w", encoding="utf-8") as out:
        json.dump({"gpus": gpus}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
