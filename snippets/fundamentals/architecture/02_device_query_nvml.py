"""What the driver sees, through NVML (the library behind nvidia-smi): versions, memory, clocks, links."""
import pynvml


def link_summary(handle) -> str:
    pcie = (f"PCIe gen {pynvml.nvmlDeviceGetCurrPcieLinkGeneration(handle)}"
            f" x{pynvml.nvmlDeviceGetCurrPcieLinkWidth(handle)}"
            f" (max gen {pynvml.nvmlDeviceGetMaxPcieLinkGeneration(handle)}"
            f" x{pynvml.nvmlDeviceGetMaxPcieLinkWidth(handle)})")
    active = 0
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            active += pynvml.nvmlDeviceGetNvLinkState(handle, link) == pynvml.NVML_FEATURE_ENABLED
        except pynvml.NVMLError:  # link absent or NVLink not supported on this board
            break
    return f"{pcie}, {active} NVLink links active"


def main():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        raise SystemExit(f"NVML is unavailable: {err}. Is the NVIDIA driver installed on this machine?")
    try:
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 13000 -> 13.0: the CUDA version the driver was built for
        print(f"driver {pynvml.nvmlSystemGetDriverVersion()}, built for CUDA {cuda // 1000}.{cuda % 1000 // 10}"
              f" (CUDA {cuda // 1000}.x runtimes run on it)")
        for index in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            print(f"GPU {index}: {pynvml.nvmlDeviceGetName(h)} (compute capability {major}.{minor})")
            print(f"  memory   {mem.total / 2**30:.1f} GiB total, {mem.used / 2**30:.1f} GiB used")
            print(f"  clocks   SM max {pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)} MHz,"
                  f" memory max {pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM)} MHz")
            print(f"  power    limit {pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000:.0f} W")
            print(f"  links    {link_summary(h)}")
    finally:
        pynvml.nvmlShutdown()


if __name__ == "__main__":
    main()
