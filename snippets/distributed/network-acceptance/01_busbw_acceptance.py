#!/usr/bin/env python3
"""Does this all_reduce_perf run meet its fabric's published bus bandwidth? Reads nccl-tests output, judges it.

    all_reduce_perf -b 1G -e 8G -f 2 -g 8 | python 01_busbw_acceptance.py --fabric nvlink4 --nvls
    python 01_busbw_acceptance.py run.txt --fabric ib-ndr-400 --nics 8
    python 01_busbw_acceptance.py --list

Takes the bus bandwidth (busbw) of the largest message size in the output, the out-of-place and in-place
columns, and compares it with the band of --fabric: the figure NVIDIA's NCCL engineers give for that hardware
(per NIC for networks, times --nics), and this handbook's acceptance threshold, 92 % of it. Any nonzero #wrong
(a wrong result) fails the run whatever its speed. Writes busbw_acceptance.json. Exit status: 0 accepted, 1
rejected, 2 unreadable input or bad arguments.
"""
import argparse
import json
import re
import sys

ACCEPT = 0.92  # of the published figure: this handbook's threshold, not NVIDIA's
# --8<-- [start:bands]
# fabric -> (what it is, GB/s of busbw, unit, source). "per NIC" figures are multiplied by --nics.
BANDS = {
    "nvlink4": ("HGX H100/H200, 8 GPUs on NVLink 4 + NVSwitch, ring algorithm (NCCL_ALGO=Ring)", 370.0, "node",
                "https://github.com/NVIDIA/nccl-tests/issues/212"),
    "nvlink4-nvls": ("HGX H100/H200, 8 GPUs, NVLink SHARP (NCCL's default all-reduce there)", 480.0, "node",
                     "https://github.com/NVIDIA/nccl-tests/issues/212"),
    "ib-ndr-400": ("ConnectX-7 at 400 Gb/s (InfiniBand NDR or RoCE), 2+ nodes, NCCL_ALGO=Ring", 48.0, "NIC",
                   "https://github.com/NVIDIA/nccl-tests/issues/319"),
    "ib-hdr-200": ("200 Gb/s NIC (InfiniBand HDR), 2+ nodes", 24.0, "NIC",
                   "https://github.com/NVIDIA/nccl-tests/issues/119"),
    "eth-100": ("100 Gb/s NIC, 2+ nodes", 12.0, "NIC", "https://github.com/NVIDIA/nccl-tests/issues/119"),
}
# --8<-- [end:bands]
ROW = re.compile(r"^\s*(?:\[\d+\]\s*)?(\d+)\s+(\d+)\s+\S+\s+\S+\s+-?\d+\s+"  # size count type redop root
                 r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+|N/A)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+|N/A)")


def parse(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows.append({"bytes": int(m[1]), "busbw_out": float(m[5]), "wrong_out": m[6],
                         "busbw_in": float(m[9]), "wrong_in": m[10]})
    return rows


# --8<-- [start:judge]
def judge(rows: list[dict], fabric: str, nics: int) -> dict:
    what, figure, unit, source = BANDS[fabric]
    expected = figure * (nics if unit == "NIC" else 1)
    threshold = ACCEPT * expected
    largest = max(rows, key=lambda r: r["bytes"])
    busbw = min(largest["busbw_out"], largest["busbw_in"])  # the worse of out-of-place and in-place
    wrong = [r["bytes"] for r in rows if r["wrong_out"] not in ("0", "N/A") or r["wrong_in"] not in ("0", "N/A")]
    problems = []
    if wrong:
        problems.append(f"#wrong is not 0 at {len(wrong)} size(s), from {min(wrong)} bytes: results are corrupted")
    if busbw < threshold:
        problems.append(f"busbw {busbw:.1f} GB/s at {largest['bytes']} bytes < {threshold:.1f} GB/s "
                        f"({ACCEPT:.0%} of {expected:.0f})")
    notes = []
    if largest["bytes"] < 2**30:
        notes.append(f"largest size {largest['bytes']} bytes is under 1 GiB: peak bandwidth may not be reached; "
                     "run with -e 8G")
    return {"fabric": fabric, "what": what, "expected_GBps": expected, "threshold_GBps": round(threshold, 1),
            "busbw_GBps": busbw, "bytes": largest["bytes"], "accepted": not problems, "problems": problems,
            "notes": notes, "source": source}
# --8<-- [end:judge]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line naming the argument and what it accepts, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def main() -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", help="a file of all_reduce_perf output (default: standard input)")
    parser.add_argument("--fabric", choices=sorted(BANDS), help="the hardware the run went over")
    parser.add_argument("--nics", type=int, default=1, help="NICs per node carrying the run (network fabrics)")
    parser.add_argument("--list", action="store_true", help="print the bands and their sources")
    args = parser.parse_args()
    if args.list:
        for name, (what, figure, unit, source) in BANDS.items():
            print(f"{name:<13} {figure:>6.0f} GB/s per {unit:<4} {what} ({source})")
        return 0
    if not args.fabric:
        parser.error(f"--fabric is required: one of {', '.join(sorted(BANDS))}")
    if args.nics < 1 or (BANDS[args.fabric][2] == "node" and args.nics != 1):
        parser.error(f"--nics {args.nics}: a whole number >= 1, and only with the per-NIC fabrics")
    try:
        text = open(args.output, encoding="utf-8").read() if args.output else sys.stdin.read()
    except OSError as err:
        parser.error(f"cannot read {args.output}: {err.strerror}")
    rows = parse(text)
    if not rows:
        parser.error(f"no all_reduce_perf result rows in {args.output or 'standard input'}: pass the program's output")
    result = judge(rows, args.fabric, args.nics)
    print(f"{args.fabric}: {result['what']}")
    print(f"busbw {result['busbw_GBps']:.1f} GB/s at {result['bytes']} bytes; published {result['expected_GBps']:.0f} "
          f"GB/s ({result['source']}), accept from {result['threshold_GBps']:.1f}")
    for line in result["problems"] + result["notes"]:
        print(f"  {line}")
    print("ACCEPTED" if result["accepted"] else "REJECTED")
    with open("busbw_acceptance.json", "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)
    return 0 if result["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
