"""One line per GPU from NVML: what nvidia-smi's main table shows, read from Python.

Handles the failures a fleet shows: no driver, a driver/library mismatch, and a GPU that fell off the bus.
Needs: pip install nvidia-ml-py
"""
import pynvml

MIB = 2**20


def describe(handle) -> str:
    name = pynvml.nvmlDeviceGetName(handle)
    util = pynvml.nvmlDeviceGetUtilizationRates(handle)  # .gpu: % of time a kernel ran; .memory: % of time memory was busy
    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)  # bytes
    temp = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)  # degrees C
    power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000  # milliwatts -> W
    limit = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
    sm = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)  # MHz
    sm_max = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
    procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    return (f"{name:<36} util {util.gpu:3d}%  mem {mem.used // MIB:6d}/{mem.total // MIB} MiB  {temp:3d} C  "
            f"{power:5.0f}/{limit:.0f} W  SM {sm:4d}/{sm_max} MHz  {len(procs)} process(es)")


def main():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        print("no NVML library (libnvidia-ml.so.1): the NVIDIA driver is not installed or not mounted here")
        return
    except pynvml.NVMLError_DriverNotLoaded:
        print("the NVIDIA kernel module is not loaded")
        return
    except pynvml.NVMLError_LibRmVersionMismatch:
        print("driver/library version mismatch: the driver was upgraded without a reboot")
        return
    try:
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        print(f"driver {pynvml.nvmlSystemGetDriverVersion()}, built for CUDA {cuda // 1000}.{cuda % 1000 // 10}")
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                print(f"GPU {index}: {describe(pynvml.nvmlDeviceGetHandleByIndex(index))}")
            except pynvml.NVMLError_GpuIsLost:
                print(f"GPU {index}: LOST (NVMLError_GpuIsLost): look for Xid 79 in the kernel log")
    finally:
        pynvml.nvmlShutdown()


if __name__ == "__main__":
    main()
