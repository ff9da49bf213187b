"""Host-to-device copy bandwidth over PCIe: pageable versus pinned (page-locked) host memory."""
import json
import statistics

import torch


def h2d_rate(nbytes: int, pinned: bool, reps: int = 20) -> float:
    host = torch.rand(nbytes // 4, pin_memory=pinned)
    dev = torch.empty(nbytes // 4, device="cuda")
    dev.copy_(host)  # warm-up
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dev.copy_(host, non_blocking=pinned)  # only a pinned source can be copied asynchronously
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return nbytes / statistics.median(times)  # bytes crossing the link once


def main():
    nbytes = 1 << 30
    rates = {"pageable": h2d_rate(nbytes, pinned=False), "pinned": h2d_rate(nbytes, pinned=True)}
    print(f"{torch.cuda.get_device_name()}: host-to-device copy of 1 GiB, median")
    for kind, rate in rates.items():
        print(f"  {kind:9} {rate / 1e9:6.1f} GB/s")
    print(f"pinned is {rates['pinned'] / rates['pageable']:.1f}x pageable")
    with open("host_to_device.json", "w") as f:
        json.dump({k: v / 1e9 for k, v in rates.items()}, f, indent=1)


if __name__ == "__main__":
    main()
