"""Data-parallel training (DDP) of a synthetic MLP; start it with torchrun, one process per GPU.

    torchrun --standalone --nproc-per-node 2 01_ddp_train.py                # NCCL on 2 GPUs
    torchrun --standalone --nproc-per-node 2 01_ddp_train.py --device cpu   # gloo on CPU

Each --per-rank-batch value is a phase: warm-up steps, then timed steps with the gradient all-reduce,
then the same steps under no_sync() (no all-reduce) to measure the compute-only step time, on all ranks at once
and then on each rank alone while the others wait (what running N GPUs at the same time costs, without any
communication). On a GPU each timed loop also reads the SM clock, power, temperature and clock event reasons
through NVML halfway through (nvidia-ml-py; skipped without it).
Every rank reports its samples/s; rank 0 prints them and writes the phases to --out as JSON.
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

PROG = os.path.basename(__file__)
# On a GPU, steps of ~15 ms: fixed per-step costs (launches, DDP hooks) stay small next to the math.
GPU_DEFAULTS = {"hidden": 4096, "layers": 8, "batch": 8192, "steps": 100, "warmup": 20}
CPU_DEFAULTS = {"hidden": 256, "layers": 4, "batch": 32, "steps": 20, "warmup": 3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                   help="auto: CUDA with NCCL when a GPU is visible, else CPU with gloo")
    p.add_argument("--per-rank-batch", type=int, nargs="+", help="samples per rank per step; one phase per value")
    p.add_argument("--hidden", type=int, help="width of the MLP")
    p.add_argument("--layers", type=int, help="hidden layers of the MLP")
    p.add_argument("--steps", type=int, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, help="untimed steps before each phase")
    p.add_argument("--bucket-cap-mb", type=float, default=25.0, help="DDP gradient bucket size in MiB (default 25)")
    p.add_argument("--cpu-threads", type=int, default=1, help="intra-op threads per CPU worker")
    p.add_argument("--out", default="ddp_train.json", help="JSON results, written by rank 0")
    return p.parse_args(argv)


def fail(message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(2)


def build_model(hidden, layers):
    blocks = []
    for _ in range(layers):
        blocks += [nn.Linear(hidden, hidden), nn.ReLU()]
    return nn.Sequential(*blocks, nn.Linear(hidden, 10))


# Bits of NVML's clock event reasons (why the SM clock is below its maximum), by the names nvml.h gives them.
CLOCK_EVENT_REASONS = {"gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4, "hw_slowdown": 0x8,
                       "sync_boost": 0x10, "sw_thermal_slowdown": 0x20, "hw_thermal_slowdown": 0x40,
                       "hw_power_brake_slowdown": 0x80}


def nvml_handle(device):
    """This rank's GPU in NVML (matched by UUID, whatever CUDA_VISIBLE_DEVICES says), or None on CPU/without NVML."""
    if device.type != "cuda":
        return None
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{torch.cuda.get_device_properties(device).uuid}")
    except Exception:  # NVML missing or too old: the timings stand without telemetry
        return None


def gpu_telemetry(handle):
    """SM clock (MHz), power (W), temperature (C) and active clock event reasons of a GPU, now."""
    if handle is None:
        return None
    import pynvml
    try:
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons",
                          getattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))(handle)
        return {"sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
                "temperature_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
                "clock_event_reasons": [name for name, bit in CLOCK_EVENT_REASONS.items() if reasons & bit]}
    except Exception:
        return None


def timed_steps(model, optimizer, x, y, steps, device, sync_grads, nvml=None):
    """Seconds per training step, last loss, and GPU telemetry read halfway; sync_grads=False skips the all-reduce."""
    loss_fn = nn.CrossEntropyLoss()
    telemetry = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for step in range(steps):
        if step == steps // 2:  # the GPU is busy with queued steps: a reading under load, sub-millisecond
            telemetry = gpu_telemetry(nvml)
        optimizer.zero_grad(set_to_none=True)
        # no_sync() must hold the forward pass too: DDP arms its gradient all-reduce in forward, so a forward
        # outside it still all-reduces in backward (PyTorch's DistributedDataParallel.no_sync documentation).
        with contextlib.nullcontext() if sync_grads else model.no_sync():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = loss_fn(model(x), y)
            loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps, loss.item(), telemetry


def checksum(model):
    """Sum of all parameters in float64: equal on every rank while DDP keeps the replicas in sync."""
    return math.fsum(p.detach().double().sum().item() for p in model.parameters())


def main(argv=None):
    args = parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        fail("start me with torchrun, e.g. torchrun --standalone --nproc-per-node 2 " + PROG)
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            fail(f"local rank {local_rank} has no GPU (this node shows {torch.cuda.device_count()}): "
                 "lower --nproc-per-node")
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
        torch.set_num_threads(args.cpu_threads)
    d = GPU_DEFAULTS if use_cuda else CPU_DEFAULTS
    hidden, layers = args.hidden or d["hidden"], args.layers or d["layers"]
    steps, warmup = args.steps or d["steps"], args.warmup if args.warmup is not None else d["warmup"]
    batches = args.per_rank_batch or [d["batch"]]
    if min(batches) < 1 or steps < 1 or warmup < 0:
        fail("--per-rank-batch and --steps must be >= 1, --warmup >= 0")

    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    model = DDP(build_model(hidden, layers).to(device), device_ids=[local_rank] if use_cuda else None,
                bucket_cap_mb=args.bucket_cap_mb)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    n_params = sum(p.numel() for p in model.parameters())
    generator = torch.Generator(device=device).manual_seed(1000 + rank)  # each rank sees different data
    nvml = nvml_handle(device)

    phases = []
    for batch in batches:
        x = torch.randn(batch, hidden, device=device, generator=generator)
        y = torch.randint(0, 10, (batch,), device=device, generator=generator)
        if warmup:
            timed_steps(model, optimizer, x, y, warmup, device, sync_grads=True)
        step_s, loss, gpu_sync = timed_steps(model, optimizer, x, y, steps, device, True, nvml)
        in_sync_sum = checksum(model)
        compute_s, _, gpu_compute = timed_steps(model, optimizer, x, y, steps, device, False, nvml)
        drifted_sum = checksum(model)  # different data per rank and no all-reduce: the replicas must now differ
        # The same compute-only steps on each rank alone, the others waiting at a barrier: compared with
        # compute_s, what running all ranks at once costs each of them (no collective runs in these loops).
        solo_s, gpu_solo = compute_s, gpu_compute
        if world > 1:
            for turn in range(world):
                dist.barrier()
                if rank == turn:
                    solo_s, _, gpu_solo = timed_steps(model, optimizer, x, y, steps, device, False, nvml)
            dist.barrier()
        # no_sync() steps let the replicas drift apart: put rank 0's weights back before the next phase.
        for p in model.parameters():
            dist.broadcast(p.data, src=0)
        mine = {"rank": rank, "step_s": step_s, "compute_only_step_s": compute_s, "solo_compute_step_s": solo_s,
                "samples_per_s": batch / step_s, "loss": loss, "checksum": in_sync_sum,
                "checksum_after_compute_only": drifted_sum,
                "device_name": torch.cuda.get_device_name(device) if use_cuda else "cpu",
                "gpu": {"sync": gpu_sync, "compute": gpu_compute, "solo": gpu_solo}}
        ranks = [None] * world
        dist.all_gather_object(ranks, mine)
        slowest = max(r["step_s"] for r in ranks)
        phases.append({
            "per_rank_batch": batch,
            "global_batch": batch * world,
            "steps": steps,
            "step_s": slowest,
            "compute_only_step_s": max(r["compute_only_step_s"] for r in ranks),
            "compute_only_mean_step_s": sum(r["compute_only_step_s"] for r in ranks) / world,
            "solo_compute_step_s": max(r["solo_compute_step_s"] for r in ranks),
            "samples_per_s_total": batch * world / slowest,  # the slowest rank sets the pace
            "replicas_in_sync": len({r["checksum"] for r in ranks}) == 1,
            # proof that the compute-only steps did not all-reduce: on 1 worker there is nothing to prove
            "compute_only_without_communication": world == 1
            or len({r["checksum_after_compute_only"] for r in ranks}) == world,
            "ranks": ranks,
        })

    if rank == 0:
        result = {"world_size": world, "backend": backend, "device": device.type,
                  "torch": torch.__version__, "parameters": n_params, "hidden": hidden, "layers": layers,
                  "gradient_bytes_per_step": n_params * 4, "bucket_cap_mb": args.bucket_cap_mb,
                  "parameter_bytes": [p.numel() * p.element_size() for p in model.parameters()],
                  "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                  "phases": phases}
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"{world} x {backend} on {ranks[0]['device_name']}, {n_params:,} parameters")
        for ph in phases:
            per_rank = ", ".join(f"rank {r['rank']} {r['samples_per_s']:,.0f}" for r in ph["ranks"])
            print(f"batch {ph['per_rank_batch']}/rank: {per_rank} samples/s; "
                  f"total {ph['samples_per_s_total']:,.0f} samples/s; step {ph['step_s'] * 1e3:.2f} ms "
                  f"(compute only {ph['compute_only_step_s'] * 1e3:.2f} ms); "
                  f"replicas in sync: {ph['replicas_in_sync']}")
            clocks = {kind: [r["gpu"][kind]["sm_clock_mhz"] for r in ph["ranks"] if r["gpu"][kind]]
                      for kind in ("compute", "solo")}
            print(f"  compute only per rank {min(r['compute_only_step_s'] for r in ph['ranks']) * 1e3:.2f}-"
                  f"{max(r['compute_only_step_s'] for r in ph['ranks']) * 1e3:.2f} ms; each rank alone "
                  f"{ph['solo_compute_step_s'] * 1e3:.2f} ms"
                  + (f"; SM clock {'/'.join(map(str, clocks['compute']))} MHz all at once, "
                     f"{'/'.join(map(str, clocks['solo']))} MHz alone" if clocks["compute"] else ""))
        print(f"wrote {args.out}")
    dist.barrier()  # let rank 0 finish writing before anyone tears the group down
    dist.destroy_process_group()
    in_sync = all(ph["replicas_in_sync"] for ph in phases)
    if not in_sync:
        print(f"{PROG}: model replicas differ across ranks after synchronised steps", file=sys.stderr)
    if backend == "gloo":
        # torch 2.13 + gloo: a DDP-wrapped gloo group outlives destroy_process_group(), and its threads
        # sometimes abort the interpreter's exit ("terminate called without an active exception").
        # Everything is written; leave without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if in_sync else 1)
    if not in_sync:
        sys.exit(1)


if __name__ == "__main__":
    main()
