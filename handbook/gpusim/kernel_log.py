"""A simulator-driven `dmesg` stand-in: the scenario's Xid events up to now, as the NVIDIA kernel module logs them.

Plain `dmesg` stamps each line `[SECONDS]` on this machine's uptime clock, so a reader that keeps only recent
lines (as 01_gpu_health.py does) sees the age the scenario gives the event. `dmesg -T` stamps it with a wall
time on the scenario's clock (a fixed day plus the scenario's seconds, as the nvidia-smi stand-in does), so
its output repeats exactly from run to run.
Put it on PATH with nvidia_smi.BIN_DIR (see nvidia_smi.py). Only Xid lines are played: a real log has more.
"""
import os
import sys
import time

from . import ScenarioError, run_tool, simulated_module

TEXT = {13: "Graphics Exception", 31: "MMU Fault", 43: "Ch 00000010, intr 00000000. Channel stopped",
        48: "DBE (double bit error) ECC error", 63: "Row Remapper: New row marked for remapping, reset gpu to activate.",
        64: "Row Remapper: Failed to remap a row", 74: "NVLink: fatal error detected on link 5",
        79: "GPU has fallen off the bus.", 94: "Contained: SM (0x1). RST: No, D-RST: No",
        95: "Uncontained: FBHUB. RST: Yes, D-RST: No"}


def lines(spec: str, human: bool = False) -> list[str]:
    nv = simulated_module(spec, banner=False)
    sim = nv.__gpusim__
    if sim.scenario.init_error:
        return []
    now = sim.at
    with open("/proc/uptime", encoding="ascii") as f:
        uptime = float(f.read().split()[0])
    out = []
    for gpu in sim.scenario.gpus:
        bus = sim._bus_id(gpu.index)[4:-2]  # 0000:18:00, as NVRM writes it
        for when, _, code in gpu.xid_between(-1.0, now):
            stamp = max(uptime - (now - when), 0.0)
            shown = (time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(1767225600 + when)) if human
                     else f"{stamp:12.6f}")
            out.append((stamp, f"[{shown}] NVRM: Xid (PCI:{bus}): {code}, pid=4242, name=python, "
                               f"{TEXT.get(code, 'see the Xid catalog')} (simulated)"))
    return [line for _, line in sorted(out)]


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
        print("\n".join(lines(spec, human=bool(args))))
    except ScenarioError as err:
        print(f"simulated dmesg: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_tool(main)
