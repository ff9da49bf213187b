"""Which host-to-device copies make the host wait, and for what?

Each copy is issued right after a kernel that keeps the GPU busy for 20 ms, the way a training loop issues the
next batch's copy while the current step still runs. The program times how long the `.to("cuda")` call holds the
host, for a small (64 KiB) and a large (64 MiB) tensor, from pageable and from pinned memory, with
non_blocking=False and True. A call that holds the host for about the queued kernel's 20 ms waited for the GPU to
drain its queue; one that returns in microseconds let the host run ahead. Writes nonblocking.json.
On a CPU (no CUDA) it runs the same code on tiny tensors, where every copy is synchronous: a smoke test only.
"""
import json
import statistics
import time

import torch

QUEUED_MS = 20.0  # how long the kernel queued before each copy keeps the GPU busy
SIZES = {"64 KiB": 64 * 2**10, "64 MiB": 64 * 2**20}
CASES = {  # name: (pinned source, non_blocking, queue a kernel first)
    "pageable, non_blocking=False, nothing queued": (False, False, False),
    "pageable, non_blocking=False": (False, False, True),
    "pageable, non_blocking=True": (False, True, True),
    "pinned, non_blocking=False": (True, False, True),
    "pinned, non_blocking=True": (True, True, True),
}


def spin_cycles(ms: float) -> int:
    """Clock cycles torch.cuda._sleep needs to keep the GPU busy for `ms` (measured: the clock varies by card)."""
    probe = 10_000_000
    torch.cuda._sleep(probe)  # warm-up
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(probe)
    end.record()
    end.synchronize()
    return int(probe * ms / start.elapsed_time(end))


def host_ms(src: torch.Tensor, non_blocking: bool, cycles: int, reps: int, device: str) -> float:
    """Median time the `.to(device)` call holds the host, in ms."""
    times = []
    for _ in range(reps):
        # --8<-- [start:timed]
        if device == "cuda":
            torch.cuda.synchronize()
            if cycles:
                torch.cuda._sleep(cycles)  # the GPU is now busy for QUEUED_MS
        t0 = time.perf_counter()
        dst = src.to(device, non_blocking=non_blocking)
        times.append((time.perf_counter() - t0) * 1e3)  # how long the call held the host
        # --8<-- [end:timed]
        if device == "cuda":
            torch.cuda.synchronize()
        assert torch.equal(dst[-8:].cpu(), src[-8:]), "the copy is wrong"
    return statistics.median(times)


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = SIZES if device == "cuda" else {"4 KiB": 4 * 2**10}
    cycles = spin_cycles(QUEUED_MS) if device == "cuda" else 0
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    results, waited = {}, {}
    for label, nbytes in sizes.items():
        pageable = torch.rand(nbytes // 4)
        pinned = pageable.pin_memory() if device == "cuda" else None
        results[label], waited[label] = {}, {}
        for case, (use_pinned, non_blocking, queue) in CASES.items():
            if use_pinned and pinned is None:
                continue
            src = pinned if use_pinned else pageable
            ms = host_ms(src, non_blocking, cycles if queue else 0, reps=7 if device == "cuda" else 2, device=device)
            results[label][case] = ms
            waited[label][case] = device == "cuda" and queue and ms > QUEUED_MS / 2
    print(f"{name}: time the .to() call holds the host (median), each copy issued behind a {QUEUED_MS:.0f} ms kernel"
          if device == "cuda" else "CPU: no CUDA device, so every copy is synchronous (a smoke test of the program)")
    for label in results:
        print(f"  {label}")
        for case, ms in results[label].items():
            verdict = "waited for the queued kernel" if waited[label][case] else ""
            print(f"    {case:46} {ms:9.3f} ms  {verdict}")
    with open("nonblocking.json", "w") as f:
        json.dump({"device": name, "queued_kernel_ms": QUEUED_MS, "host_ms": results, "waited_for_queue": waited}, f,
                  indent=1)


if __name__ == "__main__":
    main()
