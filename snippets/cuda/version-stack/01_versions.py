#!/usr/bin/env python3
"""Every version in this machine's CUDA stack, layer by layer: driver, the CUDA it supports, and what torch ships.

    python 01_versions.py        # writes versions.json

The driver's numbers come from NVML (the library nvidia-smi prints from); the rest from torch, which carries its
own CUDA runtime, cuBLAS, cuDNN and NCCL inside the wheel, so none of them has to match a system CUDA toolkit.
"""
import json
import sys

import pynvml


def driver_layer() -> dict:
    pynvml.nvmlInit()
    try:
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # 1000*major + 10*minor: 13000 is 13.0
        return {"driver": pynvml.nvmlSystemGetDriverVersion(),
                "driver_cuda": f"{cuda // 1000}.{cuda % 1000 // 10}",
                "nvml": pynvml.nvmlSystemGetNVMLVersion()}
    finally:
        pynvml.nvmlShutdown()


def wheel_layer() -> dict:
    try:
        import torch
    except ImportError:
        return {"torch": None}
    found = {"torch": torch.__version__, "runtime_cuda": torch.version.cuda}
    if torch.version.cuda:  # a CUDA build: these libraries are inside the wheel (or its nvidia-* dependencies)
        cudnn = torch.backends.cudnn.version()
        found["cudnn"] = f"{cudnn // 10000}.{cudnn // 100 % 100}.{cudnn % 100}" if cudnn else None
        found["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        found["arch_list"] = torch.cuda.get_arch_list()
    return found


def main() -> int:
    try:
        stack = driver_layer()
    except pynvml.NVMLError as err:
        print(f"error: NVML failed ({type(err).__name__}: {err}): no driver, so no CUDA at all", file=sys.stderr)
        return 2
    stack.update(wheel_layer())
    labels = {"driver": "kernel driver", "driver_cuda": "newest CUDA the driver runs (nvidia-smi 'CUDA Version')",
              "nvml": "NVML library", "torch": "torch", "runtime_cuda": "CUDA runtime in the wheel (torch.version.cuda)",
              "cudnn": "cuDNN in the wheel", "nccl": "NCCL in the wheel", "arch_list": "GPU code in the wheel"}
    for key, label in labels.items():
        if key in stack:
            value = stack[key]
            print(f"{label:<58}{' '.join(value) if isinstance(value, list) else value}")
    if stack.get("torch") and not stack.get("runtime_cuda"):
        print("torch is a CPU build here: it brings no CUDA runtime")
    with open("versions.json", "w", encoding="utf-8") as out:
        json.dump(stack, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
