"""Why is each GPU's SM clock below its maximum? Decode nvmlDeviceGetCurrentClocksEventReasons.

The reasons were called "throttle reasons" before NVML renamed them "clock event reasons"; the bits are the same.
Needs: pip install nvidia-ml-py
"""
import pynvml

REASONS = {  # bit -> what it means
    pynvml.nvmlClocksEventReasonGpuIdle: "idle: nothing runs, clocks parked",
    pynvml.nvmlClocksEventReasonApplicationsClocksSetting: "application clocks set (nvidia-smi -ac)",
    pynvml.nvmlClocksEventReasonSwPowerCap: "SW power cap: at the power limit",
    pynvml.nvmlClocksEventReasonHwSlowdown: "HW slowdown: thermal or power-brake signal from the hardware",
    pynvml.nvmlClocksEventReasonSyncBoost: "sync boost: held to the clocks of its boost group",
    pynvml.nvmlClocksEventReasonSwThermalSlowdown: "SW thermal slowdown: the driver cools the GPU",
    pynvml.nvmlClocksEventReasonHwThermalSlowdown: "HW thermal slowdown: the GPU is too hot",
    pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown: "HW power brake: external power-brake signal",
}


def main():
    pynvml.nvmlInit()
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mask = pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
            sm = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
            sm_max = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
            temp = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
            active = [text for bit, text in REASONS.items() if mask & bit]
            print(f"GPU {index}: SM {sm}/{sm_max} MHz, {temp} C, reasons 0x{mask:x}: {'; '.join(active) or 'none'}")
    finally:
        pynvml.nvmlShutdown()


if __name__ == "__main__":
    main()
