"""The words a drill answer is written in: the verdicts and actions the drill runner, the quiz's answer files and
its key all share, and where the practice drills live (their hidden scenarios and public answers)."""
from pathlib import Path

PRACTICE = Path(__file__).resolve().parent / "practice_drills.toml"
VERDICTS = {
    "healthy": "nothing is wrong",
    "oom": "the application ran out of GPU memory (or fragmented it)",
    "driver-mismatch": "driver/library version mismatch after an upgrade",
    "driver-not-loaded": "the kernel module is not loaded",
    "nvml-lost-in-container": "a container lost its GPU device nodes (NVML Unknown Error)",
    "thermal-throttle": "thermal slowdown: cooling",
    "power-brake": "HW slowdown / power brake: power delivery",
    "app-clocks": "clocks locked by application-clock settings",
    "power-cap": "a lowered power limit",
    "xid-application": "application-class Xid (13/31/43)",
    "ecc-uncorrectable": "uncorrectable ECC errors",
    "remap-pending": "a row remap pending",
    "remap-failed": "row remapping failed",
    "fell-off-bus": "a GPU fell off the bus",
    "hung-collective": "a hung collective",
    "stuck-memory": "GPU memory held by a process that no longer exists",
    "straggler": "one slow rank holds the job back",
    "pcie-downtrained": "a degraded PCIe link",
    "nvlink-down": "an NVLink link is down",
    "driver-vulnerable": "the driver lacks a fix from a published NVIDIA security bulletin",
}
ACTIONS = {
    "none": "do nothing to the node",
    "restart-app": "restart the application",
    "fix-app": "change the application or its configuration, then restart it",
    "restart-container": "restart the container",
    "fix-node-config": "restore the node's GPU settings",
    "reset-gpu": "drain the GPU, capture evidence, reset it",
    "drain-node": "drain the node, capture evidence, repair or RMA",
    "patch-node": "cordon and drain the node, upgrade the vulnerable component, verify, uncordon",
}
