"""Lab 3 test harness: DDP on 1 and N workers, strong and weak scaling efficiency, communication share.

    python 03_scaling_harness.py                          # 1 and 2 GPUs (NCCL), or 1 and 2 CPU processes (gloo)
    python 03_scaling_harness.py --workers 4 --device cpu
    python 03_scaling_harness.py --workers 2 4 8          # one report for several N

Runs 01_ddp_train.py (kept beside this file) under torchrun: once on 1 worker with --batch samples per
step, then on each N with two phases: --batch per worker (weak scaling) and --batch / N per worker
(strong scaling: the same global batch). Writes scaling_report.json, scaling_report.md and scaling.png
into the working directory; exits 1 when a completion criterion fails.
"""
import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

PROG = os.path.basename(__file__)
TRAIN = Path(__file__).resolve().with_name("01_ddp_train.py")


# --8<-- [start:formulas]
def _positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def speedup(t1_s, tn_s):
    """How many times faster N workers finish the same global batch than 1 worker."""
    _positive(t1_s=t1_s, tn_s=tn_s)
    return t1_s / tn_s


def strong_efficiency(t1_s, tn_s, n):
    """Strong scaling (global batch fixed): speedup over n. t1_s, tn_s: seconds per step on 1 and n workers."""
    _positive(n=n)
    return speedup(t1_s, tn_s) / n


def weak_efficiency(thr1, thrn, n):
    """Weak scaling (batch per worker fixed): n workers' throughput over n times 1 worker's (samples/s)."""
    _positive(thr1=thr1, thrn=thrn, n=n)
    return thrn / (n * thr1)


def comm_share(step_s, compute_only_s):
    """Share of a step not hidden behind compute: (step - compute-only step) / step, at least 0."""
    _positive(step_s=step_s, compute_only_s=compute_only_s)
    return max(0.0, (step_s - compute_only_s) / step_s)


# Lab 3's worked example: 1 worker 100 samples/s, 2 workers 190 samples/s -> weak efficiency 0.95;
# 100 ms per step on 1 worker, 60 ms on 2 for the same global batch -> speedup 1.67, efficiency 0.83.
assert abs(weak_efficiency(100, 190, 2) - 0.95) < 1e-9
assert abs(strong_efficiency(0.100, 0.060, 2) - 0.100 / 0.120) < 1e-9
assert abs(comm_share(0.010, 0.008) - 0.2) < 1e-9
# --8<-- [end:formulas]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[2], help="worker counts N to compare with 1")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--batch", type=int, help="samples per worker (weak) and global batch (strong); "
                                             "default 8192 on GPU, 32 on CPU")
    p.add_argument("--steps", type=int, help="timed steps (passed to 01_ddp_train.py)")
    p.add_argument("--warmup", type=int, help="warm-up steps (passed to 01_ddp_train.py)")
    p.add_argument("--hidden", type=int, help="MLP width (passed to 01_ddp_train.py)")
    p.add_argument("--layers", type=int, help="MLP depth (passed to 01_ddp_train.py)")
    return p.parse_args(argv)


def train(n, batches, device, args):
    """One torchrun launch of 01_ddp_train.py on n workers; returns its JSON result."""
    out = Path(f"ddp_{n}w.json").resolve()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", str(TRAIN),
           "--device", device, "--out", str(out), "--per-rank-batch", *map(str, batches)]
    for flag in ("steps", "warmup", "hidden", "layers"):
        if getattr(args, flag) is not None:
            cmd += [f"--{flag}", str(getattr(args, flag))]
    # NVLink SHARP (NVLS) stays off for every child: the GPU runner requires it (see the page).
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    print("".join(f"  [{n}w] {line}\n" for line in proc.stdout.splitlines()), end="")
    if proc.returncode or not out.is_file():
        sys.stderr.write(proc.stderr[-4000:])
        sys.exit(f"{PROG}: the {n}-worker run of {TRAIN.name} failed (exit {proc.returncode}); see its errors above")
    return json.loads(out.read_text())


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def clock(phase, kind):
    """Mean SM clock (MHz) over the ranks of a phase in one kind of loop (sync, compute, solo); None without NVML."""
    return mean([(r.get("gpu") or {}).get(kind) and r["gpu"][kind]["sm_clock_mhz"] for r in phase.get("ranks", [])])


def gap(b, weak):
    """Where weak-scaling efficiency goes: the compute-only step of N workers against 1 worker's, how much the ranks
    differ, and each rank's compute-only step when it runs alone (what running all ranks at once costs)."""
    computes = [r["compute_only_step_s"] for r in weak.get("ranks", [])]
    solo = weak.get("solo_compute_step_s")
    return {
        "compute_only_step_s": weak["compute_only_step_s"], "baseline_compute_only_step_s": b["compute_only_step_s"],
        # the weak efficiency that would remain if communication cost nothing at all
        "compute_efficiency": b["compute_only_step_s"] / weak["compute_only_step_s"],
        "rank_spread": (max(computes) - min(computes)) / mean(computes) if computes else None,
        "solo_compute_step_s": solo,
        "concurrency_slowdown": weak["compute_only_step_s"] / solo if solo else None,
        "sm_clock_mhz": {"baseline": clock(b, "compute"), "all_at_once": clock(weak, "compute"),
                         "alone": clock(weak, "solo")},
    }


def analyse(base, runs):
    """Efficiencies per N from the 1-worker result and {N: N-worker result}; pure, for tests too."""
    b = base["phases"][0]
    rows = []
    for n, run in sorted(runs.items()):
        weak, strong = run["phases"][0], run["phases"][1]
        rows.append({
            "workers": n,
            "weak": {"per_worker_batch": weak["per_rank_batch"], "samples_per_s": weak["samples_per_s_total"],
                     "efficiency": weak_efficiency(b["samples_per_s_total"], weak["samples_per_s_total"], n),
                     "comm_share": comm_share(weak["step_s"], weak["compute_only_step_s"]),
                     "gap": gap(b, weak)},
            "strong": {"per_worker_batch": strong["per_rank_batch"], "step_s": strong["step_s"],
                       "samples_per_s": strong["samples_per_s_total"],
                       "speedup": speedup(b["step_s"], strong["step_s"]),
                       "efficiency": strong_efficiency(b["step_s"], strong["step_s"], n),
                       "comm_share": comm_share(strong["step_s"], strong["compute_only_step_s"])},
        })
    return rows


def criteria(base, runs, rows):
    """The lab's completion criteria, each True or False."""
    phases = [p for r in [base, *runs.values()] for p in r["phases"]]
    effs = [r[k]["efficiency"] for r in rows for k in ("weak", "strong")]
    return {
        "every run used the requested worker count": base["world_size"] == 1
        and all(r["world_size"] == n for n, r in runs.items()),
        "every rank reported a throughput > 0": all(rk["samples_per_s"] > 0 for p in phases for rk in p["ranks"]),
        "model replicas identical on all ranks": all(p["replicas_in_sync"] for p in phases),
        # compute-only steps that still all-reduced would leave the replicas identical and hide the communication
        "compute-only steps did not communicate (replicas drifted apart)":
            all(p.get("compute_only_without_communication", True) for p in phases),
        "losses finite": all(math.isfinite(rk["loss"]) for p in phases for rk in p["ranks"]),
        "efficiencies finite and > 0": all(math.isfinite(e) and e > 0 for e in effs),
    }


def describe_gap(g):
    """One line on the weak-scaling gap: compute alone vs 1 worker, rank spread, alone vs all at once, SM clocks."""
    text = (f"compute-only step {g['compute_only_step_s'] * 1e3:.2f} ms vs {g['baseline_compute_only_step_s'] * 1e3:.2f} ms"
            f" on 1 worker ({g['compute_efficiency']:.1%} of its speed)")
    if g["rank_spread"] is not None:
        text += f"; ranks within {g['rank_spread']:.3%} of each other"
    if g["concurrency_slowdown"] is not None:
        text += (f"; each rank alone {g['solo_compute_step_s'] * 1e3:.2f} ms, so all at once is"
                 f" {g['concurrency_slowdown']:.3f}x alone")
    c = g["sm_clock_mhz"]
    if None not in c.values():
        text += f"; SM clock {c['baseline']:.0f} MHz on 1 worker, {c['all_at_once']:.0f} all at once, {c['alone']:.0f} alone"
    return text


def write_reports(report):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, b = report["rows"], report["baseline"]
    ns = [1] + [r["workers"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ns, [b["samples_per_s"] * n for n in ns], "k--", label="ideal (linear)")
    ax1.plot(ns, [b["samples_per_s"]] + [r["weak"]["samples_per_s"] for r in rows], "o-", label="weak scaling")
    ax1.plot(ns, [b["samples_per_s"]] + [r["strong"]["samples_per_s"] for r in rows], "s-", label="strong scaling")
    ax1.set(xlabel="workers (processes)", ylabel="throughput (samples/s)", xticks=ns, title="Throughput")
    ax2.axhline(100, color="k", linestyle="--", label="ideal")
    for kind, marker in (("weak", "o-"), ("strong", "s-")):
        ax2.plot(ns, [100] + [100 * r[kind]["efficiency"] for r in rows], marker, label=f"{kind} scaling")
    ax2.set(xlabel="workers (processes)", ylabel="scaling efficiency (%)", xticks=ns, ylim=(0, None),
            title="Efficiency vs 1 worker")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"DDP on {report['device_name']} ({report['backend']})")
    fig.tight_layout()
    fig.savefig("scaling.png", dpi=120)
    plt.close(fig)

    lines = [f"# DDP scaling on {report['device_name']} ({report['backend']})", "",
             f"Model: {report['parameters']:,} parameters; 1-worker baseline: batch {b['batch']}, "
             f"{b['step_s'] * 1e3:.2f} ms/step, {b['samples_per_s']:,.0f} samples/s.", "",
             "| workers | weak: samples/s | weak efficiency | weak comm share "
             "| strong: ms/step | strong speedup | strong efficiency | strong comm share |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        w, s = r["weak"], r["strong"]
        lines.append(f"| {r['workers']} | {w['samples_per_s']:,.0f} | {w['efficiency']:.1%} | {w['comm_share']:.1%} "
                     f"| {s['step_s'] * 1e3:.2f} | {s['speedup']:.2f}x | {s['efficiency']:.1%} "
                     f"| {s['comm_share']:.1%} |")
    lines += ["", "Where the weak-scaling gap goes (no_sync steps: no communication at all):", ""]
    lines += [f"- {r['workers']} workers: {describe_gap(r['weak']['gap'])}" for r in rows]
    lines += ["", "![throughput and efficiency](scaling.png)", "", "Completion criteria:", ""]
    lines += [f"- [{'x' if ok else ' '}] {name}" for name, ok in report["criteria"].items()]
    Path("scaling_report.md").write_text("\n".join(lines) + "\n")
    Path("scaling_report.json").write_text(json.dumps(report, indent=2))


def main(argv=None):
    args = parse_args(argv)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = "cuda" if use_cuda else "cpu"
    batch = args.batch or (8192 if use_cuda else 32)
    for n in args.workers:
        if n < 2:
            sys.exit(f"{PROG}: --workers {n}: compare at least 2 workers with the 1-worker baseline")
        if batch % n:
            sys.exit(f"{PROG}: --batch {batch} is not divisible by --workers {n}: pick a batch that every N divides")
        if use_cuda and n > torch.cuda.device_count():
            sys.exit(f"{PROG}: --workers {n} but {torch.cuda.device_count()} GPU(s) are visible: lower --workers")
    if not TRAIN.is_file():
        sys.exit(f"{PROG}: {TRAIN} is missing: save 01_ddp_train.py beside this file")
    try:
        import matplotlib  # noqa: F401  (checked now, not after the runs: scaling.png needs it)
    except ImportError:
        sys.exit(f"{PROG}: matplotlib is not installed and draws scaling.png: pip install matplotlib")

    base = train(1, [batch], device, args)
    runs = {n: train(n, [batch, batch // n], device, args) for n in sorted(set(args.workers))}
    rows = analyse(base, runs)
    checks = criteria(base, runs, rows)
    b = base["phases"][0]
    report = {"device": device, "device_name": b["ranks"][0]["device_name"], "backend": base["backend"],
              "torch": torch.__version__, "parameters": base["parameters"],
              "baseline": {"batch": batch, "step_s": b["step_s"], "samples_per_s": b["samples_per_s_total"]},
              "rows": rows, "criteria": checks, "passed": all(checks.values())}
    write_reports(report)

    print(f"\n{'workers':>7} {'weak samples/s':>15} {'weak eff':>9} {'strong speedup':>15} {'strong eff':>11} "
          f"{'comm share (weak)':>18}")
    print(f"{1:>7} {b['samples_per_s_total']:>15,.0f} {'100.0%':>9} {'1.00x':>15} {'100.0%':>11} {'-':>18}")
    for r in rows:
        print(f"{r['workers']:>7} {r['weak']['samples_per_s']:>15,.0f} {r['weak']['efficiency']:>9.1%} "
              f"{r['strong']['speedup']:>14.2f}x {r['strong']['efficiency']:>11.1%} {r['weak']['comm_share']:>18.1%}")
    print("where the weak-scaling gap goes (no_sync steps, no communication):")
    for r in rows:
        print(f"  {r['workers']} workers: {describe_gap(r['weak']['gap'])}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print("wrote scaling_report.json, scaling_report.md, scaling.png")
    if not report["passed"]:
        sys.exit(f"{PROG}: a completion criterion failed (see FAIL above)")


if __name__ == "__main__":
    main()
