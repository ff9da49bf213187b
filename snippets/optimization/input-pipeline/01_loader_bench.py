"""How fast can the input pipeline feed the GPU? Four DataLoader set-ups on a CPU, five on a
GPU (the last adds pinned memory), no model: samples/s delivered to the
device, and how long the training process is blocked in each host-to-device copy.

  per-sample  the Dataset returns one sample, converted to float32 on the CPU; the DataLoader stacks them
  batched     a batch sampler hands the Dataset a whole list of indices; uint8 crosses PCIe, the GPU converts
  workers     worker processes prepare batches while the training process works on the current one
  pinned      page-locked batches, copied with non_blocking=True: the copy returns at once, so the host goes on
"""
import json
import os
import time

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler


class Pixels(Dataset):
    def __init__(self, samples, features, raw):
        g = torch.Generator().manual_seed(0)
        self.pixels = torch.randint(0, 256, (samples, features), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(0, 1000, (samples,), generator=g)
        self.raw = raw

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):  # an int, or a list of ints from a batch sampler
        pixels = self.pixels[index]
        return (pixels if self.raw else (pixels.float() - 127.5) / 127.5), self.labels[index]


def loader(data, batch, batched, workers, pinned):
    sampler = RandomSampler(data, replacement=True, num_samples=2**62)
    if batched:
        return DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, batch, drop_last=True),
                          num_workers=workers, pin_memory=pinned)
    return DataLoader(data, batch_size=batch, sampler=sampler, num_workers=workers, pin_memory=pinned)


def measure(device, size, batch, batched, workers, pinned, seconds):
    data = Pixels(*size, raw=batched)
    batches = iter(loader(data, batch, batched, workers, pinned))
    next(batches)  # workers started, first batch made
    n, blocked, t0 = 0, 0.0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, y = next(batches)
        t = time.perf_counter()
        x, y = x.to(device, non_blocking=pinned), y.to(device, non_blocking=pinned)
        blocked += time.perf_counter() - t
        if batched:
            x = (x.float() - 127.5) / 127.5  # on the GPU
        n += 1
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return {"samples_per_s": n * batch / elapsed, "copy_blocked_ms": blocked / n * 1e3, "batches": n}


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = device == "cuda"
    size, batch, workers, seconds = ((65536, 1024), 8192, 4, 2.0) if cuda else ((4096, 64), 256, 2, 0.3)
    setups = {"per-sample": (False, 0, False), f"per-sample + {workers} workers": (False, workers, False),
              "batched uint8": (True, 0, False), f"batched uint8 + {workers} workers": (True, workers, False)}
    if cuda:
        setups[f"batched uint8 + {workers} workers + pinned"] = (True, workers, True)
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"{size[1]}-byte samples, batch {batch}, into {name}; {os.cpu_count()} CPU cores")
    print(f"{'set-up':40} {'samples/s':>12} {'copy blocks (ms/batch)':>23}")
    results = {}
    for label, (batched, n_workers, pinned) in setups.items():
        r = results[label] = measure(device, size, batch, batched, n_workers, pinned, seconds)
        blocked = f"{r['copy_blocked_ms']:23.3f}" if cuda else f"{'- (no GPU)':>23}"
        print(f"{label:40} {r['samples_per_s']:12,.0f} {blocked}")
    with open("loader_bench.json", "w") as f:
        json.dump({"device": name, "batch": batch, "sample_bytes": size[1], "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
