"""Lab 2 starter: a training script that starves its GPU. Measure it first; then fix it one change at a time.

An MLP learns labels of synthetic uint8 'images' made in this process (no downloads). On a GPU the model is
large enough to keep an H100 busy; on a CPU everything shrinks so the script finishes in seconds.
"""
import itertools
import json
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

FULL = dict(samples=65536, features=1024, width=4096, depth=8, classes=1000, seconds=5.0)
TINY = dict(samples=4096, features=64, width=64, depth=2, classes=10, seconds=0.5)
BATCH_SIZE = 32
WARMUP_STEPS = 5


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels.float() - 127.5) / 127.5


class SyntheticImages(Dataset):
    def __init__(self, samples: int, features: int, classes: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.pixels = torch.randint(0, 256, (samples, features), dtype=torch.uint8, generator=g)
        seen = min(features, 64)
        teacher = torch.randn(seen, classes, generator=g)
        self.labels = (normalize(self.pixels[:, :seen]) @ teacher).argmax(1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return normalize(self.pixels[i]), self.labels[i]  # one sample at a time, converted to float32 on the CPU


def mlp(features: int, width: int, depth: int, classes: int) -> nn.Sequential:
    layers = [nn.Linear(features, width), nn.GELU()]
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = FULL if device == "cuda" else TINY
    torch.manual_seed(0)
    data = SyntheticImages(size["samples"], size["features"], size["classes"])
    loader = DataLoader(data, batch_size=BATCH_SIZE, shuffle=True, drop_last=True)  # loads in this process
    model = mlp(size["features"], size["width"], size["depth"], size["classes"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    losses, steps, start = [], 0, None
    for x, y in (batch for _ in itertools.count() for batch in loader):
        x, y = x.to(device), y.to(device)  # pageable host memory: the copy blocks
        loss = F.cross_entropy(model(x), y)  # fp32 everywhere
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())  # logs every step: Python waits for the GPU to finish it
        steps += 1
        if start is None and steps == WARMUP_STEPS:  # warm-up done: start the clock once
            start, steps = time.perf_counter(), 0
        elif start is not None and time.perf_counter() - start >= size["seconds"]:
            break
    elapsed = time.perf_counter() - start
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "CPU", "batch_size": BATCH_SIZE,
              "params": sum(p.numel() for p in model.parameters()), "steps": steps, "seconds": elapsed,
              "samples_per_s": steps * BATCH_SIZE / elapsed, "loss_first": losses[0], "loss_last": losses[-1]}
    print(f"starter on {result['device']}: {result['params'] / 1e6:.1f} M parameters, batch {BATCH_SIZE}")
    print(f"{result['samples_per_s']:,.0f} samples/s ({elapsed / steps * 1e3:.2f} ms/step over {steps} steps),"
          f" loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    with open("starter.json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
