"""One MLP trained from the same start on the same batches in four number formats: step time and final loss.

fp32: the default. tf32: fp32 tensors, matmuls on tensor cores with a 10-bit mantissa. bf16 autocast: matmuls
in bf16, weights and optimizer state stay fp32. fp16 autocast: needs a GradScaler, because small gradients
underflow fp16's range. tf32 only exists on GPUs; on a CPU the other three run at a small size.
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


def train(mode, device, size, batches, steps):
    torch.manual_seed(0)
    model = mlp(*size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    scaler = torch.amp.GradScaler(device, enabled=mode == "fp16")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(steps + 1):
        if i == 1:  # step 0 warms up; time the rest
            sync()
            t0 = time.perf_counter()
        x, y = batches[i % len(batches)]
        with torch.autocast(device_type=device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # with the scaler disabled: loss.backward()
        scaler.step(opt)  # unscales the gradients; skips the step if any is inf/nan
        scaler.update()
    sync()
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"ms_per_step": (time.perf_counter() - t0) / steps * 1e3, "final_loss": loss.item(),
            "grad_scale": scaler.get_scale() if scaler.is_enabled() else None}


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, batch, steps = ((1024, 4096, 4, 1000), 8192, 30) if device == "cuda" else ((64, 128, 2, 10), 128, 10)
    modes = ["fp32", "tf32", "bf16", "fp16"] if device == "cuda" else ["fp32", "bf16", "fp16"]
    g = torch.Generator().manual_seed(1)
    teacher = torch.randn(size[0], size[3], generator=g)
    xs = [torch.randn(batch, size[0], generator=g) for _ in range(4)]
    batches = [(x.to(device), (x @ teacher).argmax(1).to(device)) for x in xs]
    results = {mode: train(mode, device, size, batches, steps) for mode in modes}
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"MLP {size[0]} -> {size[2]}x{size[1]} -> {size[3]}, batch {batch}, {steps} steps on {name}")
    print(f"{'mode':6} {'ms/step':>9} {'vs fp32':>8} {'final loss':>11} {'loss - fp32':>12} {'grad scale':>11}")
    base = results["fp32"]
    for mode, r in results.items():
        scale = f"{r['grad_scale']:11.0f}" if r["grad_scale"] else f"{'-':>11}"
        print(f"{mode:6} {r['ms_per_step']:9.2f} {base['ms_per_step'] / r['ms_per_step']:7.2f}x {r['final_loss']:11.4f}"
              f" {r['final_loss'] - base['final_loss']:+12.2e} {scale}")
    with open("amp_step.json", "w") as f:
        json.dump({"device": name, "model": size, "batch": batch, "steps": steps, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
