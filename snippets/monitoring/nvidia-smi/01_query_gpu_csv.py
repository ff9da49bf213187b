"""Read nvidia-smi's machine-readable output (--query-gpu ... --format=csv) into dictionaries.

Scripts should use --query-gpu, not the human table, whose layout changes between driver versions.
Newer drivers call the clock reasons `clocks_event_reasons.*`, older ones `clocks_throttle_reasons.*`.
"""
import csv
import subprocess

FIELDS = ["index", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu",
          "power.draw", "power.limit", "clocks.sm", "clocks.max.sm"]
REASONS = ["clocks_event_reasons.active", "clocks_throttle_reasons.active"]  # new name first


def query(fields: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, timeout=30)


def main():
    for reasons in REASONS:
        result = query(FIELDS + [reasons])
        if result.returncode == 0:
            break
    else:
        raise SystemExit(f"nvidia-smi failed: {result.stdout.strip() or result.stderr.strip()}")
    for row in csv.reader(result.stdout.strip().splitlines(), skipinitialspace=True):
        gpu = dict(zip(FIELDS + ["reasons"], row))
        print(f"GPU {gpu['index']} {gpu['name']}: util {gpu['utilization.gpu']}%, "
              f"mem {gpu['memory.used']}/{gpu['memory.total']} MiB, {gpu['temperature.gpu']} C, "
              f"{gpu['power.draw']}/{gpu['power.limit']} W, SM {gpu['clocks.sm']}/{gpu['clocks.max.sm']} MHz, "
              f"clock reasons {gpu['reasons']} (via {reasons})")


if __name__ == "__main__":
    main()
