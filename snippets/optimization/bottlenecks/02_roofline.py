"""Memory-bound or compute-bound? Arithmetic intensity (FLOPs per byte moved) against the card's critical intensity.

A kernel that does fewer FLOPs per byte than peak FLOP/s ÷ memory bandwidth waits on memory; one above it waits
on math. The peak is the one of the units that run the kernel: a bf16 matmul runs on the tensor cores, an fp32
element-wise add on the ordinary (CUDA) cores. The figures are the H100 SXM datasheet's
(https://www.nvidia.com/en-us/data-center/h100/): 989 TFLOP/s dense bf16 tensor, 67 TFLOP/s fp32, 3.35 TB/s HBM3.
"""
TENSOR_BF16, CUDA_CORE_FP32, BANDWIDTH = 989e12, 67e12, 3.35e12


def linear(batch: int, d_in: int, d_out: int) -> tuple[int, int]:
    """Forward of a bf16 Linear layer: FLOPs, and bytes read (input, weight) plus written (output)."""
    return 2 * batch * d_in * d_out, 2 * (batch * d_in + d_in * d_out + batch * d_out)


def elementwise_add(n: int) -> tuple[int, int]:
    """An fp32 add of two n-element tensors: one FLOP per element; two 4-byte reads and a 4-byte write."""
    return n, 4 * 3 * n


def main():
    critical = TENSOR_BF16 / BANDWIDTH
    critical_fp32 = CUDA_CORE_FP32 / BANDWIDTH
    print(f"critical intensity: {TENSOR_BF16 / 1e12:.0f} TFLOP/s / {BANDWIDTH / 1e12:.2f} TB/s = {critical:.0f} FLOP/byte"
          " (bf16 tensor cores)")
    print(f"  fp32 on the CUDA cores: {CUDA_CORE_FP32 / 1e12:.0f} TFLOP/s / {BANDWIDTH / 1e12:.2f} TB/s:"
          f" {critical_fp32:.0f} FLOP/byte")
    print(f"{'operation':34} {'FLOP/byte':>10} {'bound':>8} {'lower bound on time':>20}")
    cases = {f"Linear 4096x4096, batch {b}": (linear(b, 4096, 4096), TENSOR_BF16) for b in (1, 32, 256, 1024, 8192)}
    cases["fp32 add of two 8192x4096 tensors"] = (elementwise_add(8192 * 4096), CUDA_CORE_FP32)
    for name, ((flops, moved), peak) in cases.items():
        intensity = flops / moved
        seconds = max(flops / peak, moved / BANDWIDTH)  # the roofline: the slower of the two limits
        bound = "compute" if intensity > peak / BANDWIDTH else "memory"
        print(f"{name:34} {intensity:10.2f} {bound:>8} {seconds * 1e6:17.1f} us")
    assert linear(32, 4096, 4096)[0] / linear(32, 4096, 4096)[1] < critical < linear(8192, 4096, 4096)[0] / linear(8192, 4096, 4096)[1]
    assert elementwise_add(1)[0] / elementwise_add(1)[1] < critical_fp32  # memory-bound even on the slower units


if __name__ == "__main__":
    main()
