"""GPU slots for blocks: a block that needs N GPUs holds N of them alone, across every pytest worker on the host.

Each visible device (a GPU or a MIG instance, see requirements.Device) has a lock file; a block takes the locks
of the devices it runs on with fcntl.flock, so xdist workers never run two GPU blocks on one GPU at once, while
CPU blocks (which take no lock) keep running in parallel. Locks are tried without blocking under one scheduler
lock and all released when a block cannot get its N, so a gpus>=2 block never deadlocks against two 1-GPU
blocks; workers start their search at different GPUs, which spreads blocks over several GPUs. The kernel drops
a dead worker's locks. The child gets CUDA_VISIBLE_DEVICES naming exactly its devices by UUID, chosen from what
the outer CUDA_VISIBLE_DEVICES already allowed (requirements.detect honours it).
"""
import contextlib
import fcntl
import os
import re
import tempfile
import time
from pathlib import Path

LOCK_DIR_ENV = "HANDBOOK_GPU_LOCK_DIR"
POLL_SECONDS = 0.05


def lock_dir() -> Path:
    path = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "handbook-gpu-locks")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock_name(uuid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", uuid) + ".lock"


def worker_number() -> int:
    """gw3 -> 3 (0 outside xdist): where this worker starts looking for a free GPU."""
    match = re.search(r"\d+$", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group()) if match else 0


@contextlib.contextmanager
def hold(devices, count: int, start: int | None = None):
    """Wait until `count` of `devices` are free, hold them for the block, yield them (in index order)."""
    if count > len(devices):
        raise ValueError(f"{count} GPU(s) asked for, {len(devices)} visible")
    directory = lock_dir()
    start = worker_number() if start is None else start
    order = [devices[(start + i) % len(devices)] for i in range(len(devices))]
    held: dict = {}
    try:
        while True:
            with open(directory / "scheduler.lock", "a+") as scheduler:
                fcntl.flock(scheduler, fcntl.LOCK_EX)
                for device in order:
                    if len(held) == count:
                        break
                    f = open(directory / _lock_name(device.uuid), "a+")
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        f.close()
                        continue
                    held[device] = f
                if len(held) < count:  # give back a partial set: whoever holds the rest may need ours
                    _release(held)
            if len(held) == count:
                break
            time.sleep(POLL_SECONDS)
        yield [d for d in devices if d in held]
    finally:
        _release(held)


def _release(held: dict) -> None:
    for f in held.values():
        f.close()  # closing the file drops its flock
    held.clear()


def pinned_env(devices, base: dict | None = None) -> dict:
    """The environment for a block that runs on exactly `devices`."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(d.uuid for d in devices)
    return env
