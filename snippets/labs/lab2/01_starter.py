"""Lab 2 starter: a GPT training script that starves its GPU. Measure it first; then fix it one change at a time.

A GPT-style decoder learns synthetic token sequences made in this process (no downloads). On a GPU the model has
1.3 B parameters, enough to keep an H100 or H200 busy; on a CPU everything shrinks so the script ends in seconds.
"""
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

FULL = dict(layers=24, width=2048, heads=16, seq=2048, vocab=50304, seconds=5.0)
TINY = dict(layers=2, width=64, heads=4, seq=64, vocab=512, seconds=0.3)
BATCH = 1  # sequences per step
WARMUP_STEPS = 3
# Dense bf16 tensor-core peak, TFLOP/s, by the name CUDA reports (https://www.nvidia.com/en-us/data-center/h100/,
# https://www.nvidia.com/en-us/data-center/h200/): the standard MFU denominator.
DATASHEET_BF16_TFLOPS = {"NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H200": 989.0, "NVIDIA H100 NVL": 835.0,
                         "NVIDIA H200 NVL": 835.0}


class SyntheticTokens(Dataset):
    """Each token is the previous one plus 7 (modulo the vocabulary), except that one in ten restarts at random."""

    def __init__(self, seq, vocab):
        self.seq, self.vocab = seq, vocab

    def __len__(self):
        return 2**31 - 1

    def __getitem__(self, i):  # one sequence at a time, in the training process
        g = torch.Generator().manual_seed(i)
        pos = torch.arange(self.seq + 1)
        restart = torch.rand(self.seq + 1, generator=g) < 0.1
        restart[0] = True
        start = torch.randint(self.vocab, (self.seq + 1,), generator=g)
        last = torch.cummax(torch.where(restart, pos, 0), 0).values
        tokens = (start[last] + (pos - last) * 7) % self.vocab
        return tokens[:-1], tokens[1:]


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width, bias=False), nn.LayerNorm(width, bias=False)
        self.qkv, self.proj = nn.Linear(width, 3 * width, bias=False), nn.Linear(width, width, bias=False)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width, bias=False), nn.Linear(4 * width, width, bias=False)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # a T x T matrix per head, written out
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        y = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, width, heads, seq, vocab):
        super().__init__()
        self.embed, self.position = nn.Embedding(vocab, width), nn.Embedding(seq, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens, targets):
        x = self.embed(tokens) + self.position(torch.arange(tokens.size(1), device=tokens.device))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.norm(x), self.embed.weight)  # the output layer is the token embedding (tied)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = FULL if device == "cuda" else TINY
    torch.manual_seed(0)
    loader = DataLoader(SyntheticTokens(size["seq"], size["vocab"]), batch_size=BATCH)  # made in this process
    with torch.device(device):
        model = GPT(size["layers"], size["width"], size["heads"], size["seq"], size["vocab"])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    n = sum(p.numel() for p in model.parameters()) - model.position.weight.numel()
    flops_per_token = 6 * n + 12 * size["layers"] * size["width"] * size["seq"]  # PaLM, Appendix B

    losses, steps, start = [], 0, None
    for tokens, targets in loader:
        tokens, targets = tokens.to(device), targets.to(device)  # non_blocking=False: the host waits for each copy
        loss = model(tokens, targets)  # fp32 everywhere
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())  # logs every step: Python waits for the GPU to finish it
        steps += 1
        if start is None and steps == WARMUP_STEPS:  # warm-up done: start the clock once
            start, steps = time.perf_counter(), 0
        elif start is not None and time.perf_counter() - start >= size["seconds"]:
            break
    elapsed = time.perf_counter() - start
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    tokens_per_s = steps * BATCH * size["seq"] / elapsed
    tflops, peak = tokens_per_s * flops_per_token / 1e12, DATASHEET_BF16_TFLOPS.get(name)
    result = {"device": name, "params": n, "batch": BATCH, "seq": size["seq"], "steps": steps, "seconds": elapsed,
              "tokens_per_s": tokens_per_s, "flops_per_token": flops_per_token, "tflops": tflops,
              "datasheet_tflops": peak, "mfu_datasheet": tflops / peak if peak else None,
              "loss_first": losses[0], "loss_last": losses[-1]}
    print(f"starter on {name}: {n / 1e6:,.1f} M parameters, {BATCH} x {size['seq']} tokens per step")
    print(f"{tokens_per_s:,.0f} tokens/s ({elapsed / steps * 1e3:.1f} ms/step over {steps} steps), {tflops:.3g} TFLOP/s"
          + (f" = MFU {tflops / peak:.1%} of the {peak:.0f} TFLOP/s dense bf16 datasheet peak" if peak else "")
          + f"; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    with open("starter.json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
