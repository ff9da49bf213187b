"""Lab 2 reference solution: the starter's training loop with each fix behind a switch, applied in stages.

    python 02_train.py                   # stage 5: every fix
    python 02_train.py --stage 0         # the starter's behaviour
    python 02_train.py --stage 3 --batch-size 4096 --seconds 20

Stages are cumulative: 0 baseline, 1 bigger batch, 2 input pipeline (a batch per dataset read, uint8 on the
wire, worker processes, pinned memory, non-blocking copies), 3 bf16 autocast, 4 no per-step sync, 5 torch.compile
and the fused AdamW (CUDA only). 04_experiment.py imports this file and runs every stage under measurement.
"""
import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

# Model and data sizes. FULL keeps an H100 busy; TINY lets the same code run on a CPU in seconds.
FULL = dict(samples=65536, features=1024, width=4096, depth=8, classes=1000, big_batch=8192, workers=4)
TINY = dict(samples=4096, features=64, width=64, depth=2, classes=10, big_batch=512, workers=2)
STAGES = ["baseline", "bigger batch", "input pipeline", "bf16 autocast", "no per-step sync", "torch.compile"]


@dataclass
class Config:
    samples: int
    features: int
    width: int
    depth: int
    classes: int
    batch_size: int = 32
    workers: int = 0           # DataLoader worker processes (0: load in the training process, between steps)
    batched: bool = False      # read a whole batch per dataset call; ship uint8, normalize on the device
    pin_memory: bool = False   # page-locked host batches, so the copy can be non-blocking
    bf16: bool = False         # bf16 autocast
    log_every: int = 1         # loss.item() every N steps: each call waits for the GPU
    compile: bool = False      # torch.compile(model) and the fused AdamW


def stage_config(stage: int, device: str, size: dict | None = None) -> Config:
    """The configuration of a stage: every fix up to and including `stage`."""
    if not 0 <= stage < len(STAGES):
        raise ValueError(f"stage {stage}: choose 0..{len(STAGES) - 1} ({', '.join(STAGES)})")
    size = size or (FULL if device == "cuda" else TINY)
    cfg = Config(**{k: size[k] for k in ("samples", "features", "width", "depth", "classes")})
    if stage >= 1:
        cfg.batch_size = size["big_batch"]
    if stage >= 2:
        cfg.workers, cfg.batched, cfg.pin_memory = size["workers"], True, device == "cuda"
    if stage >= 3:
        cfg.bf16 = True
    if stage >= 4:
        cfg.log_every = 100
    if stage >= 5:
        cfg.compile = device == "cuda"  # inductor on CPU needs a C++ toolchain and minutes; this lab compiles on GPUs
    return cfg


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels.float() - 127.5) / 127.5


class SyntheticImages(Dataset):
    """uint8 'images' made in this process; labels come from a fixed random linear teacher, so the MLP can learn."""

    def __init__(self, samples: int, features: int, classes: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.pixels = torch.randint(0, 256, (samples, features), dtype=torch.uint8, generator=g)
        seen = min(features, 64)  # the teacher looks at the first 64 pixels: cheap to label, still learnable
        teacher = torch.randn(seen, classes, generator=g)
        self.labels = (normalize(self.pixels[:, :seen]) @ teacher).argmax(1)
        self.raw = False  # True: return uint8 pixels and let the training loop normalize them on the device

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):  # one index (per-sample loading) or a list of them (a batch sampler)
        pixels = self.pixels[index]
        return (pixels if self.raw else normalize(pixels)), self.labels[index]


def mlp(features: int, width: int, depth: int, classes: int) -> nn.Sequential:
    layers = [nn.Linear(features, width), nn.GELU()]
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def train_flops_per_sample(model: nn.Module) -> int:
    """Matmul FLOPs of one training sample: forward 2·in·out per Linear, backward twice that, except that
    the first layer computes no gradient for its input (the data). Elementwise work is not counted."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    forward = sum(2 * m.in_features * m.out_features for m in linears)
    first = 2 * linears[0].in_features * linears[0].out_features
    return 3 * forward - first


def make_loader(data: SyntheticImages, cfg: Config) -> DataLoader:
    # Sampling with replacement never ends an epoch, so a timed window never waits for workers to restart.
    sampler = RandomSampler(data, replacement=True, num_samples=2**62)
    extra = {"num_workers": cfg.workers, "pin_memory": cfg.pin_memory}
    if cfg.batched:
        data.raw = True
        return DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, cfg.batch_size, drop_last=True), **extra)
    data.raw = False
    return DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, **extra)


def run(cfg: Config, device: str, seconds: float, warmup: int = 3, data: SyntheticImages | None = None,
        profile_steps: int = 0, profile_prefix: str = "profile") -> dict:
    """Train for `seconds` after a warm-up; return throughput, the measured window and, optionally, a profile.

    The warm-up is `warmup` steps (worker start-up, cuBLAS kernel choice, compilation), then, on a GPU, one more
    second of training, so that utilization averaged by the driver over its own period starts the window busy."""
    cuda = device == "cuda"
    torch.manual_seed(0)
    data = data or SyntheticImages(cfg.samples, cfg.features, cfg.classes)
    batches = iter(make_loader(data, cfg))
    model = mlp(cfg.features, cfg.width, cfg.depth, cfg.classes).to(device)
    flops_per_sample = train_flops_per_sample(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=cfg.compile or None)
    forward = torch.compile(model) if cfg.compile else model

    def step():
        x, y = next(batches)
        x, y = x.to(device, non_blocking=cfg.pin_memory), y.to(device, non_blocking=cfg.pin_memory)
        if cfg.batched:
            x = normalize(x)  # uint8 -> float on the device: a quarter of the bytes crossed PCIe
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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
    steps, last_loss = 0, first_loss
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        loss = step()
        steps += 1
        if steps % cfg.log_every == 0:
            last_loss = loss.item()  # the GPU must finish this step before Python gets the number
    sync()
    t1 = time.monotonic()
    result = {
        "config": asdict(cfg), "device": device, "steps": steps, "seconds": t1 - t0,
        "samples_per_s": steps * cfg.batch_size / (t1 - t0), "step_ms": (t1 - t0) / steps * 1e3,
        "window": [t0, t1], "params": sum(p.numel() for p in model.parameters()),
        "flops_per_sample": flops_per_sample, "loss_first": first_loss, "loss_last": last_loss,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }
    if profile_steps:
        result["profile"] = profile(step, sync, profile_steps, profile_prefix, cuda)
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
    operators = [e for e in averages if not getattr(e, "is_user_annotation", False) and not e.key.startswith("ProfilerStep")]
    top = sorted(operators, key=lambda e: getattr(e, sort), reverse=True)[:10]
    return {"steps": steps, "trace": trace, "table": table, "sort": sort,
            "top_ops": [{"name": e.key, "calls": e.count, "self_device_ms": e.self_device_time_total / 1e3,
                         "self_cpu_ms": e.self_cpu_time_total / 1e3} for e in top]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, default=len(STAGES) - 1, help="0..5, cumulative (default: all fixes)")
    parser.add_argument("--batch-size", type=int, help="override the stage's batch size")
    parser.add_argument("--workers", type=int, help="override the stage's DataLoader workers")
    parser.add_argument("--seconds", type=float, help="measured seconds (default 10 on a GPU, 0.5 on a CPU)")
    parser.add_argument("--json", default="train.json", help="where to write the result (default train.json)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        cfg = stage_config(args.stage, device)
    except ValueError as err:
        parser.error(str(err))
    for name, value in (("batch_size", args.batch_size), ("workers", args.workers)):
        if value is not None:
            if value < (1 if name == "batch_size" else 0):
                parser.error(f"--{name.replace('_', '-')} {value}: must be {'>= 1' if name == 'batch_size' else '>= 0'}")
            cfg = replace(cfg, **{name: value})
    seconds = args.seconds or (10.0 if device == "cuda" else 0.5)
    r = run(cfg, device, seconds)
    r["stage"] = STAGES[args.stage]
    print(f"stage {args.stage} ({STAGES[args.stage]}) on {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}:"
          f" batch {cfg.batch_size}, workers {cfg.workers}, bf16 {cfg.bf16}, .item() every {cfg.log_every} step(s),"
          f" compiled {cfg.compile}")
    print(f"{r['samples_per_s']:,.0f} samples/s ({r['step_ms']:.2f} ms/step over {r['steps']} steps),"
          f" {r['samples_per_s'] * r['flops_per_sample'] / 1e12:.2f} TFLOP/s of model math,"
          f" loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}")
    with open(args.json, "w") as f:
        json.dump(r, f, indent=1)
    print(f"wrote {os.path.abspath(args.json)}")


if __name__ == "__main__":
    main()
