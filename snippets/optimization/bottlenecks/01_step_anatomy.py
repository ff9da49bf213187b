"""Where the time of a training step goes: each phase timed twice, to issue (host) and to finish (wall).

The host issues GPU work asynchronously: a phase whose wall time is close to its issue time is bound by the
host (Python, the data loader, kernel launches, a blocking copy); one whose wall time is far larger is bound
by the device. The synchronizations that make this visible also slow the step, so use it to diagnose only.
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


def anatomy(device, batch, bf16, size, steps):
    features, width, depth, classes = size
    model = mlp(features, width, depth, classes).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    host_x = torch.randint(0, 256, (batch, features), dtype=torch.uint8)
    host_y = torch.randint(0, classes, (batch,))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    state = {}

    def data():  # stand-in for a DataLoader that converts on the CPU: a new float batch every step
        state["x"], state["y"] = (host_x.float() - 127.5) / 127.5, host_y.clone()

    def copy():
        state["x"], state["y"] = state["x"].to(device), state["y"].to(device)

    def forward():
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            state["loss"] = F.cross_entropy(model(state["x"]), state["y"])

    def backward():
        opt.zero_grad(set_to_none=True)
        state["loss"].backward()

    def optimizer():
        opt.step()

    phases = {"data": data, "copy": copy, "forward": forward, "backward": backward, "optimizer": optimizer}
    totals = {name: [0.0, 0.0] for name in phases}  # issue seconds, wall seconds
    for step in range(steps + 2):  # the first two steps warm up (allocator, cuBLAS, optimizer state)
        for name, phase in phases.items():
            sync()
            t0 = time.perf_counter()
            phase()
            t1 = time.perf_counter()
            sync()
            t2 = time.perf_counter()
            if step >= 2:
                totals[name][0] += (t1 - t0) / steps
                totals[name][1] += (t2 - t0) / steps
    return {name: {"issue_ms": i * 1e3, "wall_ms": w * 1e3} for name, (i, w) in totals.items()}


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = (1024, 4096, 8, 1000) if device == "cuda" else (64, 128, 2, 10)
    runs = {"batch 32, fp32": (32, False), f"batch {8192 if device == 'cuda' else 512}, bf16 autocast":
            (8192 if device == "cuda" else 512, True)}
    results = {}
    for label, (batch, bf16) in runs.items():
        phases = anatomy(device, batch, bf16, size, steps=10 if device == "cuda" else 3)
        results[label] = phases
        step_ms = sum(p["wall_ms"] for p in phases.values())
        print(f"{label} on {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}: {step_ms:.2f} ms per step"
              f" with a sync after every phase ({batch / step_ms * 1e3:,.0f} samples/s)")
        print(f"  {'phase':10} {'issue ms':>9} {'wall ms':>9} {'share':>6}  bound by")
        for name, p in phases.items():
            bound = "host" if p["issue_ms"] > 0.5 * p["wall_ms"] else "device"
            print(f"  {name:10} {p['issue_ms']:9.3f} {p['wall_ms']:9.3f} {p['wall_ms'] / step_ms:6.1%}  {bound}")
    with open("step_anatomy.json", "w") as f:
        json.dump({"device": device, "model": size, "phases": results}, f, indent=1)


if __name__ == "__main__":
    main()
