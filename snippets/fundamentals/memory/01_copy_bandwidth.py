"""Device-memory copy bandwidth: (bytes read + bytes written) / time, median of many timed copies.

On a GPU this measures HBM: buffers start at 256 MiB, several times the L2 cache, so the cache cannot
serve them. On a CPU it runs at small sizes and measures DRAM the same way.
"""
import json
import statistics
import time

import torch

# Datasheet memory bandwidth, bytes/s (NVIDIA H100 and H200 datasheets, SXM boards).
DATASHEET = {"H100 80GB HBM3": 3.35e12, "H200": 4.8e12}


def median_seconds(fn, device: str, reps: int) -> float:
    """Median wall time of fn; CUDA events on a GPU, because kernel launches return before the work is done."""
    for _ in range(3):  # warm-up: allocator, kernel selection, clocks ramping up
        fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_rate(nbytes: int, device: str, reps: int) -> float:
    src = torch.rand(nbytes // 4, device=device)  # random data, never zeros
    dst = torch.empty_like(src)
    seconds = median_seconds(lambda: dst.copy_(src), device, reps)
    assert torch.equal(dst, src), "the copy is wrong"
    return 2 * nbytes / seconds  # each byte is read once and written once


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes_mib = [256, 1024, 4096] if device == "cuda" else [4, 16, 64]
    headline_mib = sizes_mib[1]
    rates = {mib: copy_rate(mib * 2**20, device, reps=50 if device == "cuda" else 10) for mib in sizes_mib}
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    best = max(rates.values())
    print(f"{name}: copy bandwidth, read + written bytes, median of timed copies")
    for mib, rate in rates.items():
        print(f"  {mib:5d} MiB  {rate / 1e9:8.1f} GB/s")
    print(f"copy at {headline_mib} MiB = {rates[headline_mib] / best:.1%} of the best rate measured here ({best / 1e9:.1f} GB/s)")
    sheet = next((bw for key, bw in DATASHEET.items() if key in name), None)
    if sheet:
        print(f"best measured = {best / sheet:.1%} of the datasheet's {sheet / 1e12:.2f} TB/s")
    with open("copy_bandwidth.json", "w") as f:
        json.dump({"device": name, "headline_MiB": headline_mib, "best_GBps": best / 1e9, "datasheet_GBps": sheet and sheet / 1e9,
                   "chart": {"title": f"Copy bandwidth, {name}", "x": {"label": "buffer size", "unit": "MiB", "log": True},
                             "y": {"label": "bandwidth (read + write)", "unit": "GB/s"},
                             "series": {"copy_": [[mib, rate / 1e9] for mib, rate in rates.items()]}}}, f, indent=1)


if __name__ == "__main__":
    main()
