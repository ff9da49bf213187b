"""Run 01_gpu_health.py on this node and keep its report, whatever the verdict: how the handbook records a card.

A health check's exit code is its verdict (non-zero on a sick node); a recording must not lose the report when
the verdict is bad, so this wrapper prints the report, keeps gpu_health.json and exits 0 whenever the check ran.
Needs: pip install nvidia-ml-py
"""
import json
import subprocess
import sys
from pathlib import Path

DIAGNOSTIC = Path(__file__).with_name("01_gpu_health.py")


def main() -> int:
    proc = subprocess.run([sys.executable, str(DIAGNOSTIC), "--xid-seconds", "5"], capture_output=True, text=True,
                          timeout=120)
    print(proc.stdout, end="")
    if proc.returncode not in (0, 1, 2, 3):  # a crash, not a verdict: fail loudly
        print(proc.stderr, file=sys.stderr)
        return 1
    report = json.loads(Path("gpu_health.json").read_text(encoding="utf-8"))
    verdicts = {name: check["verdict"] for name, check in report["checks"].items()}
    summary = {"exit": report["exit"], "verdicts": verdicts,
               "all_ok": all(v == "OK" for v in verdicts.values()),
               "checks": len(verdicts), "ok": sum(v == "OK" for v in verdicts.values())}
    Path("health_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"{summary['ok']} of {summary['checks']} checks OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
