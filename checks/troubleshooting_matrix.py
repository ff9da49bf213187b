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
CHECKS = ["driver", "bus", "memory", "processes", "clocks", "xid", "ecc", "recovery", "collective", "straggler",
          "links"]
RUNBOOK = {"driver": "driver.md", "bus": "fell-off-the-bus.md", "memory": "oom.md", "processes": "stuck-memory.md",
           "clocks": "throttling.md", "xid": "xid.md", "ecc": "ecc.md", "recovery": "decision.md",
           "collective": "hung-collectives.md", "straggler": "straggler.md", "links": "links.md"}
# Flags every run gets: a short Xid listen and GPM window (Xids before the start come from the simulated kernel
# log), and a CUDA need that every current scenario's driver meets except the one built to be too old.
FLAGS = ["--json", "--xid-seconds", "0.3", "--sample-seconds", "0.1", "--need-cuda", "12.0"]
NO_NVML = {c: "UNKNOWN" for c in CHECKS if c != "driver"} | {"driver": "CRITICAL"}
LOST = {c: "UNKNOWN" for c in CHECKS} | {"driver": "OK", "bus": "CRITICAL", "xid": "CRITICAL"}

# scenario spec -> the checks that must not say OK, and what they must say. Unlisted checks must say OK.
EXPECTED = {
    "healthy-idle": {},
    "busy-training": {},
    "allocated-idle": {},  # idle-but-allocated is a cost alert (section 3), not a node fault
    "new-gpu-old-wheel": {},  # the wheel lacks kernels; NVML and the node are healthy (section 2's runbook)
    "memory-almost-full@120": {"memory": "WARN"},  # 99 % used: the next allocation may OOM
    "dead-process-memory": {"processes": "CRITICAL"},  # a PID the OS no longer has holds 40 GiB
    "driver-mismatch": NO_NVML,
    "driver-not-loaded": NO_NVML,
    "no-gpu": NO_NVML,
    "nvml-unknown-error": NO_NVML,  # the container that lost its device nodes after a daemon-reload
    "driver-too-old": {"driver": "CRITICAL"},  # CUDA 11.4 driver, 12.0 needed: "driver insufficient"
    "power-cap": {"clocks": "WARN"},  # limit lowered from the default 700 W to 400 W
    "thermal-throttle@100": {"clocks": "WARN"},  # SW thermal slowdown only (90-150 s)
    "thermal-throttle@200": {"clocks": "CRITICAL"},  # HW thermal slowdown from 150 s
    "hw-power-brake": {"clocks": "CRITICAL"},  # HW slowdown + power brake at low power
    "app-clocks-locked": {"clocks": "WARN"},  # application clocks hold SM at 1410 of 1980 MHz
    "8gpu-one-hot@150": {"clocks": "CRITICAL", "straggler": "WARN"},  # GPU 5 HW-throttles: the node's slow rank
    "8gpu-straggler": {"straggler": "WARN"},  # GPU 6 computes while seven peers wait
    "hung-collective": {"collective": "CRITICAL"},  # util 100 %, SM active ~1 %
    "xid-events@3": {"xid": "CRITICAL"},  # includes 48, 74, 95
    "xid-app-only@2": {"xid": "WARN"},  # 13/31/43 only: the application's, never CRITICAL, never hardware
    "ecc-errors@100": {"ecc": "WARN", "recovery": "WARN", "xid": "WARN"},  # 94 + 63, remap pending, GPU_RESET
    "ecc-errors@200": {"ecc": "CRITICAL", "recovery": "CRITICAL", "xid": "CRITICAL"},  # 95 + 64, remap failed
    "remap-pending-only": {"ecc": "WARN", "recovery": "WARN"},  # pending remap, contained, no Xid in the log
    "gpu-lost@40": LOST,  # the only GPU fell off the bus at 30 s (Xid 79): nothing else is readable
    "8gpu-one-lost@25": {"bus": "CRITICAL", "xid": "CRITICAL"},  # GPU 3 lost at 20 s; seven GPUs idle, readable
    "pcie-downtrained": {"links": "WARN"},  # Gen4 x8 of Gen5 x16 under load
    "nvlink-down@5": {"links": "CRITICAL", "xid": "CRITICAL"},  # link 5 down after Xid 74 at 1 s
}
HEALTHY = [s for s, faults in EXPECTED.items() if not faults]


def expected(spec: str) -> dict:
    return {c: EXPECTED[spec].get(c, "OK") for c in CHECKS}


def environment(spec: str) -> dict:
    env = gpusim.child_env(spec)
    env["PATH"] = f"{nvidia_smi.BIN_DIR}{os.pathsep}{env.get('PATH', '')}"  # nvidia-smi and dmesg play the scenario
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable
    return env


def diagnose(spec: str, *extra: str, cwd, flags=FLAGS) -> tuple[int, dict | None, str]:
    """(exit code, parsed JSON or None, stderr) of the diagnostic on one scenario."""
    proc = subprocess.run([sys.executable, str(DIAGNOSTIC), *flags, *extra], env=environment(spec),
                          cwd=cwd, capture_output=True, text=True, timeout=60)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = None
    return proc.returncode, report, proc.stderr


def run_matrix(specs, cwd) -> dict:
    """spec -> (exit code, report) for every spec, four at a time (most of a run is waiting on its windows)."""
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(specs, pool.map(lambda s: diagnose(s, cwd=cwd)[:2], specs)))
    return results


def all_specs() -> list[str]:
    listed = {s.split("@")[0] for s in EXPECTED}
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
