"""What this torch build's NCCL process group does on a timeout: the settings it logs at start-up.

    python 03_watchdog_defaults.py     # one GPU: a one-rank NCCL group, started with TORCH_CPP_LOG_LEVEL=INFO

ProcessGroupNCCL logs the values it read (or defaulted) for its watchdog, error handling and flight recorder when
a group starts. The program starts one, keeps those lines, and writes watchdog_defaults.json. Any variable you set
in the environment shows up with your value instead of the default.
"""
import json
import os
import re
import subprocess
import sys

import torch

# "ProcessGroupNCCL environments: NCCL version: 2.27.5, TORCH_NCCL_ASYNC_ERROR_HANDLING: 3, ..." and the
# heartbeat monitor's line, "... TORCH_NCCL_ENABLE_MONITORING (Whether to kill program when no watchdog heartbeat
# detected): 1, ..." (ProcessGroupNCCL.cpp).
SETTING = re.compile(r"(TORCH_[A-Z_]+|NCCL version)(?: \([^)]*\))?: ([^,]+)")
LOG_LINES = ("ProcessGroupNCCL environments", "ProcessGroupNCCL initialization options", "HeartbeatMonitor environments",
             "Watchdog environments")


def settings(log: str) -> dict:
    """{name: value} for every TORCH_* setting (and the NCCL version) in the start-up lines of a ProcessGroupNCCL log."""
    found = {}
    for line in log.splitlines():
        if any(marker in line for marker in LOG_LINES):
            for name, value in SETTING.findall(line.split("environments:", 1)[-1]):
                found.setdefault(name, value.strip())
            if "TIMEOUT(ms): " in line:
                found.setdefault("timeout_ms", line.split("TIMEOUT(ms): ", 1)[1].split(",")[0].strip())
    return found


def one_rank_group():
    import torch.distributed as dist
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1, device_id=torch.device("cuda", 0))
    x = torch.ones(1, device="cuda")
    dist.all_reduce(x)  # the communicator (and the watchdog) start at the first collective
    torch.cuda.synchronize()
    dist.destroy_process_group()


def main():
    if not torch.cuda.is_available():
        sys.exit("03_watchdog_defaults.py: needs a CUDA GPU (ProcessGroupNCCL logs these settings when it starts)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCH_NCCL_", "TORCH_FR_", "NCCL_DEBUG"))}
    env.update(TORCH_CPP_LOG_LEVEL="INFO", NCCL_NVLS_ENABLE="0")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], env=env, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode:
        sys.exit(f"03_watchdog_defaults.py: the one-rank NCCL group failed:\n{proc.stderr[-3000:]}")
    found = settings(proc.stderr + proc.stdout)
    if "TORCH_NCCL_ASYNC_ERROR_HANDLING" not in found:
        sys.exit("03_watchdog_defaults.py: no ProcessGroupNCCL settings in the log; its last lines:\n"
                 + "\n".join(proc.stderr.splitlines()[-15:]))
    print(f"torch {torch.__version__}, NCCL {found.get('NCCL version', '?')}: ProcessGroupNCCL's settings, none set")
    for name, value in found.items():
        print(f"  {name:52} {value}")
    with open("watchdog_defaults.json", "w") as f:
        json.dump({"torch": torch.__version__, "settings": found}, f, indent=1)


if __name__ == "__main__":
    one_rank_group() if sys.argv[1:] == ["--child"] else main()
