"""Benchmark of the capacity calculators' worst inputs: each must answer in a few seconds, whatever the fleet.

    .venv/bin/python checks/bench/bench_calculators.py [--runs N]

The inputs are the ones that used to hang (checks/test_capacity_inputs.py's WORST, which only proves they finish);
target on the 2-core CI machine: every median under 5 s. Printed, never asserted.
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_capacity_inputs import WORST, run  # noqa: E402 - the same in-process runs the checks make

TARGET_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, argv in WORST:
        times = [run(name, *argv)[3] for _ in range(args.runs)]
        median = statistics.median(times)
        print(f"{name:12} median {median:6.2f} s over {args.runs} runs  {'ok' if median < TARGET_S else 'OVER ' + str(TARGET_S) + ' s'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
