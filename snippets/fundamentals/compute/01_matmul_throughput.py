"""Matrix-multiply throughput per number format and size: 2·n³ floating-point operations per product.

On a GPU it sweeps n up to 16384 in fp32, tf32, fp16 and bf16; on a CPU, small sizes in fp32 and bf16.
"""
import json
import statistics
import time

import torch

# Dense (no sparsity) datasheet peaks, FLOP/s, NVIDIA H100 SXM datasheet (the H200 has the same tensor cores).
DATASHEET = {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12}
# bf16 first: a long sweep heats the card, and the headline number should not pay for the others.
FORMATS = {"bf16": (torch.bfloat16, "highest"), "fp16": (torch.float16, "highest"),
           "tf32": (torch.float32, "high"), "fp32": (torch.float32, "highest")}


def seconds_per_product(n: int, dtype, device: str, products: int = 10) -> float:
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    batch = lambda: [torch.matmul(a, b, out=out) for _ in range(products)]  # noqa: E731
    batch()  # warm-up: cuBLAS picks its kernel on the first call
    samples = []
    for _ in range(5):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            batch()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / products)
        else:
            t0 = time.perf_counter()
            batch()
            samples.append((time.perf_counter() - t0) / products)
    return statistics.median(samples)


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = [1024, 2048, 4096, 8192, 16384] if device == "cuda" else [128, 256, 512]
    formats = list(FORMATS) if device == "cuda" else ["bf16", "fp32"]
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    tflops = {}
    for fmt in formats:
        dtype, precision = FORMATS[fmt]
        torch.set_float32_matmul_precision(precision)  # "high" lets fp32 matmuls use TF32 tensor cores
        tflops[fmt] = {n: 2 * n**3 / seconds_per_product(n, dtype, device, 10 if device == "cuda" else 2) / 1e12
                       for n in sizes}
    torch.set_float32_matmul_precision("highest")
    print(f"{name}: matmul throughput, TFLOP/s (median)")
    print("       n " + "".join(f"{fmt:>9}" for fmt in formats))
    for n in sizes:
        print(f"{n:8d} " + "".join(f"{tflops[fmt][n]:9.1f}" for fmt in formats))
    headline_fmt = "bf16"
    headline_n = 8192 if device == "cuda" else sizes[-1]
    best = max(tflops[headline_fmt].values())
    print(f"{headline_fmt} n={headline_n}: {tflops[headline_fmt][headline_n]:.1f} TFLOP/s"
          f" = {tflops[headline_fmt][headline_n] / best:.1%} of the best {headline_fmt} rate measured here ({best:.1f})")
    if device == "cuda" and ("H100" in name or "H200" in name):
        print(f"best {headline_fmt} = {best * 1e12 / DATASHEET[headline_fmt]:.1%} of the dense datasheet peak"
              f" ({DATASHEET[headline_fmt] / 1e12:.0f} TFLOP/s)")
    with open("matmul_throughput.json", "w") as f:
        json.dump({"device": name, "tflops": tflops, "headline": {"format": headline_fmt, "n": headline_n},
                   "chart": {"title": f"Matmul throughput, {name}", "x": {"label": "matrix size n", "unit": "", "log": True},
                             "y": {"label": "throughput", "unit": "TFLOP/s"},
                             "series": {fmt: [[n, v] for n, v in by_n.items()] for fmt, by_n in tflops.items()}}},
                  f, indent=1)


if __name__ == "__main__":
    main()
