"""`--shard I/N`: split the collected tests into N parts of about equal running time, every test in exactly one.

A block's weight is how long it took when it was recorded (`wall_seconds` of its recording), else a default:
GPU blocks (requires=, record) are the long ones. Parts are filled greedily, longest first, each test going to
the part with the least time so far (ties by part number), over tests sorted by weight then node id, so
every worker and every shard computes the same split from the same tree.
"""
import re

from handbook import recordings

DEFAULT_GPU_SECONDS = 30.0  # an unrecorded GPU block
DEFAULT_CPU_SECONDS = 1.0  # a CPU block or a check
SPEC = re.compile(r"^(\d+)/(\d+)$")


def parse(spec: str) -> tuple[int, int]:
    m = SPEC.match(spec.strip())
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise ValueError(f"--shard {spec!r}: write I/N with 1 <= I <= N, e.g. --shard 2/4")
    return int(m[1]), int(m[2])


def weight(item) -> float:
    block = getattr(item, "block", None)
    if block is None:
        return DEFAULT_CPU_SECONDS
    if block.snippet and block.recorded:
        try:
            state = recordings.state(block.snippet.path)
        except recordings.RecordingError:
            state = None
        if state is not None and state.data:
            return float(state.data["wall_seconds"])
    return DEFAULT_GPU_SECONDS if (block.requires or block.recorded) else DEFAULT_CPU_SECONDS


def assign(weights: dict[str, float], count: int) -> dict[str, int]:
    """node id -> part (1..count), longest-processing-time first."""
    loads = [0.0] * count
    parts = {}
    for nodeid, seconds in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])):
        part = min(range(count), key=lambda i: (loads[i], i))
        loads[part] += seconds
        parts[nodeid] = part + 1
    return parts


def select(items, index: int, count: int) -> list:
    """The items of part `index`, in their collected order."""
    parts = assign({item.nodeid: weight(item) for item in items}, count)
    return [item for item in items if parts[item.nodeid] == index]
