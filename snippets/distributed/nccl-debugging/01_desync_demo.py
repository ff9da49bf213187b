"""Two classic distributed bugs, named by TORCH_DISTRIBUTED_DEBUG=DETAIL (2 gloo ranks, CPU).

    python 01_desync_demo.py      # starts itself under torchrun with the debug variable set

A: the ranks all-reduce tensors of different shapes (a desync): DETAIL names both shapes.
B: rank 1 never joins an all-reduce (stuck elsewhere): DETAIL's monitored barrier, bounded by the group's 2 s
timeout, names rank 1 in rank 0's error. The timeout alone names no rank (gloo: "Timed out waiting ... for recv";
NCCL: the watchdog ends the process). The same variables work with NCCL on GPUs.
"""
import datetime
import os
import subprocess
import sys
import time

import torch
import torch.distributed as dist


def say(line: str):
    """One write per line: two ranks share the terminal, and print() writes the text and the newline separately."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def worker():
    dist.init_process_group("gloo")  # default timeout: generous, so start-up on a busy machine is safe
    short = dist.new_group(timeout=datetime.timedelta(seconds=2))  # the group demo B waits on
    rank = dist.get_rank()
    try:  # A: shapes differ between ranks
        dist.all_reduce(torch.ones(4 if rank == 0 else 5))
        say(f"rank {rank} A: no error")
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        say(f"rank {rank} A: caught: {first[:first.index('TensorShape') + 20]}...")
    try:  # B: rank 1 is busy elsewhere and never calls the collective
        if rank == 1:
            time.sleep(3)
        else:
            start = time.perf_counter()
            dist.all_reduce(torch.ones(3), group=short)
        say(f"rank {rank} B: no error")
    except RuntimeError as err:
        say(f"rank {rank} B: caught after {time.perf_counter() - start:.1f} s: {str(err).splitlines()[0]}")
    dist.destroy_process_group()


def launch():
    env = dict(os.environ, TORCH_DISTRIBUTED_DEBUG="DETAIL", OMP_NUM_THREADS="1", NCCL_NVLS_ENABLE="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", os.path.abspath(__file__)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    lines = sorted(ln for ln in proc.stdout.splitlines() if ln.startswith("rank "))
    print("\n".join(lines))
    caught = {ln[:9] for ln in lines if "caught" in ln}
    named = any(ln.startswith("rank 0 B: caught") and "Ranks 1 failed" in ln for ln in lines)
    if proc.returncode or caught != {"rank 0 A:", "rank 1 A:", "rank 0 B:"} or not named:
        sys.exit(f"01_desync_demo.py: expected both ranks to catch A and rank 0 to catch B naming rank 1, got"
                 f" {sorted(caught)}"
                 f" (torchrun exit {proc.returncode}):\n{proc.stderr[-2000:]}")


if __name__ == "__main__":
    worker() if "LOCAL_RANK" in os.environ else launch()
