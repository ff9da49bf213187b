"""MFU of a training step: achieved model FLOP/s divided by the card's datasheet peak, then by a measured ceiling.

The FLOPs come from the model's shapes (checked against PyTorch's FlopCounterMode). MFU's standard denominator
is the datasheet's dense bf16 peak; a second figure divides by the median rate of bf16 8192x8192x8192 products
timed with CUDA events in this same run, the ceiling a real kernel reaches on this card today.
"""
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) bf16 tensor-core peak by the name CUDA reports; the datasheets print the 2:4-sparse rate,
# twice these. Sources: https://www.nvidia.com/en-us/data-center/h100/ and https://www.nvidia.com/en-us/data-center/h200/
DATASHEET_BF16 = {
    "NVIDIA H100 80GB HBM3": 989e12,  # H100 SXM
    "NVIDIA H200": 989e12,  # H200 SXM
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200 NVL": 835e12,
}


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
    datasheet = DATASHEET_BF16.get(name)  # an exact name: "NVIDIA H200" must not match "NVIDIA H200 NVL"
    print(f"achieved {achieved / 1e12:.3g} TFLOP/s")
    if datasheet:
        print(f"MFU {achieved / datasheet:.1%} of the {datasheet / 1e12:.0f} TFLOP/s dense bf16 datasheet peak")
    else:
        print(f"MFU against the datasheet: unknown, {name!r} is not in DATASHEET_BF16 (add its dense bf16 peak)")
    print(f"    {achieved / peak:.1%} of the ceiling measured now, {peak / 1e12:.3g} TFLOP/s ({what} matmul)"
          + (f", which is {peak / datasheet:.1%} of the datasheet peak" if datasheet else ""))
    with open("mfu.json", "w") as f:
        json.dump({"device": name, "params": params, "batch": batch, "flops_per_step": flops,
                   "achieved_flops": achieved, "datasheet_flops": datasheet,
                   "mfu_vs_datasheet": achieved / datasheet if datasheet else None,
                   "ceiling": what, "ceiling_flops": peak, "mfu_vs_ceiling": achieved / peak,
                   "mfu": achieved / peak,  # the same as mfu_vs_ceiling: the key older readers of mfu.json use
                   "ceiling_vs_datasheet": peak / datasheet if datasheet else None}, f, indent=1)


if __name__ == "__main__":
    main()
