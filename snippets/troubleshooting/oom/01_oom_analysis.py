"""Provoke real CUDA out-of-memory errors and read them the way the OOM runbook does.

1. Too big: ask for more than the card has free -> OutOfMemoryError; read allocated vs reserved.
2. Fragmented: pin holes in the caching allocator's segments, then ask for less than the total free-but-reserved
   memory -> OutOfMemoryError although "reserved but unallocated" would cover it.
3. The same pattern in a child process with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.
A memory snapshot (torch.cuda.memory._record_memory_history) of step 2 is summarised: its largest allocations.
Writes oom_analysis.json. Plain torch allocations only; everything is freed before it exits.
Needs: pip install torch (a CUDA build), a GPU with >= 16 GiB free
"""
import gc
import json
import os
import pickle
import subprocess
import sys

import torch

GiB, MiB = 2**30, 2**20
HOLE_MIB = 4        # 1-10 MiB requests share 20 MiB segments in the caching allocator: 5 per segment
ARENA_GIB = 8       # the fragmentation demo works inside this much free memory


def stats() -> dict:
    s = torch.cuda.memory_stats()
    return {"allocated_gib": s["allocated_bytes.all.current"] / GiB, "reserved_gib": s["reserved_bytes.all.current"] / GiB,
            "segments": s["segment.all.current"], "oom_count": s["num_ooms"]}


def too_big() -> dict:
    free, total = torch.cuda.mem_get_info()
    ask = free + 2 * GiB
    try:
        torch.empty(ask, dtype=torch.uint8, device="cuda")
        return {"oom": False}
    except torch.OutOfMemoryError as err:
        message = str(err).splitlines()[0]
    return {"oom": True, "asked_gib": ask / GiB, "free_gib": free / GiB, "total_gib": total / GiB,
            "message": message, **stats()}


# --8<-- [start:fragment]
def fragment(snapshot: str | None = None) -> dict:
    """Fill ARENA_GIB with 4 MiB tensors, free 4 of every 5, then ask for 90 % of the freed total at once.

    With `snapshot`, the allocator's state is dumped right after the attempt, while the holes are still pinned."""
    free, _ = torch.cuda.mem_get_info()
    filler = torch.empty(free - ARENA_GIB * GiB, dtype=torch.uint8, device="cuda")  # leave only the arena free
    count = int(ARENA_GIB * GiB * 0.95) // (HOLE_MIB * MiB)
    blocks = [torch.empty(HOLE_MIB * MiB, dtype=torch.uint8, device="cuda") for _ in range(count)]
    keep = blocks[::5]
    del blocks  # each 20 MiB segment keeps one live 4 MiB tensor: 16 MiB holes it cannot give back
    before = stats()
    hole_gib = before["reserved_gib"] - before["allocated_gib"]
    ask = int(hole_gib * 0.9 * GiB)
    try:
        big = torch.empty(ask, dtype=torch.uint8, device="cuda")
        result = {"oom": False, "outcome": "no OOM: it fit"}
        del big
    except torch.OutOfMemoryError as err:
        result = {"oom": True, "outcome": "an OOM", "message": str(err).splitlines()[0]}
    if snapshot:
        torch.cuda.memory._dump_snapshot(snapshot)
    result.update(asked_gib=ask / GiB, reserved_unallocated_gib=hole_gib, before=before,
                  device_free_gib=torch.cuda.mem_get_info()[0] / GiB)
    del keep, filler
    return result
# --8<-- [end:fragment]


def snapshot_summary(path: str, top: int = 5) -> dict:
    with open(path, "rb") as f:
        snap = pickle.load(f)
    blocks = [b for seg in snap["segments"] for b in seg["blocks"] if b["state"] == "active_allocated"]
    by_site = {}
    for b in blocks:
        frame = next((fr for fr in b.get("frames", []) if fr["filename"].endswith("01_oom_analysis.py")), None)
        site = f"line {frame['line']} ({frame['name']})" if frame else "outside this file"
        entry = by_site.setdefault(site, {"blocks": 0, "gib": 0.0})
        entry["blocks"] += 1
        entry["gib"] += b["size"] / GiB
    ranked = sorted(by_site.items(), key=lambda kv: -kv[1]["gib"])[:top]
    return {"segments": len(snap["segments"]), "active_blocks": len(blocks),
            "top_sites": [{"site": site, **entry} for site, entry in ranked]}


def child() -> None:
    print(json.dumps(fragment()))


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("01_oom_analysis.py: no CUDA GPU visible to torch (a CPU-only wheel, or CUDA_VISIBLE_DEVICES)")
    result = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__}
    result["too_big"] = too_big()
    print(f"1. asked {result['too_big']['asked_gib']:.1f} GiB with {result['too_big']['free_gib']:.1f} GiB free: "
          f"{result['too_big']['message'][:160]}")
    torch.cuda.memory._record_memory_history(max_entries=100_000)
    try:
        result["fragmented"] = fragment(snapshot="oom_snapshot.pickle")
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    snapshot_taken = os.path.exists("oom_snapshot.pickle")
    f = result["fragmented"]
    print(f"2. {f['reserved_unallocated_gib']:.2f} GiB reserved but unallocated in {f['before']['segments']} "
          f"segments; asked {f['asked_gib']:.2f} GiB at once: {'OOM' if f['oom'] else 'fit'}")
    if snapshot_taken:
        result["snapshot"] = snapshot_summary("oom_snapshot.pickle")
        os.remove("oom_snapshot.pickle")  # large; the summary is what the runbook reads
        print(f"   snapshot: {result['snapshot']['segments']} segments, top sites {result['snapshot']['top_sites'][:2]}")
    gc.collect()
    torch.cuda.empty_cache()
    env = {**os.environ, "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    proc = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, timeout=120)
    result["expandable"] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {
        "error": proc.stderr[-400:]}
    e = result["expandable"]
    if "oom" in e:
        print(f"3. expandable_segments: asked {e['asked_gib']:.2f} GiB with {e['reserved_unallocated_gib']:.2f} GiB"
              f" reserved but unallocated: {'OOM' if e['oom'] else 'fit'}")
    print(torch.cuda.memory_summary(abbreviated=True).splitlines()[0])
    with open("oom_analysis.json", "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)


if __name__ == "__main__":
    child() if sys.argv[1:] == ["--child"] else main()
