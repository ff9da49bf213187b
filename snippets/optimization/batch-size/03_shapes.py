"""Shapes the tensor cores like: dimension alignment, and wave quantization across the SMs.

Alignment: the same bf16 product with every dimension 8192, 8200 (a multiple of 8), 8193 and 8191 (odd). Waves: a
bf16 product (M x 8192) @ (8192 x 8192) for M from 128 to 4096 in steps of 128. A library splits the output into
tiles, one thread block each, and the SMs run them in waves: when the tile count just passes a multiple of the SM
count, the last wave runs almost empty and throughput drops, though the work grew by one row of tiles. Times with
CUDA events, median of several runs. Writes shapes.json, whose chart the page draws. On a CPU it runs tiny sizes:
a smoke test of the program, with no tensor cores to show anything.
"""
import json
import statistics
import time

import torch


def tflops(m: int, n: int, k: int, device: str) -> float:
    reps, inner = (5, 10) if device == "cuda" else (2, 2)
    a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
    b = torch.randn(k, n, device=device, dtype=torch.bfloat16)
    out = torch.empty(m, n, device=device, dtype=torch.bfloat16)
    torch.matmul(a, b, out=out)  # warm-up: the library picks its kernel for this shape
    samples = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                torch.matmul(a, b, out=out)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / inner)
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                torch.matmul(a, b, out=out)
            samples.append((time.perf_counter() - t0) / inner)
    return 2 * m * n * k / statistics.median(samples) / 1e12


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    sms = torch.cuda.get_device_properties(0).multi_processor_count if device == "cuda" else None
    base, step, top = (8192, 128, 4096) if device == "cuda" else (64, 16, 64)
    aligned = {d: tflops(d, d, d, device) for d in (base, base + 8, base + 1, base - 1)}
    rows = {m: tflops(m, base, base, device) for m in range(step, top + 1, step)}
    print(f"{name}{f' ({sms} SMs)' if sms else ''}: bf16 matmul TFLOP/s (median)")
    print("  alignment, every dimension d:")
    for d, v in aligned.items():
        print(f"    d={d:5d} ({'multiple of 8' if d % 8 == 0 else 'odd'}): {v:7.1f}  {v / aligned[base]:6.1%} of d={base}")
    print(f"  waves, (M x {base}) @ ({base} x {base}):")
    drops = []
    previous = None
    for m, v in rows.items():
        mark = ""
        if previous is not None and v < 0.9 * previous:
            drops.append(m)
            mark = f"  <- {1 - v / previous:.0%} below M={m - step}"
        print(f"    M={m:5d}: {v:7.1f}{mark}")
        previous = v
    with open("shapes.json", "w") as f:
        json.dump({"device": name, "sm_count": sms, "alignment": {str(d): v for d, v in aligned.items()},
                   "alignment_ratio_odd": aligned[base - 1] / aligned[base],
                   "rows": {str(m): v for m, v in rows.items()}, "drops_at_m": drops,
                   "best_rows_tflops": max(rows.values()), "worst_rows_tflops_above_1024": min(
                       v for m, v in rows.items() if m >= min(1024, top)),
                   "chart": {"title": f"bf16 (M x {base}) @ ({base} x {base}), {name}",
                             "x": {"label": "rows M", "unit": ""}, "y": {"label": "throughput", "unit": "TFLOP/s"},
                             "series": {"measured": [[m, v] for m, v in rows.items()]}}}, f, indent=1)


if __name__ == "__main__":
    main()
