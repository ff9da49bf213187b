"""MFU of a training step: achieved model FLOP/s divided by the matmul ceiling measured on this card, now.

The FLOPs come from the model's shapes (checked against PyTorch's FlopCounterMode); the ceiling is the median
rate of bf16 8192x8192x8192 products timed with CUDA events in this same run. The datasheet peak is printed
for comparison only: no real kernel reaches it.
"""
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

DATASHEET_BF16 = {"H100": 989e12}  # dense bf16, NVIDIA H100 SXM datasheet


def mlp(features, width, depth, classes):
    layers = [nn.Linear(features, width), nn.GELU()]
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def train_flops_per_sample(model):
    """Forward 2·in·out per Linear; backward twice that, minus the input gradient of the first layer."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    forward = sum(2 * m.in_features * m.out_features for m in linears)
    return 3 * forward - 2 * linears[0].in_features * linears[0].out_features


def timed(fn, device, repeats):
    """Median seconds of `repeats` calls: CUDA events on a GPU, perf_counter on a CPU."""
    times = []
    for _ in range(repeats):
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


def ceiling(device):
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (512, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    products = lambda: [torch.matmul(a, b, out=out) for _ in range(10)]  # noqa: E731
    products()
    return 10 * 2 * n**3 / timed(products, device, 10), f"{str(dtype).removeprefix('torch.')} {n}^3"


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, batch = ((1024, 4096, 8, 1000), 8192) if device == "cuda" else ((64, 128, 2, 10), 256)
    model = mlp(*size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device == "cuda")
    x = torch.randn(batch, size[0], device=device)
    y = torch.randint(0, size[3], (batch,), device=device)

    def step():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = train_flops_per_sample(model) * batch
    params = sum(p.numel() for p in model.parameters())
    assert counter.get_total_flops() == flops, (counter.get_total_flops(), flops)
    steps = lambda: [step() for _ in range(5)]  # noqa: E731
    steps()
    achieved = 5 * flops / timed(steps, device, 5)
    peak, what = ceiling(device)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"{name}: MLP with {params:,} parameters, batch {batch}")
    print(f"FLOPs per step {flops:.4g} (FlopCounterMode agrees; 6 x parameters x batch would say {6 * params * batch:.4g})")
    print(f"achieved {achieved / 1e12:.3g} TFLOP/s; ceiling {peak / 1e12:.3g} TFLOP/s ({what} matmul, measured now)")
    print(f"MFU {achieved / peak:.1%} of the measured ceiling")
    datasheet = next((v for k, v in DATASHEET_BF16.items() if k in name), None)
    if datasheet:
        print(f"    {achieved / datasheet:.1%} of the {datasheet / 1e12:.0f} TFLOP/s datasheet peak;"
              f" the measured ceiling is {peak / datasheet:.1%} of it")
    with open("mfu.json", "w") as f:
        json.dump({"device": name, "flops_per_step": flops, "achieved_flops": achieved, "ceiling_flops": peak,
                   "ceiling": what, "mfu": achieved / peak, "datasheet_flops": datasheet}, f, indent=1)


if __name__ == "__main__":
    main()
