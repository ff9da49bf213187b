"""A measured roofline: achieved FLOP/s of real kernels against their arithmetic intensity, under the card's roof.

It times bf16 Linear-layer products (weight 8192x8192, batch rows from 1 to 8192: the intensity grows with the
batch) and element-wise adds in fp32 and bf16 (a fraction of a FLOP per byte), with CUDA events, median of several
runs. Each point is plotted at its intensity; the roof is min(peak, intensity x bandwidth) from this card's
datasheet figures, and the program states each kernel as a share of the roof at its intensity. Writes
measured_roofline.json, whose chart the page draws. On a CPU it times tiny versions with no roof: a smoke test.
"""
import json
import statistics
import time

import torch

# Dense datasheet figures by the exact name the driver reports (see 02_roofline.py for the sources):
# bf16 tensor-core FLOP/s, fp32 CUDA-core FLOP/s, HBM bytes/s.
DATASHEET = {
    "NVIDIA H100 80GB HBM3": {"bf16": 989e12, "fp32": 67e12, "hbm": 3.35e12},
    "NVIDIA H100 NVL": {"bf16": 835e12, "fp32": 60e12, "hbm": 3.9e12},
    "NVIDIA H200": {"bf16": 989e12, "fp32": 67e12, "hbm": 4.8e12},
    "NVIDIA H200 NVL": {"bf16": 835e12, "fp32": 60e12, "hbm": 4.8e12},
}


def median_seconds(fn, device: str) -> float:
    reps, inner = (7, 10) if device == "cuda" else (3, 2)
    fn()  # warm-up: the library picks its kernel on the first call
    samples = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / inner)
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def linear_point(batch: int, width: int, device: str) -> dict:
    x = torch.randn(batch, width, device=device, dtype=torch.bfloat16)
    w = torch.randn(width, width, device=device, dtype=torch.bfloat16)
    out = torch.empty(batch, width, device=device, dtype=torch.bfloat16)
    seconds = median_seconds(lambda: torch.matmul(x, w, out=out), device)
    flops, moved = 2 * batch * width * width, 2 * (batch * width + width * width + batch * width)
    return {"units": "bf16", "flops": flops, "bytes": moved, "seconds": seconds}


def add_point(n: int, dtype, device: str) -> dict:
    a, b = (torch.rand(n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty_like(a)
    seconds = median_seconds(lambda: torch.add(a, b, out=out), device)
    # Element-wise adds run on the CUDA cores; the fp32 roof stands for both dtypes: at a fraction of a FLOP per
    # byte only the memory side of the roof matters.
    return {"units": "fp32", "flops": n, "bytes": 3 * n * a.element_size(), "seconds": seconds}


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    sheet = DATASHEET.get(name)
    if device == "cuda" and sheet is None:
        raise SystemExit(f"03_measured_roofline.py: no datasheet figures for {name!r}: add them to DATASHEET")
    width, batches = (8192, [1, 4, 16, 64, 256, 1024, 4096, 8192]) if device == "cuda" else (256, [1, 16, 256])
    n = 2**27 if device == "cuda" else 2**16  # 512 MiB per fp32 operand: far beyond the L2 cache
    points = {f"bf16 Linear, batch {b}": linear_point(b, width, device) for b in batches}
    points["fp32 add"] = add_point(n, torch.float32, device)
    points["bf16 add"] = add_point(n, torch.bfloat16, device)
    for p in points.values():
        p["flop_per_byte"] = p["flops"] / p["bytes"]
        p["tflops"] = p["flops"] / p["seconds"] / 1e12
        if sheet:
            p["roof_tflops"] = min(sheet[p["units"]], p["flop_per_byte"] * sheet["hbm"]) / 1e12
            p["share_of_roof"] = p["tflops"] / p["roof_tflops"]
            p["bound"] = "compute" if p["flop_per_byte"] > sheet[p["units"]] / sheet["hbm"] else "memory"
    print(f"{name}: achieved TFLOP/s against the roof at each kernel's intensity"
          + (f" (roof: {sheet['bf16'] / 1e12:.0f} TFLOP/s bf16, {sheet['hbm'] / 1e12:.2f} TB/s)" if sheet else
             " (no roof on a CPU)"))
    for label, p in points.items():
        roof = f"{p['roof_tflops']:8.2f} {p['share_of_roof']:7.1%}  {p['bound']}" if sheet else ""
        print(f"  {label:24} {p['flop_per_byte']:9.2f} FLOP/B {p['tflops']:9.2f} TFLOP/s {roof}")
    linear = [(p["flop_per_byte"], p["tflops"]) for k, p in points.items() if k.startswith("bf16 Linear")]
    series = {"bf16 Linear (measured)": linear,
              "element-wise add (measured)": [(p["flop_per_byte"], p["tflops"]) for k, p in points.items()
                                              if k.endswith("add")]}
    if sheet:
        grid = [2.0**e for e in range(-4, 14)]
        series[f"roof, bf16 tensor cores ({name})"] = [(i, min(sheet["bf16"], i * sheet["hbm"]) / 1e12) for i in grid]
        series[f"roof, fp32 CUDA cores ({name})"] = [(i, min(sheet["fp32"], i * sheet["hbm"]) / 1e12) for i in grid]
    with open("measured_roofline.json", "w") as f:
        json.dump({"device": name, "datasheet": sheet, "points": points,
                   "chart": {"title": f"Measured roofline, {name}",
                             "x": {"label": "arithmetic intensity", "unit": "FLOP/byte", "log": True},
                             "y": {"label": "achieved", "unit": "TFLOP/s", "log": True},
                             "series": series}}, f, indent=1)


if __name__ == "__main__":
    main()
