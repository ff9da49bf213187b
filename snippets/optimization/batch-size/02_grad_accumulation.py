"""Gradient accumulation: k micro-batches of b samples give the gradient of one batch of k·b samples,
in the memory of b. Scale each micro-batch loss by 1/k so the sum is the mean over the whole batch."""
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 10)).double()  # float64: compare exactly
x, y = torch.randn(256, 32, dtype=torch.float64), torch.randint(0, 10, (256,))

model.zero_grad()
F.cross_entropy(model(x), y).backward()  # one batch of 256
full = [p.grad.clone() for p in model.parameters()]

k = 8
model.zero_grad()
for xs, ys in zip(x.chunk(k), y.chunk(k)):  # 8 micro-batches of 32; gradients add up in .grad
    (F.cross_entropy(model(xs), ys) / k).backward()
accumulated = [p.grad for p in model.parameters()]

worst = max((a - f).abs().max().item() for a, f in zip(accumulated, full))
print(f"largest difference between accumulated and full-batch gradients: {worst:.1e}")
assert worst < 1e-12
