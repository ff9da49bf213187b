#!/usr/bin/env python3
"""Is this node ready for GPU work? Runs `provision-gpu-node.sh --verify` (read only, no root) and keeps its answer.

    python 01_verify_node.py                 # the script beside this file
    python 01_verify_node.py --script PATH

Prints the script's report, what its exit status means, and writes verify_node.json: one entry per check
(status, detail) and the verdict. The script changes nothing; this program exits 0 whatever the node's state, so
a report of a broken node is a result, not an error (exit 2 only when the script cannot be run at all).
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

VERDICTS = {0: "ready", 1: "not ready", 2: "refused", 3: "reboot required"}
LINE = re.compile(r"^(OK|MISSING|REBOOT|UNKNOWN|N/A|INFO)\s+(\S+)\s+(.*)$")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, default=Path(__file__).with_name("provision-gpu-node.sh"))
    args = parser.parse_args()
    if not args.script.is_file():
        print(f"error: --script {args.script}: no such file (provision-gpu-node.sh from the driver-upgrades page)",
              file=sys.stderr)
        return 2
    done = subprocess.run(["bash", str(args.script), "--verify"], capture_output=True, text=True, timeout=120)
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    verdict = VERDICTS.get(done.returncode, f"unexpected exit status {done.returncode}")
    print(f"exit status {done.returncode}: {verdict}")
    checks = [{"status": m[1], "check": m[2], "detail": m[3]}
              for m in map(LINE.match, done.stdout.splitlines()) if m]
    counts = {status: sum(c["status"] == status for c in checks) for status in ("OK", "MISSING", "REBOOT", "UNKNOWN")}
    with open("verify_node.json", "w", encoding="utf-8") as out:
        json.dump({"exit_status": done.returncode, "verdict": verdict, "counts": counts, "checks": checks}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
