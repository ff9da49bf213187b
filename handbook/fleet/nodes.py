"""A node's GPUs as a GPU-simulator scenario file (handbook/gpusim/scenario.py), rewritten as the node changes.

Every value is a timeline in fleet seconds (the game's clock), built from the history the engine records, so the
energy counter only grows and GPM means span the right values. A node's exporter, its `nvidia-smi`, its `dmesg`
and the health check read this file through the simulator, which follows the file as it changes
(handbook/gpusim/live.py). A replaced node is new hardware: a new file name, hence new GPU UUIDs.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from handbook.fleet.engine import Engine, Node

HEADER = """\
description = "Fleet {name}, hardware generation {generation}: written by python -m handbook.fleet"

[system]
driver_version = "580.159.04"
cuda_driver_version = 13000

[gpu_defaults]
# Board limits of the simulated card, as the simulator's other H100 scenarios have them.
model = "NVIDIA H100 80GB HBM3"
memory_total_mib = 81559
compute_capability = [9, 0]
power_limit_w = 700
sm_clock_max_mhz = 1980
mem_clock_max_mhz = 2619
temperature_slowdown_c = 87
temperature_shutdown_c = 92
nvlink_links = 18
mem_clock_mhz = 2619
"""
LINEAR = ("gpu_util_pct", "mem_util_pct", "memory_used_mib", "temperature_c", "power_w", "sm_clock_mhz",
          "gpm_graphics_util_pct", "gpm_sm_util_pct", "gpm_sm_occupancy_pct", "gpm_tensor_util_pct",
          "gpm_dram_bw_util_pct")
STEP = ("clocks_event_reasons", "ecc_uncorrected_volatile", "ecc_uncorrected_aggregate",
        "remapped_rows_uncorrectable", "row_remap_pending", "row_remap_failure", "recovery_action")
SWITCH_S = 0.001  # a change of state shows this fast, except temperature, which drifts over RAMP_S * time_scale
RAMP_S = 30.0
PROCESS_MIB = 70656


def file_name(node: Node) -> str:
    return f"{node.name}.toml" if node.generation == 0 else f"{node.name}-r{node.generation}.toml"


def _number(value) -> str:
    if isinstance(value, float) and not value.is_integer():
        return repr(round(value, 3))
    return str(int(value))


def keyframes(history: list, name: str, ramp: float) -> list:
    """[(time, value)] for one value from the history [(time, values)] (a step for STEP values)."""
    points = [(history[0][0], history[0][1][name])]
    for i in range(1, len(history)):
        t, value = history[i][0], history[i][1][name]
        before = history[i - 1][1][name]
        if value == before:
            continue
        if name in STEP:
            points.append((t, value))
            continue
        later = history[i + 1][0] if i + 1 < len(history) else math.inf
        width = min(ramp, (later - t) / 2)
        if t > points[-1][0]:
            points.append((t, before))
        points.append((t + width, value))
    return points


def render(engine: Engine, node: Node) -> str:
    out = [HEADER.format(name=node.name, generation=node.generation)]
    ramp = max(SWITCH_S, RAMP_S * engine.game.time_scale)
    for gpu in node.gpus:
        history = engine.display.get((node.index, gpu.index)) or [(node.born, engine.values(node, gpu))]
        out.append(f"[[gpus]]  # GPU {gpu.index}")
        for name in LINEAR + STEP:
            points = keyframes(history, name, ramp if name == "temperature_c" else SWITCH_S)
            if name == "power_w" and node.born > 2 * SWITCH_S:  # new hardware: its energy counter starts at 0
                points = [(0.0, 0), (node.born - SWITCH_S, 0)] + points
            if len(points) == 1 and points[0][0] == 0:
                out.append(f"{name} = {_number(points[0][1])}")
            else:
                out.append(f"{name} = [" + ", ".join(f"[{_number(t)}, {_number(v)}]" for t, v in points) + "]")
        xids = [(t, code) for t, g, code in node.xids if g == gpu.index]
        if xids:
            out.append("xid = [" + ", ".join(f"[{_number(t)}, {code}]" for t, code in xids) + "]")
        if gpu.lost_at is not None:
            out.append(f"lost_at_s = {_number(gpu.lost_at)}")
        if gpu.nvlink_down:
            out.append(f"nvlink_down = {list(gpu.nvlink_down)}")
        processes = []
        for i, (t, values) in enumerate(history):
            pid = values["pid"]
            if not pid:
                continue
            end = history[i + 1][0] if i + 1 < len(history) else None
            if processes and processes[-1]["pid"] == pid and processes[-1]["end"] == t:
                processes[-1]["end"] = end
            else:
                processes.append({"pid": pid, "start": t, "end": end})
        if processes:
            rows = [f'{{pid = {p["pid"]}, name = "torchrun train.py", used_mib = {PROCESS_MIB}, '
                    f'start_s = {_number(p["start"])}' + ("" if p["end"] is None else f', end_s = {_number(p["end"])}')
                    + "}" for p in processes]
            out.append("processes = [" + ", ".join(rows) + "]")
        out.append("")
    return "\n".join(out)


def write(engine: Engine, node: Node, folder: Path) -> Path:
    """Write the node's scenario file atomically (a reader never sees half a file); returns its path."""
    path = folder / file_name(node)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(engine, node), encoding="utf-8")
    os.replace(tmp, path)
    return path
