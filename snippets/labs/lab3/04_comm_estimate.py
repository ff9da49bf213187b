"""Lab 3 analysis: the all-reduce time the benchmark predicts for one DDP step, against what the step showed.

    python 04_comm_estimate.py                     # reads ddp_2w.json and allreduce_bench.json here
    python 04_comm_estimate.py --train ddp_4w.json

Missing files are made first by running 03_scaling_harness.py and 02_allreduce_bench.py (kept beside
this file). DDP all-reduces the gradients in buckets of --bucket-cap-mb; the benchmark says how long
an all-reduce of each bucket takes, so their sum is the communication one step needs. The part of it
that shows in the step time (step - compute-only step) is what DDP did not hide behind the backward pass.
Writes comm_estimate.json.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

PROG = Path(__file__).name
HERE = Path(__file__).resolve().parent


def allreduce_time_s(rows, nbytes):
    """Seconds for one all-reduce of nbytes: linear between measured sizes, the latency floor below the
    smallest, the largest size's algbw above it. rows: the benchmark's rows (bytes, time_us, algbw_gbps)."""
    rows = sorted(rows, key=lambda r: r["bytes"])
    if nbytes <= rows[0]["bytes"]:
        return rows[0]["time_us"] * 1e-6
    if nbytes >= rows[-1]["bytes"]:
        return nbytes / (rows[-1]["algbw_gbps"] * 1e9)
    for lo, hi in zip(rows, rows[1:]):
        if nbytes <= hi["bytes"]:
            share = (nbytes - lo["bytes"]) / (hi["bytes"] - lo["bytes"])
            return (lo["time_us"] + share * (hi["time_us"] - lo["time_us"])) * 1e-6


FIRST_BUCKET_BYTES = 2**20  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES: DDP's first bucket is small


def buckets(parameter_bytes, cap_bytes, first_cap=FIRST_BUCKET_BYTES):
    """Bucket sizes DDP all-reduces, as DDP assigns them: whole parameters in reverse order (the last layer's
    gradients are ready first), a bucket closing once it reaches its cap (the first at 1 MiB). DDP never splits a
    parameter, so a parameter larger than the cap is a bucket of its own."""
    sizes, current, cap = [], 0, first_cap
    for nbytes in reversed(parameter_bytes):
        current += nbytes
        if current >= cap:
            sizes.append(current)
            current, cap = 0, cap_bytes
    return sizes + ([current] if current else [])


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"{PROG}: cannot read {path}: {err}")


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--bench", default="allreduce_bench.json", help="02_allreduce_bench.py's output")
    p.add_argument("--train", default="ddp_2w.json", help="an N-worker run written by 03_scaling_harness.py")
    args = p.parse_args(argv)
    if not Path(args.train).is_file():
        print(f"{args.train} not found: running 03_scaling_harness.py first", flush=True)
        subprocess.run([sys.executable, str(HERE / "03_scaling_harness.py")], check=True)
    train = load(args.train)
    if not Path(args.bench).is_file():
        print(f"{args.bench} not found: running 02_allreduce_bench.py first", flush=True)
        subprocess.run([sys.executable, str(HERE / "02_allreduce_bench.py"), "--ranks", str(train["world_size"]),
                        "--device", train["device"]], check=True)
    bench = load(args.bench)
    if bench["world_size"] != train["world_size"]:
        sys.exit(f"{PROG}: {args.bench} was measured on {bench['world_size']} ranks but {args.train} ran on "
                 f"{train['world_size']}: rerun 02_allreduce_bench.py --ranks {train['world_size']}")

    grad_bytes = train["gradient_bytes_per_step"]
    if "parameter_bytes" not in train:
        sys.exit(f"{PROG}: {args.train} has no parameter_bytes: rerun 03_scaling_harness.py to write it again")
    sizes = buckets(train["parameter_bytes"], int(train["bucket_cap_mb"] * 2**20))
    predicted = sum(allreduce_time_s(bench["rows"], s) for s in sizes)
    phase = train["phases"][0]  # the weak-scaling phase: full batch per worker
    exposed = max(0.0, phase["step_s"] - phase["compute_only_step_s"])
    hidden = min(1.0, max(0.0, 1 - exposed / predicted))
    smallest = min(bench["rows"], key=lambda r: r["bytes"])
    fastest = max(bench["rows"], key=lambda r: r["busbw_gbps"])
    result = {"world_size": train["world_size"], "gradient_bytes": grad_bytes, "buckets": len(sizes),
              "predicted_allreduce_s": predicted, "step_s": phase["step_s"],
              "compute_only_step_s": phase["compute_only_step_s"], "exposed_comm_s": exposed,
              "hidden_share": hidden, "smallest_message_us": smallest["time_us"],
              "peak_busbw_gbps": fastest["busbw_gbps"], "peak_busbw_bytes": fastest["bytes"]}
    Path("comm_estimate.json").write_text(json.dumps(result, indent=2))

    print(f"{train['world_size']} workers, {grad_bytes / 2**20:.1f} MiB of gradients per step "
          f"in {len(sizes)} DDP bucket(s) (cap {train['bucket_cap_mb']:g} MiB, whole parameters; the largest "
          f"{max(sizes) / 2**20:.1f} MiB)")
    print(f"benchmark: {smallest['time_us']:.1f} us for {smallest['bytes']:,} bytes (the latency floor); "
          f"peak busbw {fastest['busbw_gbps']:.2f} GB/s at {fastest['bytes']:,} bytes")
    print(f"all-reduce time the benchmark predicts per step: {predicted * 1e3:.3f} ms")
    print(f"measured step {phase['step_s'] * 1e3:.3f} ms, compute only {phase['compute_only_step_s'] * 1e3:.3f} ms "
          f"-> exposed communication {exposed * 1e3:.3f} ms")
    print(f"share of the predicted all-reduce time hidden behind compute: {hidden:.0%}")
    print("wrote comm_estimate.json")


if __name__ == "__main__":
    main()
