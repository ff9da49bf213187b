"""GPU-to-GPU copy bandwidth between cuda:0 and cuda:1 (NVLink when the GPUs have it, else PCIe)."""
import json
import statistics

import torch


def peer_rate(nbytes: int, src: int, dst: int, reps: int = 20) -> float:
    a = torch.rand(nbytes // 4, device=f"cuda:{src}")
    b = torch.empty(nbytes // 4, device=f"cuda:{dst}")
    b.copy_(a)  # warm-up, and enables peer access when the driver allows it
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.device(src):
            start.record()
            b.copy_(a)
            end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    assert torch.equal(b.cpu(), a.cpu()), "the peer copy is wrong"
    return nbytes / statistics.median(times)  # bytes crossing the link once, one direction


def main():
    peer = torch.cuda.can_device_access_peer(0, 1)
    rate = peer_rate(1 << 30, 0, 1)
    print(f"{torch.cuda.get_device_name(0)} -> {torch.cuda.get_device_name(1)}: peer access {'yes' if peer else 'no'}")
    print(f"cuda:0 -> cuda:1, 1 GiB, one direction: {rate / 1e9:.1f} GB/s")
    with open("peer_copy.json", "w") as f:
        json.dump({"peer_access": peer, "GBps_one_direction": rate / 1e9}, f, indent=1)


if __name__ == "__main__":
    main()
