"""Lab 2 reference solution: the starter's GPT training with each fix behind a switch, applied in stages.

    python 02_train.py                        # the last stage: every fix
    python 02_train.py --stage 0              # the starter's behaviour
    python 02_train.py --stage 6 --batch 4 --seconds 20 --checkpoint

Stages are cumulative: 0 baseline, 1 bf16 autocast, 2 SDPA attention, 3 bigger batch, 4 fused AdamW, 5 input
pipeline, 6 no per-step sync, 7 torch.compile (CUDA only). 04_experiment.py imports this file and runs every stage
under measurement.
"""
import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Dataset

# FULL: a 1.3 B-parameter GPT, peak memory within an 80 GB H100; TINY: the same code on a CPU in seconds.
FULL = dict(layers=24, width=2048, heads=16, seq=2048, vocab=50304, big_batch=8, workers=2)
TINY = dict(layers=2, width=64, heads=4, seq=64, vocab=512, big_batch=4, workers=2)
STAGES = ["baseline", "bf16 autocast", "SDPA attention", "bigger batch", "fused AdamW", "input pipeline",
          "no per-step sync", "torch.compile"]


@dataclass
class Config:
    layers: int
    width: int
    heads: int
    seq: int
    vocab: int
    batch: int = 1              # sequences per step
    bf16: bool = False          # bf16 autocast: matmuls on tensor cores, fp32 master weights
    sdpa: bool = False          # F.scaled_dot_product_attention instead of the written-out attention
    fused_adamw: bool = False   # AdamW(fused=True): one kernel for the whole update
    workers: int = 0            # DataLoader worker processes (0: make the batch in the training process)
    pin_memory: bool = False    # page-locked batches, copied with non_blocking=True
    log_every: int = 1          # loss.item() every N steps: each call waits for the GPU
    compile: bool = False       # torch.compile of each transformer block
    checkpoint: bool = False    # activation checkpointing: keep each block's input, recompute the rest


def stage_config(stage: int, device: str, size: dict | None = None) -> Config:
    """The configuration of a stage: every fix up to and including `stage`."""
    if not 0 <= stage < len(STAGES):
        raise ValueError(f"stage {stage}: choose 0..{len(STAGES) - 1} ({', '.join(STAGES)})")
    size = size or (FULL if device == "cuda" else TINY)
    cfg = Config(**{k: size[k] for k in ("layers", "width", "heads", "seq", "vocab")})
    cfg.bf16 = stage >= 1
    cfg.sdpa = stage >= 2
    cfg.batch = size["big_batch"] if stage >= 3 else 1
    cfg.fused_adamw = stage >= 4
    if stage >= 5:
        cfg.workers, cfg.pin_memory = size["workers"], device == "cuda"
    cfg.log_every = 100 if stage >= 6 else 1
    cfg.compile = stage >= 7 and device == "cuda"  # inductor on a CPU needs a C++ toolchain and minutes
    return cfg


class SyntheticTokens(Dataset):
    """Token sequences made in this process, so nothing is downloaded: each token is the previous one plus a fixed
    stride (modulo the vocabulary), except that one in ten restarts at a random token. A model can learn it."""

    def __init__(self, seq: int, vocab: int, stride: int = 7, restart: float = 0.1, seed: int = 0):
        self.seq, self.vocab, self.stride, self.restart, self.seed = seq, vocab, stride, restart, seed

    def __len__(self):
        return 2**31 - 1

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 2**31 + i)
        pos = torch.arange(self.seq + 1)
        restart = torch.rand(self.seq + 1, generator=g) < self.restart
        restart[0] = True
        start = torch.randint(self.vocab, (self.seq + 1,), generator=g)
        last = torch.cummax(torch.where(restart, pos, 0), 0).values  # the latest restart at or before each position
        tokens = (start[last] + (pos - last) * self.stride) % self.vocab
        return tokens[:-1], tokens[1:]  # inputs and next-token targets


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a GELU MLP, each added to the residual stream."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.heads, self.sdpa = cfg.heads, cfg.sdpa
        self.norm1, self.norm2 = nn.LayerNorm(cfg.width, bias=False), nn.LayerNorm(cfg.width, bias=False)
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.proj = nn.Linear(cfg.width, cfg.width, bias=False)
        self.fc1 = nn.Linear(cfg.width, 4 * cfg.width, bias=False)
        self.fc2 = nn.Linear(4 * cfg.width, cfg.width, bias=False)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        if self.sdpa:  # one fused kernel (FlashAttention on recent GPUs): the T x T scores never reach memory
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # written out: a T x T score matrix per head, written, masked, normalized and read back
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            y = scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    """A GPT-style decoder: token and learned position embeddings, pre-norm blocks, the output layer tied to the
    token embedding. forward() returns the mean next-token cross-entropy."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.use_checkpoint = cfg.checkpoint
        self.embed = nn.Embedding(cfg.vocab, cfg.width)
        self.position = nn.Embedding(cfg.seq, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width, bias=False)
        for module in self.modules():  # GPT-2's initialization: N(0, 0.02) for every weight matrix
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens, targets):
        x = self.embed(tokens) + self.position(torch.arange(tokens.size(1), device=tokens.device))
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False) if self.use_checkpoint else block(x)
        logits = F.linear(self.norm(x), self.embed.weight)  # tied: the output layer is the token embedding
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def flops_per_token(model: GPT, cfg: Config) -> int:
    """Model FLOPs of training on one token, PaLM's definition (Chowdhery et al. 2022, Appendix B): 6·N for the
    weights' matmuls (forward 2·N, backward 4·N) plus 12·L·H·Q·T for attention's two matmuls (L layers, H heads of
    width Q, T tokens of context), the causal mask not discounted. N leaves out the position embedding, a lookup
    that does no matmul; the tied token embedding counts once, as the output layer's weight."""
    n = sum(p.numel() for p in model.parameters()) - model.position.weight.numel()
    return 6 * n + 12 * cfg.layers * cfg.width * cfg.seq  # H·Q = width


def make_batches(cfg: Config, data: SyntheticTokens):
    extra = {"prefetch_factor": 4} if cfg.workers else {}
    return iter(DataLoader(data, batch_size=cfg.batch, num_workers=cfg.workers, pin_memory=cfg.pin_memory, **extra))


def build(cfg: Config, device: str):
    """The model on `device` (its blocks compiled in place when cfg.compile) and its optimizer."""
    torch.manual_seed(0)
    with torch.device(device):  # parameters are made on the GPU directly: no 5 GB host copy
        model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=cfg.fused_adamw or None)
    if cfg.compile:
        for block in model.blocks:  # regional compilation: the 24 identical blocks share one compiled graph
            block.compile()
    return model, opt


def run(cfg: Config, device: str, seconds: float, warmup: int | None = None, data: SyntheticTokens | None = None,
        profile_steps: int = 0, profile_prefix: str = "profile") -> dict:
    """Train for `seconds` after a warm-up; return throughput, the measured window and, optionally, a profile.

    The warm-up is `warmup` steps (default 3 on a GPU, 1 on a CPU: worker start-up, cuBLAS kernel choice,
    compilation), then, on a GPU, one more second of training, so that utilization averaged by the driver over its
    own period starts the window busy."""
    began, cuda = time.monotonic(), device == "cuda"
    warmup = warmup or (3 if cuda else 1)
    data = data or SyntheticTokens(cfg.seq, cfg.vocab)
    batches = make_batches(cfg, data)
    model, opt = build(cfg, device)

    def step():
        tokens, targets = next(batches)
        tokens = tokens.to(device, non_blocking=cfg.pin_memory)  # pinned: the copy does not block the host
        targets = targets.to(device, non_blocking=cfg.pin_memory)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = model(tokens, targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        first_loss = step().item()
    start = time.monotonic()
    while cuda and time.monotonic() - start < 1.0:
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    steps = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        loss = step()
        steps += 1
        if steps % cfg.log_every == 0:
            loss.item()  # logging: the GPU must finish this step before Python gets the number
    sync()
    t1 = time.monotonic()
    last_loss = loss.item()  # the GPU is idle now: reading the loss costs nothing
    tokens_per_step = cfg.batch * cfg.seq
    result = {
        "config": asdict(cfg), "device": device, "steps": steps, "seconds": t1 - t0, "window": [t0, t1],
        "tokens_per_s": steps * tokens_per_step / (t1 - t0), "step_ms": (t1 - t0) / steps * 1e3,
        "params": sum(p.numel() for p in model.parameters()), "flops_per_token": flops_per_token(model, cfg),
        "loss_first": first_loss, "loss_last": last_loss,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    if profile_steps:
        result["profile"] = profile(step, sync, profile_steps, profile_prefix, cuda)
    result["wall_s"] = time.monotonic() - began  # building, warm-up (and compilation), the window, the profile
    return result


def profile(step, sync, steps: int, prefix: str, cuda: bool) -> dict:
    """Profile `steps` training steps: a Chrome trace (open it in https://ui.perfetto.dev) and the top operators."""
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync()
    trace, table = f"{prefix}.trace.json.gz", f"{prefix}.ops.txt"
    prof.export_chrome_trace(trace)
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    averages = prof.key_averages()
    with open(table, "w") as f:
        f.write(averages.table(sort_by=sort, row_limit=15))
    # Annotation ranges (ProfilerStep*, Optimizer.step#...) span many kernels and would count them again: skip them.
    operators = [e for e in averages
                 if not getattr(e, "is_user_annotation", False) and not e.key.startswith("ProfilerStep")]
    top = sorted(operators, key=lambda e: getattr(e, sort), reverse=True)[:10]
    return {"steps": steps, "trace": trace, "table": table, "sort": sort,
            "top_ops": [{"name": e.key, "calls": e.count, "self_device_ms": e.self_device_time_total / 1e3,
                         "self_cpu_ms": e.self_cpu_time_total / 1e3} for e in top]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, default=len(STAGES) - 1,
                        help=f"0..{len(STAGES) - 1}, cumulative (default: all fixes)")
    parser.add_argument("--batch", type=int, help="override the stage's sequences per step")
    parser.add_argument("--workers", type=int, help="override the stage's DataLoader workers")
    parser.add_argument("--checkpoint", action="store_true", help="activation checkpointing of every block")
    parser.add_argument("--seconds", type=float, help="measured seconds (default 10 on a GPU, 0.5 on a CPU)")
    parser.add_argument("--json", default="train.json", help="where to write the result (default train.json)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        cfg = stage_config(args.stage, device)
    except ValueError as err:
        parser.error(str(err))
    for name, value, least in (("batch", args.batch, 1), ("workers", args.workers, 0)):
        if value is not None:
            if value < least:
                parser.error(f"--{name} {value}: must be >= {least}")
            cfg = replace(cfg, **{name: value})
    cfg.checkpoint = args.checkpoint
    if args.seconds is not None and args.seconds <= 0:
        parser.error(f"--seconds {args.seconds}: must be > 0")
    r = run(cfg, device, args.seconds or (10.0 if device == "cuda" else 0.5))
    r["stage"] = STAGES[args.stage]
    print(f"stage {args.stage} ({STAGES[args.stage]}) on {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}:"
          f" {r['params'] / 1e6:,.1f} M parameters, {cfg.batch} x {cfg.seq} tokens per step, bf16 {cfg.bf16},"
          f" SDPA {cfg.sdpa}, fused AdamW {cfg.fused_adamw}, workers {cfg.workers}, .item() every {cfg.log_every},"
          f" compiled {cfg.compile}, checkpointing {cfg.checkpoint}")
    print(f"{r['tokens_per_s']:,.0f} tokens/s ({r['step_ms']:.1f} ms/step over {r['steps']} steps),"
          f" {r['tokens_per_s'] * r['flops_per_token'] / 1e12:.1f} TFLOP/s of model FLOPs,"
          f" loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}")
    with open(args.json, "w") as f:
        json.dump(r, f, indent=1)
    print(f"wrote {os.path.abspath(args.json)}")


if __name__ == "__main__":
    main()
