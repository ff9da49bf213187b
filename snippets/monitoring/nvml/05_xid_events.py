"""Listen for Xid errors on every GPU for a few seconds, through an NVML event set.

NVML delivers the Xids that happen after registration; earlier ones are only in the kernel log (dmesg).
Needs: pip install nvidia-ml-py
"""
import ctypes
import sys
import time

import pynvml

# What the common Xids mean (NVIDIA's Xid catalog) and who usually has to act.
MEANING = {
    13: "graphics engine exception: usually the application (bad memory access)",
    31: "GPU memory page fault: usually the application",
    43: "GPU stopped processing: usually the application",
    48: "double-bit ECC error",
    63: "row remapping recorded: reset the GPU to apply it",
    64: "row remapping failed: service the GPU",
    74: "NVLink error",
    79: "GPU fell off the bus",
    94: "contained ECC error: restart the application",
    95: "uncontained ECC error: reset the GPU",
}


def main(seconds: float = 3.0):
    pynvml.nvmlInit()
    event_set = pynvml.nvmlEventSetCreate()
    try:
        index_of = {}  # handle address -> GPU index (a lost GPU cannot answer nvmlDeviceGetIndex)
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            try:
                pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, event_set)
            except pynvml.NVMLError_NotSupported:
                print(f"GPU {index}: no Xid events on this GPU")
                continue
            index_of[ctypes.cast(handle, ctypes.c_void_p).value] = index
        deadline, seen = time.monotonic() + seconds, 0
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = pynvml.nvmlEventSetWait(event_set, int(left * 1000))
            except pynvml.NVMLError_Timeout:
                break
            gpu = index_of.get(ctypes.cast(event.device, ctypes.c_void_p).value, "?")
            print(f"GPU {gpu}: Xid {event.eventData}: {MEANING.get(event.eventData, 'see the Xid catalog')}")
            seen += 1
        print(f"{seen} Xid event(s) in {seconds:g} s")
    finally:
        pynvml.nvmlEventSetFree(event_set)
        pynvml.nvmlShutdown()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
