"""The fixed cost of one operation, and what CUDA graphs save on a training step made of small kernels.

Part 1 issues 10,000 one-element additions: the host time per operation is what Python, the PyTorch dispatcher
and (on a GPU) the kernel launch cost, whatever the size of the work. Part 2 trains a small MLP at a small batch
eagerly, then captures the whole step (forward, backward, optimizer) into a CUDA graph and replays it with one
launch per step, following the PyTorch CUDA-graphs recipe (torch.cuda.graph, static input tensors).
"""
import json
import time

import torch
import torch.nn.functional as F
from torch import nn


def per_op_cost(device, n=10_000):
    x = torch.zeros(1, device=device)
    for _ in range(100):
        x.add_(1)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        x.add_(1)
    issued = time.perf_counter()
    sync()
    done = time.perf_counter()
    return {"issue_us": (issued - t0) / n * 1e6, "wall_us": (done - t0) / n * 1e6}


def step_times(device, width, steps):
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(width, width), nn.GELU())], nn.Linear(width, 10))
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    static_x = torch.randn(64, width, device=device)
    static_y = torch.randint(0, 10, (64,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(static_x), static_y)
        loss.backward()
        opt.step()
        return loss

    def timed(fn):
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        return (time.perf_counter() - t0) / steps * 1e3

    if device != "cuda":
        step()
        return {"eager_ms": timed(step)}
    side = torch.cuda.Stream()  # warm up on a side stream, as the recipe requires before capture
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    eager = timed(step)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = F.cross_entropy(model(static_x), static_y)
        static_loss.backward()
        opt.step()
    # A real loop copies each new batch into static_x / static_y before graph.replay().
    return {"eager_ms": eager, "graph_ms": timed(graph.replay)}


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    op = per_op_cost(device)
    print(f"{name}: one-element add, 10,000 times: {op['issue_us']:.1f} us to issue each, {op['wall_us']:.1f} us each"
          " until done")
    width = 512 if device == "cuda" else 128
    steps = step_times(device, width, 200 if device == "cuda" else 10)
    print(f"MLP 4x{width}, batch 64, SGD: eager {steps['eager_ms']:.3f} ms/step", end="")
    if "graph_ms" in steps:
        print(f", CUDA graph {steps['graph_ms']:.3f} ms/step ({steps['eager_ms'] / steps['graph_ms']:.1f}x)")
    else:
        print("; CUDA graphs need a CUDA GPU")
    with open("launch_cost.json", "w") as f:
        json.dump({"device": name, "per_op": op, "step": steps}, f, indent=1)


if __name__ == "__main__":
    main()
