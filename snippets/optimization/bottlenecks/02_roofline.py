"""Memory-bound or compute-bound? Arithmetic intensity (FLOPs per byte moved) against the card's balance point.

A kernel that does fewer FLOPs per byte than peak FLOP/s ÷ memory bandwidth waits on memory; one above it waits on
math. Both figures are the card's own: the program looks the card up by the exact name the driver reports and
refuses a card it has no datasheet figures for. The peak is that of the units that run the kernel: a bf16 matmul
runs on the tensor cores, an fp32 element-wise add on the ordinary (CUDA) cores.

    python 02_roofline.py                          # the GPU this machine has
    python 02_roofline.py --card "NVIDIA H200"     # any card in DATASHEET, with or without a GPU
Without a GPU and without --card it prints the table for every card it knows.
"""
import argparse
import json
import sys

# Dense (no sparsity) datasheet figures, keyed by the name the driver reports: bf16 tensor-core FLOP/s, fp32
# FLOP/s on the CUDA cores, HBM bytes/s. NVIDIA H100 datasheet (https://www.nvidia.com/en-us/data-center/h100/)
# and H200 datasheet (https://www.nvidia.com/en-us/data-center/h200/); they print bf16 with sparsity, twice these.
# --8<-- [start:datasheet]
DATASHEET = {
    "NVIDIA H100 80GB HBM3": {"board": "H100 SXM", "bf16": 989e12, "fp32": 67e12, "hbm": 3.35e12},
    "NVIDIA H100 NVL": {"board": "H100 NVL", "bf16": 835e12, "fp32": 60e12, "hbm": 3.9e12},
    "NVIDIA H200": {"board": "H200 SXM", "bf16": 989e12, "fp32": 67e12, "hbm": 4.8e12},
    "NVIDIA H200 NVL": {"board": "H200 NVL", "bf16": 835e12, "fp32": 60e12, "hbm": 4.8e12},
}
# --8<-- [end:datasheet]


def linear(batch: int, d_in: int, d_out: int) -> tuple[int, int]:
    """Forward of a bf16 Linear layer: FLOPs, and bytes read (input, weight) plus written (output)."""
    return 2 * batch * d_in * d_out, 2 * (batch * d_in + d_in * d_out + batch * d_out)


def elementwise_add(n: int) -> tuple[int, int]:
    """An fp32 add of two n-element tensors: one FLOP per element; two 4-byte reads and a 4-byte write."""
    return n, 4 * 3 * n


def cases() -> dict:
    """{name: ((FLOPs, bytes), the units that run it)}"""
    found = {f"Linear 4096x4096, batch {b}": (linear(b, 4096, 4096), "bf16") for b in (1, 32, 128, 256, 512, 1024, 8192)}
    found["fp32 add of two 8192x4096 tensors"] = (elementwise_add(8192 * 4096), "fp32")
    return found


def verdicts(card: str) -> dict:
    """The balance points of `card` and each case's intensity, bound and lowest possible time."""
    sheet = DATASHEET[card]
    balance = {units: sheet[units] / sheet["hbm"] for units in ("bf16", "fp32")}
    rows = {}
    for name, ((flops, moved), units) in cases().items():
        intensity = flops / moved
        rows[name] = {"flop_per_byte": intensity, "bound": "compute" if intensity > balance[units] else "memory",
                      "min_time_us": max(flops / sheet[units], moved / sheet["hbm"]) * 1e6}  # the roofline
    return {"card": card, "board": sheet["board"], "balance_flop_per_byte": balance, "cases": rows}


def show(v: dict):
    sheet = DATASHEET[v["card"]]
    print(f"{v['card']} ({v['board']}): {sheet['bf16'] / 1e12:.0f} TFLOP/s bf16 / {sheet['hbm'] / 1e12:.2f} TB/s"
          f" = {v['balance_flop_per_byte']['bf16']:.0f} FLOP/byte on the tensor cores;"
          f" fp32 on the CUDA cores: {v['balance_flop_per_byte']['fp32']:.0f} FLOP/byte")
    print(f"  {'operation':34} {'FLOP/byte':>10} {'bound':>8} {'lowest time':>12}")
    for name, row in v["cases"].items():
        print(f"  {name:34} {row['flop_per_byte']:10.2f} {row['bound']:>8} {row['min_time_us']:9.1f} us")


def this_gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", help=f"one of: {', '.join(DATASHEET)}")
    args = parser.parse_args(argv)
    # --8<-- [start:card]
    card = args.card or this_gpu()  # the exact name the driver reports, e.g. "NVIDIA H200"
    if card is not None and card not in DATASHEET:
        sys.exit(f"02_roofline.py: no datasheet figures for {card!r}: add its dense bf16 and fp32 FLOP/s and its memory"
                 f" bandwidth to DATASHEET (known: {', '.join(DATASHEET)}); never borrow another card's")
    # --8<-- [end:card]
    results = [verdicts(c) for c in ([card] if card else DATASHEET)]
    for v in results:
        show(v)
    with open("roofline.json", "w") as f:
        json.dump({v["card"]: v for v in results}, f, indent=1)


if __name__ == "__main__":
    main()
