"""Memory-bound or compute-bound? Arithmetic intensity (FLOPs per byte moved) against the card's critical intensity.

A kernel that does fewer FLOPs per byte than peak FLOP/s ÷ memory bandwidth waits on memory; one above it waits
on math. The figures are the H100 SXM datasheet's: 989 TFLOP/s dense bf16, 3.35 TB/s HBM3.
"""
PEAK_FLOPS, BANDWIDTH = 989e12, 3.35e12
BYTES = 2  # bf16


def linear(batch: int, d_in: int, d_out: int) -> tuple[int, int]:
    """Forward of a Linear layer: FLOPs, and bytes read (input, weight) plus written (output)."""
    return 2 * batch * d_in * d_out, BYTES * (batch * d_in + d_in * d_out + batch * d_out)


def elementwise_add(n: int) -> tuple[int, int]:
    return n, BYTES * 3 * n  # one add per element; two reads and a write


def main():
    critical = PEAK_FLOPS / BANDWIDTH
    print(f"critical intensity: {PEAK_FLOPS / 1e12:.0f} TFLOP/s / {BANDWIDTH / 1e12:.2f} TB/s = {critical:.0f} FLOP/byte")
    print(f"{'operation':34} {'FLOP/byte':>10} {'bound':>8} {'lower bound on time':>20}")
    cases = {f"Linear 4096x4096, batch {b}": linear(b, 4096, 4096) for b in (1, 32, 256, 1024, 8192)}
    cases["add of two 8192x4096 tensors"] = elementwise_add(8192 * 4096)
    for name, (flops, moved) in cases.items():
        intensity = flops / moved
        seconds = max(flops / PEAK_FLOPS, moved / BANDWIDTH)  # the roofline: the slower of the two limits
        print(f"{name:34} {intensity:10.1f} {'compute' if intensity > critical else 'memory':>8} {seconds * 1e6:17.1f} us")
    assert linear(32, 4096, 4096)[0] / linear(32, 4096, 4096)[1] < critical < linear(8192, 4096, 4096)[0] / linear(8192, 4096, 4096)[1]


if __name__ == "__main__":
    main()
