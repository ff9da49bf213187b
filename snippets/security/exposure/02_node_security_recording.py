"""Run 01_node_security.py on this node and keep its report, whatever the verdict: how the handbook records a node.

The check's exit code is its verdict (non-zero on an exposed or unreadable node); a recording must not lose the
report then, so this wrapper prints the report, writes node_security.json and exits 0 whenever the check ran.
Needs: Python 3.11+; nvidia-ml-py optional
"""
import json
import subprocess
import sys
from pathlib import Path

CHECK = Path(__file__).with_name("01_node_security.py")


def main() -> int:
    text = subprocess.run([sys.executable, str(CHECK)], capture_output=True, text=True, timeout=120)
    print(text.stdout, end="")
    if text.returncode not in (0, 1, 2, 3):  # a crash, not a verdict: fail loudly
        print(text.stderr, file=sys.stderr)
        return 1
    proc = subprocess.run([sys.executable, str(CHECK), "--json"], capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    verdicts = {name: check["verdict"] for name, check in report["checks"].items()}
    summary = {"exit": report["exit"], "verdicts": verdicts, "checks": len(verdicts),
               "ok": sum(v == "OK" for v in verdicts.values()),
               "unknown": sorted(n for n, v in verdicts.items() if v == "UNKNOWN"),
               "advisories_checked": report["advisories_checked"]}
    Path("node_security.json").write_text(json.dumps({"summary": summary, "report": report}, indent=2),
                                          encoding="utf-8")
    print(f"{summary['ok']} of {summary['checks']} checks OK; unknown: {', '.join(summary['unknown']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
