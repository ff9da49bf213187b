"""A simulator-driven `dmesg` stand-in: the scenario's kernel log up to now, as the NVIDIA kernel module writes it.

What it plays, in the real formats: the driver's load line at the scenario's start; each Xid as the driver reports
it (`NVRM: GPU at PCI:...` and the board serial before a burst, then `NVRM: Xid (PCI:0000:18:00): 79, pid=...,
name=..., <text>`), attributed to the GPU's process for the faults a process causes (13, 31, 43, 45, 94) and
to `pid='<unknown>', name=<unknown>` for the hardware's; and the marker the runbooks' reset step writes to the
kernel log after a GPU reset (`gpu-reset: PCI:0000:18:00 ...`, see docs/troubleshooting/decision.md).
Plain `dmesg` stamps each line `[SECONDS]` on this machine's uptime clock, so a reader sees the age the scenario
gives the event; `dmesg -T` stamps it with a wall time on the scenario's clock (a fixed day plus the scenario's
seconds, as the nvidia-smi stand-in does), so its output repeats exactly from run to run. A scenario with
`[system] dmesg_restricted = true` refuses, as dmesg does for a user without CAP_SYSLOG when
kernel.dmesg_restrict=1 (the Ubuntu default). The Xid texts end in "(simulated)"; a real log has more lines.
`lines(spec, style="journal")` gives the same log as `journalctl -k` prints it, for tests of saved logs.
Put it on PATH with nvidia_smi.BIN_DIR (see nvidia_smi.py).
"""
import os
import sys
import time

from handbook.gpusim import ScenarioError, run_tool, simulated_module

EPOCH = 1767225600  # the scenario's t=0 on the wall clock: 2026-01-01 00:00:00 UTC
PROCESS_CAUSED = {13, 31, 43, 45, 94}  # Xids the driver attributes to the process whose channel faulted
TEXT = {
    13: "Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address",
    31: "channel 0x00000010, intr 00000000. MMU Fault: ENGINE GRAPHICS GPC0 GPCCLIENT_T1_0 faulted @ 0x7f3a_1c000000."
        " Fault is of type FAULT_PDE ACCESS_TYPE_VIRT_READ",
    43: "channel 0x00000010",
    45: "channel 0x00000010",
    48: "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6,"
        " subpartition 0.",
    63: "Row Remapper: New row (0x00000000002f1a80) marked for remapping, reset gpu to activate.",
    64: "Row Remapper: Failed to remap row (0x00000000002f1a80): no spare row left in the bank.",
    74: "NVLink: fatal error detected on link 5(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)",
    79: "GPU has fallen off the bus.",
    92: "High single-bit ECC error rate",
    94: "Contained: SM (0x1). RST: No, D-RST: No",
    95: "Uncontained: FBHUB. RST: Yes, D-RST: No",
    119: "Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 76 (GSP_RM_CONTROL)"
         " (0x20802a02 0x8).",
    120: "GSP task exception: (task ID 0x00000000, PC 0x0000000000000000, cause 0x00000000)",
}


def xid_line(gpu, bus: str, code: int, t: float) -> str:
    running = [p for p in gpu.processes if p.start_s <= t < p.end_s]
    if code in PROCESS_CAUSED and running:
        who = f"pid={running[0].pid}, name={running[0].name.split()[0]}"
    else:
        who = "pid='<unknown>', name=<unknown>"
    return f"NVRM: Xid (PCI:{bus}): {code}, {who}, {TEXT.get(code, 'see the Xid catalog')} (simulated)"


def events(sim) -> list[tuple[float, str]]:
    """(scenario seconds, message) of everything the scenario logged up to now, in order."""
    now = sim.at
    out = [(0.0, f"NVRM: loading NVIDIA UNIX Open Kernel Module for x86_64  {sim.scenario.driver_version}"
                 "  Release Build  (simulated)")]
    for gpu in sim.scenario.gpus:
        bus = sim._bus_id(gpu.index)[4:-2]  # 0000:18:00, as NVRM writes it
        last = None
        for when, _, code in gpu.xid_between(-1.0, now):
            if last is None or when - last > 1.0:  # the driver names the GPU before each burst of reports
                out += [(when, f"NVRM: GPU at PCI:{bus}: {gpu.uuid}"),
                        (when, f"NVRM: GPU Board Serial Number: simulated-{gpu.index}")]
            last = when
            out.append((when, xid_line(gpu, bus, code, when)))
            if code == 79:
                out.append((when, f"NVRM: GPU {sim._bus_id(gpu.index)[4:]}: GPU has fallen off the bus."))
        for when in gpu.resets:
            if when <= now:
                out.append((when, f"gpu-reset: PCI:{bus} reset with nvidia-smi -r (simulated)"))
    return sorted(out, key=lambda e: e[0])


def lines(spec: str, style: str = "raw") -> list[str]:
    """The log as `dmesg` ("raw"), `dmesg -T` ("ctime") or `journalctl -k` ("journal") prints it."""
    nv = simulated_module(spec, banner=False)
    sim = nv.__gpusim__
    if sim.scenario.init_error:
        return []  # no driver to log, or a log this stand-in does not play
    with open("/proc/uptime", encoding="ascii") as f:
        uptime = float(f.read().split()[0])
    out = []
    for when, message in events(sim):
        if style == "ctime":
            out.append(f"[{time.strftime('%a %b %e %H:%M:%S %Y', time.gmtime(EPOCH + when))}] {message}")
        elif style == "journal":
            out.append(f"{time.strftime('%b %d %H:%M:%S', time.gmtime(EPOCH + when))} gpu-node kernel: {message}")
        else:
            out.append(f"[{max(uptime - (sim.at - when), 0.0):12.6f}] {message}")
    return out


def main() -> int:
    spec = os.environ.get("HANDBOOK_GPUSIM")
    if not spec:
        print("simulated dmesg: set HANDBOOK_GPUSIM=SCENARIO (python -m handbook.gpusim list)", file=sys.stderr)
        return 1
    args = sys.argv[1:]
    if args not in ([], ["-T"], ["--ctime"]):
        print("simulated dmesg: only `dmesg` and `dmesg -T` are played", file=sys.stderr)
        return 1
    try:
        nv = simulated_module(spec, banner=False)
        if nv.__gpusim__.scenario.dmesg_restricted:
            print("dmesg: read kernel buffer failed: Operation not permitted", file=sys.stderr)
            return 1
        print("\n".join(lines(spec, style="ctime" if args else "raw")))
    except ScenarioError as err:
        print(f"simulated dmesg: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_tool(main)
