"""Throughput against batch size for one training step of an MLP, with the peak memory of each batch.

Throughput rises while a bigger batch still spreads fixed per-step costs (kernel launches, weight reads, the
optimizer update) over more samples, then flattens once the math units are saturated: the knee. Memory grows
linearly with the batch (activations) on top of a fixed part (weights, gradients, optimizer state).
"""
import json
import time

import torch
import torch.nn.functional as F
from torch import nn


def mlp(features, width, depth, classes):
    layers = [nn.Linear(features, width), nn.GELU()]
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def samples_per_second(model, opt, batch, device, seconds):
    features, classes = model[0].in_features, model[-1].out_features
    x = torch.randn(batch, features, device=device)
    y = torch.randint(0, classes, (batch,), device=device)

    def step():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        step()
    sync()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        steps += 1
    sync()
    return steps * batch / (time.perf_counter() - t0)


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        size, batches, seconds = (1024, 4096, 8, 1000), [2**k for k in range(5, 16)], 1.0
    else:
        size, batches, seconds = (64, 128, 2, 10), [16, 128, 512], 0.1
    model = mlp(*size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rows = []
    for batch in batches:
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        rate = samples_per_second(model, opt, batch, device, seconds)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        rows.append({"batch": batch, "samples_per_s": rate, "peak_gib": peak})
    best = max(r["samples_per_s"] for r in rows)
    knee = min(r["batch"] for r in rows if r["samples_per_s"] >= 0.9 * best)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"MLP {size[0]} -> {size[2]}x{size[1]} -> {size[3]} on {name}, {'bf16 autocast' if device == 'cuda' else 'fp32'}")
    print(f"{'batch':>6} {'samples/s':>12} {'of best':>8} {'peak GiB':>9}")
    for r in rows:
        peak = f"{r['peak_gib']:9.2f}" if r["peak_gib"] is not None else f"{'-':>9}"
        print(f"{r['batch']:6d} {r['samples_per_s']:12,.0f} {r['samples_per_s'] / best:8.1%} {peak}")
    print(f"knee: batch {knee} is the smallest with at least 90 % of the best throughput")
    if device == "cuda":
        (b0, m0), (b1, m1) = [(r["batch"], r["peak_gib"]) for r in (rows[-2], rows[-1])]
        per_sample = (m1 - m0) / (b1 - b0)
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        print(f"memory: {per_sample * 2**20:.0f} KiB more per sample; the line through the two largest batches reaches"
              f" {total:.0f} GiB near batch {int(b1 + (total - m1) / per_sample):,} (fragmentation makes it less)")
    with open("batch_sweep.json", "w") as f:
        json.dump({"device": name, "model": size, "rows": rows, "knee": knee,
                   "chart": {"title": f"Training throughput against batch size ({name})",
                             "x": {"label": "batch size", "unit": "", "log": True},
                             "y": {"label": "throughput", "unit": "samples/s"},
                             "series": {"samples/s": [[r["batch"], r["samples_per_s"]] for r in rows]}}}, f, indent=1)


if __name__ == "__main__":
    main()
