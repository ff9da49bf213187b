"""FP8 on Hopper: how fast an e4m3 matrix product runs against bf16, and what per-tensor scaling is for.

Part 1 (anywhere): small values cast to float8_e4m3fn as they are mostly underflow to zero, because the format's
smallest subnormal is 2^-9; scaled so that the tensor's largest magnitude maps to the format's largest (448), they
survive. Part 2 (a GPU with FP8 tensor cores, compute capability 8.9 or newer): the same n x n x n product in bf16
(torch.matmul) and in FP8 (torch._scaled_mm, per-tensor scales, bf16 output), timed with CUDA events, against this
card's dense datasheet peaks, and the error of each against an fp32 reference. Writes fp8_matmul.json.
"""
import json
import statistics

import torch

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448
# Dense (no sparsity) datasheet peaks, FLOP/s, by the exact name the driver reports: NVIDIA H100 datasheet
# (https://www.nvidia.com/en-us/data-center/h100/) and H200 datasheet (https://www.nvidia.com/en-us/data-center/h200/),
# which print them with sparsity, twice these.
DATASHEET = {
    "NVIDIA H100 80GB HBM3": {"bf16": 989e12, "fp8": 1979e12},
    "NVIDIA H100 NVL": {"bf16": 835e12, "fp8": 1670e12},
    "NVIDIA H200": {"bf16": 989e12, "fp8": 1979e12},
    "NVIDIA H200 NVL": {"bf16": 835e12, "fp8": 1670e12},
}


# --8<-- [start:scale]
def to_fp8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor scaling: divide by amax/448 so the largest magnitude lands on e4m3's largest value. Returns the
    fp8 tensor and the scale that turns it back (what torch._scaled_mm multiplies its result by)."""
    scale = (t.abs().max().float() / E4M3_MAX).clamp(min=1e-12)
    return (t / scale).to(E4M3), scale
# --8<-- [end:scale]


def underflow(device: str) -> dict:
    g = torch.randn(1 << 16, device=device) * 1e-3  # gradient-sized values
    plain = g.to(E4M3).float()
    q, scale = to_fp8(g)
    scaled = q.float() * scale
    zeros = lambda x: (x == 0).float().mean().item()  # noqa: E731
    rel = lambda x: ((x - g).norm() / g.norm()).item()  # noqa: E731
    return {"unscaled": {"zero_share": zeros(plain), "relative_error": rel(plain)},
            "scaled": {"zero_share": zeros(scaled), "relative_error": rel(scaled)}}


def median_seconds(fn, reps: int = 7, inner: int = 10) -> float:
    fn()
    samples = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / inner)
    return statistics.median(samples)


def matmuls(n: int) -> dict:
    a, w = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")  # y = a @ w.T, like a Linear layer
    reference = a @ w.T  # fp32 (full-precision matmul: TF32 is off by default)
    a16, w16 = a.bfloat16(), w.bfloat16()
    (a8, sa), (w8, sw) = to_fp8(a), to_fp8(w)
    # --8<-- [start:call]
    runs = {"bf16": lambda: a16 @ w16.T,
            # _scaled_mm wants the second operand column-major: w8.T of a row-major w8 is exactly that
            "fp8": lambda: torch._scaled_mm(a8, w8.T, scale_a=sa, scale_b=sw, out_dtype=torch.bfloat16)}
    # --8<-- [end:call]
    found = {}
    for fmt, run in runs.items():
        seconds = median_seconds(run)
        error = ((run().float() - reference).norm() / reference.norm()).item()
        found[fmt] = {"tflops": 2 * n**3 / seconds / 1e12, "relative_error": error}
    return found


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "CPU", "underflow": underflow(device)}
    u = result["underflow"]
    print("values ~1e-3 cast to float8_e4m3fn:")
    for how in ("unscaled", "scaled"):
        print(f"  {how:9} {u[how]['zero_share']:7.1%} became zero, relative error {u[how]['relative_error']:.3f}")
    fp8_cores = device == "cuda" and torch.cuda.get_device_capability() >= (8, 9)
    if not fp8_cores:
        print("no GPU with FP8 tensor cores (compute capability 8.9+) here: the timing part is skipped")
    else:
        name = result["device"]
        sheet = DATASHEET.get(name)
        result["sizes"] = {n: matmuls(n) for n in (4096, 8192)}
        result["datasheet"] = sheet
        print(f"{name}: n x n x n products, TFLOP/s (median) and relative error against fp32")
        for n, by_fmt in result["sizes"].items():
            line = "  ".join(f"{fmt} {r['tflops']:6.0f} TFLOP/s"
                             + (f" ({r['tflops'] * 1e12 / sheet[fmt]:.0%} of {sheet[fmt] / 1e12:.0f})" if sheet else "")
                             + f", error {r['relative_error']:.4f}" for fmt, r in by_fmt.items())
            print(f"  n={n}: {line}; fp8/bf16 = {by_fmt['fp8']['tflops'] / by_fmt['bf16']['tflops']:.2f}")
        best = result["sizes"][8192]
        result["fp8_over_bf16_8192"] = best["fp8"]["tflops"] / best["bf16"]["tflops"]
    with open("fp8_matmul.json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
