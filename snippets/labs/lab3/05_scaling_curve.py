"""The scaling curve of one host: DDP throughput and efficiency, and all-reduce bus bandwidth, per GPU count.

    python 05_scaling_curve.py                       # every power of two up to the GPUs present (NCCL)
    python 05_scaling_curve.py --device cpu --counts 2 4 --max-bytes 65536

Runs 03_scaling_harness.py once for all counts and 02_allreduce_bench.py at each count (both kept beside this
file) in the current folder, so their own files stay there for steps 4 and 5 (scaling_report.json, ddp_Nw.json,
allreduce_bench_N.json for N ranks). Then writes the numbers to scaling_curve.json and three charts:
scaling_throughput.json, scaling_efficiency.json and busbw_by_gpus.json.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PROG = Path(__file__).name


def run(cmd: list[str]) -> None:
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0"}  # no NVLink multicast on shared hosts
    done = subprocess.run(cmd, env=env)
    if done.returncode != 0:
        sys.exit(f"{PROG}: {' '.join(Path(c).name for c in cmd[:2])} failed with exit status {done.returncode}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--counts", type=int, nargs="+", help="worker counts above 1 (default: 2, 4, ... up to the GPUs)")
    p.add_argument("--max-bytes", type=int, help="largest all-reduce message (passed to 02_allreduce_bench.py)")
    args = p.parse_args()
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    counts = args.counts or [n for n in (2, 4, 8, 16) if n <= gpus]
    if not counts or min(counts) < 2:
        sys.exit(f"{PROG}: need worker counts >= 2 (this machine has {gpus} GPU(s)); pass --counts or --device cpu")
    run([sys.executable, str(HERE / "03_scaling_harness.py"), "--device", args.device, "--workers", *map(str, counts)])
    scaling = json.loads(Path("scaling_report.json").read_text())
    size = ["--max-bytes", str(args.max_bytes)] if args.max_bytes else []
    busbw = {}
    for n in counts:
        out = f"allreduce_bench_{n}.json"
        run([sys.executable, str(HERE / "02_allreduce_bench.py"), "--device", args.device, "--ranks", str(n), *size, "--out", out])
        busbw[n] = json.loads(Path(out).read_text())["rows"]
    name, rows = scaling["device_name"], scaling["rows"]
    base = scaling["baseline"]["samples_per_s"]
    print(f"\nscaling curve on {name} ({scaling['backend']}), {scaling['parameters']:,} parameters")
    print(f"{'GPUs':>5} {'weak samples/s':>15} {'weak eff':>9} {'strong eff':>11} {'busbw @ max size (GB/s)':>24}")
    print(f"{1:>5} {base:>15,.0f} {'100.0%':>9} {'100.0%':>11} {'-':>24}")
    for r in rows:
        n = r["workers"]
        print(f"{n:>5} {r['weak']['samples_per_s']:>15,.0f} {r['weak']['efficiency']:>9.1%} "
              f"{r['strong']['efficiency']:>11.1%} {busbw[n][-1]['busbw_gbps']:>24.1f}")
    counts_axis = {"label": "workers (GPUs)", "unit": "", "log": True}
    charts = {
        "scaling_throughput.json": {"title": f"DDP throughput, {name}", "x": counts_axis,
                                    "y": {"label": "samples/s (all workers)", "unit": "samples/s"},
                                    "series": {"weak scaling": [[1, base]] + [[r["workers"], r["weak"]["samples_per_s"]] for r in rows],
                                               "ideal": [[1, base]] + [[r["workers"], base * r["workers"]] for r in rows]}},
        "scaling_efficiency.json": {"title": f"DDP scaling efficiency, {name}", "x": counts_axis,
                                    "y": {"label": "efficiency", "unit": "%"},
                                    "series": {k: [[1, 100.0]] + [[r["workers"], 100 * r[k]["efficiency"]] for r in rows]
                                               for k in ("weak", "strong")}},
        "busbw_by_gpus.json": {"title": f"all_reduce bus bandwidth, {name}",
                               "x": {"label": "message size", "unit": "bytes", "log": True},
                               "y": {"label": "busbw", "unit": "GB/s"},
                               "series": {f"{n} GPUs": [[row["bytes"], row["busbw_gbps"]] for row in busbw[n]] for n in counts}},
    }
    Path("scaling_curve.json").write_text(json.dumps({"scaling": scaling, "busbw": busbw}, indent=1))
    for filename, chart in charts.items():
        Path(filename).write_text(json.dumps({"chart": chart}, indent=1))
    print("wrote scaling_curve.json, " + ", ".join(charts))


if __name__ == "__main__":
    main()
