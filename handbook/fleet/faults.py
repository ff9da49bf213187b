"""The faults a game day can inject: the published failure mix they are drawn from, and what each does.

The mix is Table 5 of the Llama 3 paper: the 419 unexpected interruptions of a 54-day snapshot of Llama 3 405B
pre-training on 16,384 H100s, by root cause (https://arxiv.org/abs/2407.21783, section 3.3.4; the counts are
also transcribed at https://glennklockwood.com/garden/component-reliability). The counts add up to 419; the
paper's share for "Faulty GPU" (30.1 %) is not 148/419 (35.3 %), so the game draws by count, never by the
printed share.

Each cause is played as one or more fault kinds: what the node's NVML, nvidia-smi and kernel log show (the
GPU simulator's scenario keys, handbook/gpusim/scenario.py), and what the fault does to a data-parallel job.
Causes no GPU telemetry can see (silent data corruption) are left out of the draw; they are listed in
UNPLAYED with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Table 5 of the Llama 3 paper: cause -> (count, {kind: weight}). Weights split a cause between kinds where one
# cause shows up as different faults (a faulty GPU falls off the bus or loses an NVLink link); the splits are
# this game's choice, not the paper's.
MIX = {
    "Faulty GPU": (148, {"gpu-lost": 3, "nvlink": 1}),
    "GPU HBM3 Memory": (72, {"hbm": 3, "hbm-remap-failed": 1}),
    "Software Bug": (54, {"software": 1}),
    "Network Switch/Cable": (35, {"hang": 1}),
    "Host Maintenance": (32, {"host": 1}),
    "GPU SRAM Memory": (19, {"sram": 1}),
    "GPU System Processor": (17, {"gsp": 1}),
    "NIC": (7, {"hang": 1}),
    "NCCL Watchdog Timeouts": (7, {"hang": 1}),
    "GPU Thermal Interface + Sensor": (6, {"thermal": 1}),
    "SSD": (3, {"host": 1}),
    "Power Supply": (3, {"host": 1}),
    "Server Chassis": (2, {"host": 1}),
    "IO Expansion Board": (2, {"host": 1}),
    "Dependency": (2, {"software": 1}),
    "CPU": (2, {"host": 1}),
    "System Memory": (2, {"host": 1}),
}
UNPLAYED = {"Silent Data Corruption": (6, "no GPU metric or log shows it: only the training loss does")}
TOTAL_INTERRUPTIONS = 419  # the paper's count of unexpected interruptions; MIX + UNPLAYED add up to it

# Full-speed values of a busy H100 in a data-parallel step (the shape of the simulator's 8gpu-one-hot peers).
TRAIN = {"gpu_util_pct": 100, "mem_util_pct": 40, "memory_used_mib": 71213, "temperature_c": 64, "power_w": 610,
         "sm_clock_mhz": 1980, "gpm_graphics_util_pct": 100, "gpm_sm_util_pct": 87, "gpm_sm_occupancy_pct": 13,
         "gpm_tensor_util_pct": 84, "gpm_dram_bw_util_pct": 38, "clocks_event_reasons": 0, "processes": True}
IDLE = {"gpu_util_pct": 0, "mem_util_pct": 0, "memory_used_mib": 1, "temperature_c": 34, "power_w": 72,
        "sm_clock_mhz": 345, "gpm_graphics_util_pct": 0, "gpm_sm_util_pct": 0, "gpm_sm_occupancy_pct": 0,
        "gpm_tensor_util_pct": 0, "gpm_dram_bw_util_pct": 0, "clocks_event_reasons": 0x1, "processes": False}
# A hung all-reduce, as the simulator's hung-collective scenario plays it: NCCL kernels stay resident (NVML 100 %),
# one spinning CTA per channel keeps a fifth of the SMs busy, with no tensor work and power near idle.
HUNG = {**TRAIN, "mem_util_pct": 0, "temperature_c": 41, "power_w": 118, "gpm_sm_util_pct": 18.2,
        "gpm_sm_occupancy_pct": 1.1, "gpm_tensor_util_pct": 0, "gpm_dram_bw_util_pct": 0}
SM_CLOCK_MAX_MHZ = 1980


@dataclass(frozen=True)
class Kind:
    """One fault kind. scope: what the fault sits on ("gpu", "node" or the whole "job"); job: what it does to a
    running job ("crash", "hang" or "slow"); cleared_by: what removes it ("reset" of the GPU, "replace" of the
    node, or a "restart" of the job); xid: the Xid codes the kernel logs; values: scenario values it overrides
    on its GPU; speed: the GPU's speed while it lasts (a data-parallel job runs at its slowest rank's speed)."""

    name: str
    scope: str
    job: str
    cleared_by: str
    summary: str
    reason: str  # what the job's log says when it dies of it
    xid: tuple = ()
    values: dict = field(default_factory=dict)
    speed: float = 1.0
    onset_s: float = 0.0  # game-day seconds from the fault's start until the slowdown (scaled by time_scale)
    lost: bool = False
    down: bool = False
    nvlink_down: tuple = ()


KINDS = {k.name: k for k in [
    Kind("gpu-lost", "gpu", "crash", "replace", "a GPU falls off the bus (Xid 79)",
         "NCCL error: unhandled cuda error: the GPU has fallen off the bus", xid=(79,), lost=True),
    Kind("nvlink", "gpu", "crash", "reset", "an NVLink link goes down (Xid 74)",
         "NCCL error: remote process exited or there was a network error (NVLink)", xid=(74,),
         nvlink_down=(5,)),
    Kind("hbm", "gpu", "crash", "reset", "an uncorrectable HBM3 error, row remap pending (Xid 48, 63)",
         "CUDA error: uncorrectable ECC error encountered", xid=(48, 63),
         values={"ecc_uncorrected": 1, "remapped_rows_uncorrectable": 1, "row_remap_pending": 1,
                 "recovery_action": 1}),
    Kind("hbm-remap-failed", "gpu", "crash", "replace", "an uncorrectable HBM3 error the GPU cannot remap (Xid 48, 64)",
         "CUDA error: uncorrectable ECC error encountered", xid=(48, 64),
         values={"ecc_uncorrected": 1, "row_remap_failure": 1, "recovery_action": 4}),
    Kind("sram", "job", "crash", "restart", "a contained SRAM ECC error (Xid 94)",
         "CUDA error: uncorrectable ECC error encountered", xid=(94,), values={"ecc_uncorrected": 1}),
    Kind("gsp", "gpu", "crash", "reset", "the GPU System Processor stops answering (Xid 119)",
         "CUDA error: unspecified launch failure", xid=(119,), values={"recovery_action": 1}),
    Kind("software", "job", "crash", "restart", "the training program faults (Xid 13)",
         "CUDA error: an illegal memory access was encountered", xid=(13,)),
    Kind("hang", "job", "hang", "restart", "a collective hangs (network switch, cable or NIC)",
         "NCCL watchdog: a collective operation timed out"),
    Kind("host", "node", "crash", "replace", "the host goes down (maintenance, PSU, CPU, memory, disk)",
         "NCCL error: remote process exited (a node stopped answering)", down=True),
    Kind("thermal", "gpu", "slow", "replace", "a GPU's thermal interface fails: HW thermal slowdown",
         "", values={"temperature_c": 89, "clocks_event_reasons": 0x20 | 0x40, "sm_clock_mhz": 1245,
                     "power_w": 500}, speed=1245 / SM_CLOCK_MAX_MHZ, onset_s=90),
    Kind("power-brake", "gpu", "slow", "replace", "a GPU's power brake engages: HW slowdown",
         "", values={"temperature_c": 48, "clocks_event_reasons": 0x8 | 0x80, "sm_clock_mhz": 780, "power_w": 210},
         speed=780 / SM_CLOCK_MAX_MHZ),
]}
# Kinds that a timeline may script but that the published mix does not draw.
SCRIPT_ONLY = {"power-brake"}


def mix_weights() -> dict[str, float]:
    """kind -> expected share of drawn incidents, from the counts of MIX."""
    weights: dict[str, float] = {}
    for count, split in MIX.values():
        parts = sum(split.values())
        for kind, weight in split.items():
            weights[kind] = weights.get(kind, 0.0) + count * weight / parts
    total = sum(weights.values())
    return {kind: w / total for kind, w in sorted(weights.items())}


def cause_of(kind: str) -> list[str]:
    return [cause for cause, (_, split) in MIX.items() if kind in split]
