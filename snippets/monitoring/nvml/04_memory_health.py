"""Memory health of each GPU: ECC counters, row remapping, page retirement.

Volatile counters restart when the driver reloads; aggregate counters persist across reboots.
Needs: pip install nvidia-ml-py
"""
import pynvml


def ecc_counts(handle) -> str:
    counts = {}
    for kind, error_type in (("corrected", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                             ("uncorrected", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
        for scope, counter in (("volatile", pynvml.NVML_VOLATILE_ECC), ("aggregate", pynvml.NVML_AGGREGATE_ECC)):
            counts[f"{kind}/{scope}"] = pynvml.nvmlDeviceGetTotalEccErrors(handle, error_type, counter)
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def main():
    pynvml.nvmlInit()
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            current_ecc, _pending = pynvml.nvmlDeviceGetEccMode(handle)
            print(f"GPU {index}: ECC {'on' if current_ecc else 'off'}; "
                  + (ecc_counts(handle) if current_ecc else "no counters"))
            try:
                correctable, uncorrectable, pending, failed = pynvml.nvmlDeviceGetRemappedRows(handle)
                verdict = ("remap FAILED: take the GPU out of service" if failed
                           else "remap pending: drain and reset the GPU" if pending else "ok")
                print(f"  remapped rows: {correctable} correctable, {uncorrectable} uncorrectable: {verdict}")
            except pynvml.NVMLError_NotSupported:
                print("  row remapping not supported")
            try:
                pages = pynvml.nvmlDeviceGetRetiredPages(
                    handle, pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
                print(f"  retired pages (double-bit): {len(pages)}")
            except pynvml.NVMLError_NotSupported:
                print("  page retirement not supported on this GPU")
    finally:
        pynvml.nvmlShutdown()


if __name__ == "__main__":
    main()
