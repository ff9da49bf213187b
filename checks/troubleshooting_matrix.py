"""The troubleshooting chapter's fault matrix: every scenario run through every health check, against a spec.

The spec (EXPECTED) is written from each scenario's definition, not from output: a scenario that injects fault F
must make F's check say the verdict F's runbook gives it, and every other check say OK (or UNKNOWN where NVML
cannot read the GPU at all). `python checks/troubleshooting_matrix.py --write` regenerates the table the chapter
page shows (snippets/troubleshooting/index/fault_matrix.md) from a real run; the check fails when it is stale.
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handbook import gpusim  # noqa: E402
from handbook.gpusim import nvidia_smi  # noqa: E402

DIAGNOSTIC = ROOT / "snippets" / "troubleshooting" / "index" / "01_gpu_health.py"
RENDERED = ROOT / "snippets" / "troubleshooting" / "index" / "fault_matrix.md"
CHECKS = ["driver", "bus", "memory", "processes", "clocks", "xid", "ecc", "recovery", "fabric", "mig", "links",
          "collective", "straggler"]
RUNBOOK = {"driver": "driver.md", "bus": "fell-off-the-bus.md", "memory": "stuck-memory.md",
           "processes": "stuck-memory.md", "clocks": "throttling.md", "xid": "xid.md", "ecc": "ecc.md",
           "recovery": "decision.md", "fabric": "fabric-manager.md", "mig": "mig-drift.md", "links": "links.md",
           "collective": "hung-collectives.md", "straggler": "straggler.md"}
# Flags every run gets: short Xid, counter, GPM and hang windows (Xids before the start come from the simulated
# kernel log), a CUDA need that every current scenario's driver meets except the one built to be too old, and the
# host (not a container) as the place the check runs, unless a row says otherwise.
FLAGS = ["--json", "--xid-seconds", "0.3", "--window", "0.3", "--sample-seconds", "0.05", "--hang-seconds", "0.3",
         "--nvml-timeout", "2", "--need-cuda", "12.0"]
NO_NVML = {c: "UNKNOWN" for c in CHECKS if c not in ("driver", "xid")} | {"driver": "CRITICAL"}  # xid: kernel log
LOST = {c: "UNKNOWN" for c in CHECKS} | {"driver": "OK", "bus": "CRITICAL", "xid": "CRITICAL"}
# Rows whose scenario must play faster than the wall clock, so that the short windows above cover minutes of it.
SPEED = {"hw-slowdown-blip@29": 60, "nvlink-errors@29": 10}

# row -> the checks that must not say OK, and what they must say. Unlisted checks must say OK. A row is a scenario
# spec, optionally followed by flags of the health check for that row (`--where container`, `--expect-mig ...`).
EXPECTED = {
    "healthy-idle": {},
    "busy-training": {},
    "allocated-idle": {},  # idle-but-allocated is a cost alert (section 3), not a node fault
    "new-gpu-old-wheel": {},  # the wheel lacks kernels; NVML and the node are healthy (section 2's runbook)
    "memory-almost-full@120": {},  # 99 % used by the job itself: a workload property, never a node condition
    "memory-no-process": {"memory": "WARN"},  # 24 GiB used, no process listed: another namespace, a leak, MPS
    "dead-process-memory": {"processes": "CRITICAL"},  # a PID the OS no longer has holds 40 GiB
    "dead-process-memory --where container": {"processes": "WARN"},  # from a container: dead and hidden look alike
    "driver-mismatch": NO_NVML,
    "driver-not-loaded": NO_NVML,
    "no-gpu": NO_NVML,
    "no-gpu --where container": NO_NVML,  # a container started without the NVIDIA runtime or a CDI device
    "nvml-unknown-error --where container": NO_NVML,  # the container that lost its device nodes after a daemon-reload
    "nvml-unknown-error": NO_NVML,  # the same error on the host: the driver cannot reach a GPU
    "driver-too-old": {"driver": "CRITICAL"},  # CUDA 11.4 driver, 12.0 needed: a major version short
    "power-cap": {"clocks": "WARN"},  # limit lowered from the default 700 W to 400 W
    "power-oob-cap": {"clocks": "WARN"},  # 700 W requested, 450 W enforced: an out-of-band cap
    "thermal-throttle@100": {"clocks": "WARN"},  # SW thermal slowdown only (90-150 s)
    "thermal-throttle@200": {"clocks": "CRITICAL"},  # HW thermal slowdown from 150 s, all through the window
    "hw-power-brake": {"clocks": "CRITICAL"},  # HW slowdown + power brake at low power
    "hw-slowdown-blip@29": {"clocks": "WARN"},  # a 5 s power brake within an 18 s window: transient, not a page
    "app-clocks-locked": {"clocks": "WARN"},  # application clocks hold SM at 1410 of 1980 MHz
    "8gpu-one-hot@150": {"clocks": "CRITICAL", "straggler": "WARN"},  # GPU 5 HW-throttles: the node's slow rank
    "8gpu-straggler": {"straggler": "WARN"},  # GPU 6 computes while seven peers wait
    "8gpu-data-starved": {"straggler": "WARN"},  # GPU 2 idles while seven peers wait: its input is starved
    "hung-collective": {"collective": "WARN"},  # util 100 %, SM active 18 %, power near idle, for the whole window
    "xid-events@3": {"xid": "CRITICAL"},  # includes 48, 74, 95
    "xid-app-only@2": {"xid": "WARN"},  # 13/31/43 only: the application's, never CRITICAL, never hardware
    "xid-after-reset@90": {},  # Xid 48 and 63 before the GPU's reset at 60 s; Xid 45 from a kill after it
    "dmesg-restricted": {"xid": "UNKNOWN"},  # the kernel log is unreadable: unknown, never "no Xid"
    "gsp-timeout@25": LOST,  # NVML calls on the GPU block (GSP timeout, Xid 119): wedged, reported within seconds
    "ecc-errors@100": {"ecc": "WARN", "recovery": "WARN", "xid": "WARN"},  # 94 + 63, remap pending, DRAIN_AND_RESET
    "ecc-errors@200": {"ecc": "CRITICAL", "recovery": "CRITICAL", "xid": "CRITICAL"},  # 95 + 64, GPU_RESET
    "remap-pending-only": {"ecc": "WARN", "recovery": "WARN"},  # pending remap, contained, DRAIN_AND_RESET
    "sram-errors@60": {"ecc": "WARN"},  # six SRAM uncorrectable errors, NVIDIA's threshold not exceeded
    "sram-errors@150": {"ecc": "CRITICAL"},  # NVIDIA's SRAM threshold-exceeded flag: RMA
    "gpu-lost@40": LOST,  # the only GPU fell off the bus at 30 s (Xid 79): nothing else is readable
    "8gpu-one-lost@25": {"bus": "CRITICAL", "xid": "CRITICAL"},  # GPU 3 lost at 20 s; seven GPUs idle, readable
    "pcie-downtrained": {"links": "WARN"},  # Gen4 x8 of Gen5 x16 under load
    "nvlink-down@5": {"links": "CRITICAL", "xid": "CRITICAL"},  # link 5 down after Xid 74 at 1 s
    "nvlink-errors@29": {"links": "WARN"},  # a burst of CRC and replay errors on link 3 at 31 s, every link up
    "hgx-fabric-ready": {},  # the same HGX board after Fabric Manager set the fabric up: every check OK
    "hgx-fabric-down": {"fabric": "CRITICAL"},  # fabric registration in progress: CUDA error 802
    "mig-h200-enabled-empty": {"mig": "WARN"},  # MIG on, no instance: CUDA sees no device
    "mig-h200-pending": {"mig": "WARN"},  # MIG switched on without the reset that applies it
    "mig-h200-mixed --expect-mig 1g.18gb:7": {"mig": "WARN"},  # the layout drifted from the node's configuration
    "mig-h200-seven --expect-mig 1g.18gb:7": {},  # the layout the node should have
}
HEALTHY = [s for s, faults in EXPECTED.items() if not faults]


def expected(spec: str) -> dict:
    return {c: EXPECTED[spec].get(c, "OK") for c in CHECKS}


def split_row(row: str) -> tuple[str, list[str]]:
    """'mig-h200-mixed --expect-mig 1g.18gb:7' -> ('mig-h200-mixed', ['--expect-mig', '1g.18gb:7'])."""
    spec, *flags = row.split()
    return spec, flags


def environment(row: str) -> dict:
    spec, _ = split_row(row)
    env = gpusim.child_env(spec, SPEED.get(spec))
    env["PATH"] = f"{nvidia_smi.BIN_DIR}{os.pathsep}{env.get('PATH', '')}"  # nvidia-smi and dmesg play the scenario
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable
    return env


def diagnose(row: str, *extra: str, cwd, flags=FLAGS) -> tuple[int, dict | None, str]:
    """(exit code, parsed JSON or None, stderr) of the diagnostic on one row."""
    spec, own = split_row(row)
    where = [] if "--where" in own + list(extra) + list(flags) else ["--where", "host"]
    proc = subprocess.run([sys.executable, str(DIAGNOSTIC), *flags, *where, *own, *extra], env=environment(row),
                          cwd=cwd, capture_output=True, text=True, timeout=60)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = None
    return proc.returncode, report, proc.stderr


def run_matrix(specs, cwd) -> dict:
    """spec -> (exit code, report) for every spec, eight at a time (most of a run is waiting on its windows)."""
    with ThreadPoolExecutor(8) as pool:
        results = dict(zip(specs, pool.map(lambda s: diagnose(s, cwd=cwd)[:2], specs)))
    return results


def all_specs() -> list[str]:
    listed = {split_row(s)[0].split("@")[0] for s in EXPECTED}
    return list(EXPECTED) + [name for name, _ in gpusim.scenarios() if name not in listed]


def render(results: dict) -> str:
    def cell(verdict):
        return {"OK": "ok", "WARN": "**WARN**", "CRITICAL": "**CRITICAL**", "UNKNOWN": "unknown"}.get(verdict, verdict)

    head = "| scenario | " + " | ".join(f"[{c}]({RUNBOOK[c]})" for c in CHECKS) + " | exit |"
    lines = ["<!-- Generated by `python checks/troubleshooting_matrix.py --write` from a run of 01_gpu_health.py on"
             " every simulator scenario. Do not edit: checks/test_troubleshooting_matrix.py fails when it is stale."
             " -->", "", head, "|" + "---|" * (len(CHECKS) + 2)]
    for spec in EXPECTED:  # the specified rows only: scenarios other sections add do not change the page
        code, report = results[spec]
        verdicts = [report["checks"][c]["verdict"] if report else "no output" for c in CHECKS]
        lines.append(f"| `{spec}` | " + " | ".join(map(cell, verdicts)) + f" | {code} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python checks/troubleshooting_matrix.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        RENDERED.write_text(render(run_matrix(list(EXPECTED), tmp)), encoding="utf-8")
    print(f"wrote {RENDERED.relative_to(ROOT)}")
