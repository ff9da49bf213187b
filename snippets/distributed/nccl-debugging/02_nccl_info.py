"""What NCCL decided on this machine: one all-reduce on 2 GPUs with NCCL_DEBUG=INFO, the telling lines kept.

    python 02_nccl_info.py      # starts itself under torchrun on 2 GPUs

Prints the NCCL version, the transport between the GPUs, the channel count, the environment NCCL
read, and PyTorch's default NCCL timeout; writes nccl_info.json with every INFO line.
"""
import json
import os
import re
import subprocess
import sys

import torch
import torch.distributed as dist
from torch.distributed import constants

KEEP = re.compile(r"NCCL version|via P2P|via SHM|via NET|NVLS|nRanks|Channel 00|NCCL_\w+ set|Connected all|Init COMPLETE")


def worker():
    rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", rank))
    x = torch.full((1 << 20,), float(rank + 1), device="cuda")
    dist.all_reduce(x)
    assert x[0].item() == sum(range(1, dist.get_world_size() + 1)), "all-reduce returned a wrong sum"
    if rank == 0:
        print(f"torch default NCCL timeout: {constants.default_pg_nccl_timeout}", flush=True)
    dist.destroy_process_group()


def launch():
    if torch.cuda.device_count() < 2:
        sys.exit(f"02_nccl_info.py: needs 2 GPUs, this machine shows {torch.cuda.device_count()}")
    env = dict(os.environ, NCCL_DEBUG="INFO", NCCL_DEBUG_SUBSYS="INIT,GRAPH,ENV", NCCL_NVLS_ENABLE="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", os.path.abspath(__file__)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    lines = (proc.stdout + proc.stderr).splitlines()
    info = [ln for ln in lines if "NCCL INFO" in ln or ln.startswith("NCCL version")]
    if proc.returncode:
        sys.exit(f"02_nccl_info.py: torchrun exited with {proc.returncode}:\n" + "\n".join(lines[-30:]))
    kept, seen = [], set()
    for ln in info:
        text = ln.split("NCCL INFO", 1)[-1].strip()
        if KEEP.search(ln) and text not in seen:
            seen.add(text)
            kept.append(ln.strip())
    print(f"{len(info)} NCCL INFO lines from 2 ranks; the telling ones:")
    print("\n".join(kept[:40]))
    print(next((ln for ln in lines if "torch default NCCL timeout" in ln), "torch default NCCL timeout: not printed"))
    with open("nccl_info.json", "w") as f:
        json.dump({"kept": kept, "all_info": info}, f, indent=2)
    print("wrote nccl_info.json")


if __name__ == "__main__":
    worker() if "LOCAL_RANK" in os.environ else launch()
