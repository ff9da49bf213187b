"""All-reduce benchmark: time, algorithm bandwidth and bus bandwidth per message size, results verified.

    python 02_allreduce_bench.py                 # starts itself under torchrun: every GPU (NCCL), or 2 CPU ranks (gloo)
    python 02_allreduce_bench.py --ranks 4 --device cpu
    python 02_allreduce_bench.py --inject-fault  # corrupts one element on the last rank: must exit 1

Sizes run from 1 KiB to 1 GiB on GPUs, 1 KiB to 1 MiB on CPU, by factors of 4 (float32 payloads).
Bandwidths follow nccl-tests: algbw = bytes / time, busbw = algbw * 2(n-1)/n for all-reduce.
Rank 0 prints a table and writes allreduce_bench.json; any wrong element makes every rank exit 1.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch
import torch.distributed as dist

PROG = os.path.basename(__file__)
KiB, GiB = 2**10, 2**30


def algbw_gbps(nbytes, seconds):
    """Algorithm bandwidth in GB/s (10**9 bytes/s): the payload size over the time of one operation."""
    return nbytes / seconds / 1e9


def busbw_factor(world_size, op="all_reduce"):
    """nccl-tests' factor from algbw to busbw: the share of the payload each rank's link must carry."""
    n = world_size
    factors = {"all_reduce": 2 * (n - 1) / n, "reduce_scatter": (n - 1) / n, "all_gather": (n - 1) / n,
               "all_to_all": (n - 1) / n, "broadcast": 1.0, "reduce": 1.0}
    return factors[op]


def sizes(max_bytes, min_bytes=KiB, factor=4):
    out, size = [], min_bytes
    while size <= max_bytes:
        out.append(size)
        size *= factor
    return out


def fill(numel, rank, device):
    """Rank r contributes (r + 1) + (i mod 251) at index i: exact in float32, and a misplaced chunk shows."""
    return (torch.arange(numel, device=device) % 251).float() + (rank + 1)


def count_wrong(result, world_size):
    """Elements of a SUM all-reduce of fill() that differ from the exact answer n(n+1)/2 + n*(i mod 251)."""
    i = torch.arange(result.numel(), device=result.device)
    expected = (i % 251).float() * world_size + world_size * (world_size + 1) / 2
    return int((result != expected).sum().item())


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--ranks", type=int, help="processes to start (default: every GPU, or 2 on CPU)")
    p.add_argument("--max-bytes", type=int, help="largest message (default 1 GiB on GPU, 1 MiB on CPU)")
    p.add_argument("--iters", type=int, help="timed all-reduces per size (default 20 on GPU, 5 on CPU)")
    p.add_argument("--warmup", type=int, default=3, help="untimed all-reduces per size")
    p.add_argument("--inject-fault", action="store_true",
                   help="add 1 to one element of the last rank's result, to prove verification catches it")
    p.add_argument("--out", default="allreduce_bench.json")
    return p.parse_args(argv)


def launch(args):
    """Not under torchrun yet: start `torchrun --standalone` on this same file with the worker's options."""
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    available = torch.cuda.device_count() if use_cuda else os.cpu_count()
    nproc = args.ranks or (available if use_cuda else 2)
    if nproc < 2:
        sys.exit(f"{PROG}: an all-reduce needs at least 2 ranks, got --ranks {nproc} ({available} GPU(s) visible)")
    if use_cuda and nproc > available:
        sys.exit(f"{PROG}: --ranks {nproc} but only {available} GPU(s) are visible: lower --ranks")
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", OMP_NUM_THREADS="1")  # NVLink SHARP off (see the page)
    worker_args = ["--device", "cuda" if use_cuda else "cpu", "--warmup", str(args.warmup), "--out", args.out]
    worker_args += ["--max-bytes", str(args.max_bytes)] if args.max_bytes else []
    worker_args += ["--iters", str(args.iters)] if args.iters else []
    worker_args += ["--inject-fault"] if args.inject_fault else []
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           os.path.abspath(__file__), *worker_args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    print(proc.stdout, end="")
    if proc.returncode:
        errors = [ln for ln in proc.stderr.splitlines() if re.match(r"\s*\w+(Error|Exception): ", ln)]
        print("\n".join(errors[-5:]) or proc.stderr[-3000:], file=sys.stderr)
        sys.exit(f"{PROG}: torchrun exited with {proc.returncode}")


def worker(args):
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    local_rank = int(os.environ["LOCAL_RANK"])
    if use_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, n = dist.get_rank(), dist.get_world_size()
    max_bytes = args.max_bytes or (GiB if use_cuda else 2**20)
    iters = args.iters or (20 if use_cuda else 5)
    sync = torch.cuda.synchronize if use_cuda else (lambda: None)

    rows = []
    for nbytes in sizes(max_bytes):
        numel = nbytes // 4
        buf = fill(numel, rank, device)
        for _ in range(args.warmup):
            dist.all_reduce(buf)
        dist.barrier()
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buf)  # values grow; only the timing matters here
        sync()
        elapsed = torch.tensor([(time.perf_counter() - start) / iters], dtype=torch.float64, device=device)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank's time is the collective's time

        buf = fill(numel, rank, device)  # a fresh payload for the one verified all-reduce
        dist.all_reduce(buf)
        if args.inject_fault and rank == n - 1:
            buf[numel // 2] += 1
        wrong = torch.tensor([count_wrong(buf, n)], device=device)
        dist.all_reduce(wrong)  # every rank learns the total, so every rank exits the same way
        seconds = elapsed.item()
        algbw = algbw_gbps(nbytes, seconds)
        rows.append({"bytes": nbytes, "time_us": seconds * 1e6, "algbw_gbps": algbw,
                     "busbw_gbps": algbw * busbw_factor(n), "wrong_elements": int(wrong.item())})
        del buf

    ok = all(r["wrong_elements"] == 0 for r in rows)
    if rank == 0:
        name = torch.cuda.get_device_name(device) if use_cuda else "cpu"
        nccl = ".".join(map(str, torch.cuda.nccl.version())) if use_cuda else None
        print(f"all_reduce (sum, float32) on {n} x {name}, {'NCCL ' + nccl if use_cuda else 'gloo'}; "
              f"time = slowest rank, mean of {iters}")
        print(f"{'size':>10} {'time (us)':>11} {'algbw (GB/s)':>13} {'busbw (GB/s)':>13}  result")
        for r in rows:
            verdict = "ok" if r["wrong_elements"] == 0 else f"WRONG: {r['wrong_elements']} element(s)"
            print(f"{human(r['bytes']):>10} {r['time_us']:>11.1f} {r['algbw_gbps']:>13.3f} "
                  f"{r['busbw_gbps']:>13.3f}  {verdict}")
        with open(args.out, "w") as f:
            json.dump({"op": "all_reduce", "dtype": "float32", "world_size": n, "device": name,
                       "backend": "nccl" if use_cuda else "gloo", "nccl": nccl, "torch": torch.__version__,
                       "busbw_factor": busbw_factor(n), "iters": iters, "correct": ok, "rows": rows,
                       "chart": {"title": f"all_reduce on {n} x {name}",
                                 "x": {"label": "message size", "unit": "bytes", "log": True},
                                 "y": {"label": "bandwidth", "unit": "GB/s"},
                                 "series": {k: [[r["bytes"], r[f"{k}_gbps"]] for r in rows] for k in ("busbw", "algbw")}},
                       }, f, indent=2)
        print(f"wrote {args.out}" + ("" if ok else "; the all-reduce returned WRONG values"))
    dist.barrier()
    dist.destroy_process_group()
    if not ok:
        sys.exit(1)


def human(nbytes):
    for unit, scale in (("GiB", GiB), ("MiB", 2**20), ("KiB", KiB)):
        if nbytes >= scale:
            return f"{nbytes / scale:g} {unit}"
    return f"{nbytes} B"


if __name__ == "__main__":
    arguments = parse_args()
    worker(arguments) if "LOCAL_RANK" in os.environ else launch(arguments)
