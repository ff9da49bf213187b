"""Lab 2 experiment: measure every stage of 02_train.py, sweep the batch size, profile the first and last stage.

    python 04_experiment.py                           # all stages, the sweep, the profiles and the report
    python 04_experiment.py --stages 0 3 5 --no-sweep --seconds 8

Keep 02_train.py, 03_sampler.py and 05_report.py in the same folder. For each stage it records samples/s, NVML
utilization, GPM SM and tensor activity over the measured window, achieved TFLOP/s (from the model's FLOP count)
and MFU: first against the card's dense bf16 datasheet peak (the standard definition; key mfu_datasheet), then
against the bf16 matmul ceiling measured at the start of this run (key mfu). Writes lab2_results.json, then the
report (REPORT.md and charts) through 05_report.py.
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# Dense (no sparsity) bf16 tensor-core peak in TFLOP/s by the name CUDA reports; the datasheets print the 2:4-sparse
# rate, twice these. Sources: https://www.nvidia.com/en-us/data-center/h100/, https://www.nvidia.com/en-us/data-center/h200/
DATASHEET_BF16_TFLOPS = {"NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H200": 989.0, "NVIDIA H100 NVL": 835.0,
                         "NVIDIA H200 NVL": 835.0}


def load_sibling(filename: str, name: str):
    """Import a file of this lab (their names start with digits, so no plain import); relative to this file's folder."""
    path = HERE / filename
    if not path.is_file():
        raise SystemExit(f"{path}: not found; keep the lab's files together in one folder")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def measure_ceiling(device: str) -> dict:
    """Best dense matmul rate of this device, measured now: bf16 8192³ on a GPU (CUDA events, median of 10 timed
    batches of 10 products); on a CPU, the better of fp32 and bf16 at 512³."""
    if device == "cuda":
        n, dtype = 8192, torch.bfloat16
        a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
        out = torch.empty(n, n, device="cuda", dtype=dtype)
        for _ in range(5):
            torch.matmul(a, b, out=out)
        times = []
        for _ in range(10):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                torch.matmul(a, b, out=out)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / 10)
        return {"dtype": "bf16", "n": n, "tflops": 2 * n**3 / statistics.median(times) / 1e12}
    best = None
    for dtype in (torch.float32, torch.bfloat16):
        n = 512
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.matmul(a, b)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - t0)
        tflops = 2 * n**3 / statistics.median(times) / 1e12
        if best is None or tflops > best["tflops"]:
            best = {"dtype": str(dtype).removeprefix("torch."), "n": n, "tflops": tflops}
    return best


def attach_utilization(result: dict, sampler, summarize) -> None:
    """Mean and percentiles of each metric over the stage's measured window (nothing without NVML)."""
    t0, t1 = result["window"]
    keys = ("nvml_util", "sm_activity", "tensor_activity") if sampler and sampler.gpm else ("nvml_util",)
    result["utilization"] = {key: summarize(sampler.values(key, t0, t1)) for key in keys} if sampler else {}


def attach_rates(result: dict, ceiling_tflops: float, datasheet_tflops: float | None) -> None:
    result["achieved_tflops"] = result["samples_per_s"] * result["flops_per_sample"] / 1e12
    result["mfu_datasheet"] = result["achieved_tflops"] / datasheet_tflops if datasheet_tflops else None
    result["mfu"] = result["achieved_tflops"] / ceiling_tflops  # against the ceiling measured in this run


def percent(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}.1%}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", help="stages to run (default: all)")
    parser.add_argument("--seconds", type=float, help="measured seconds per stage (default 4 on a GPU, 0.2 on a CPU)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the batch-size sweep")
    parser.add_argument("--out", default=".", help="folder for lab2_results.json, traces and the report")
    parser.add_argument("--train", default="02_train.py", help="staged training script (default: the reference)")
    args = parser.parse_args()
    train = load_sibling(args.train, "lab2_train")
    sampling, report = load_sibling("03_sampler.py", "lab2_sampler"), load_sibling("05_report.py", "lab2_report")
    stages = args.stages if args.stages is not None else list(range(len(train.STAGES)))
    bad = [s for s in stages if not 0 <= s < len(train.STAGES)]
    if bad:
        parser.error(f"--stages {bad}: stages are 0..{len(train.STAGES) - 1} ({', '.join(train.STAGES)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    full = device == "cuda"
    seconds = args.seconds or (4.0 if full else 0.2)

    ceiling = measure_ceiling(device)
    name = torch.cuda.get_device_name() if full else "CPU"
    datasheet = {"tflops": DATASHEET_BF16_TFLOPS.get(name), "basis": "dense bf16 tensor-core peak, NVIDIA datasheet"}
    print(f"device {name}: "
          + (f"datasheet peak {datasheet['tflops']:.0f} TFLOP/s dense bf16" if datasheet["tflops"]
             else "datasheet peak unknown (not in DATASHEET_BF16_TFLOPS), so no datasheet MFU")
          + f"; measured matmul ceiling {ceiling['tflops']:.3g} TFLOP/s ({ceiling['dtype']} {ceiling['n']}^3)")
    sampler = None
    try:
        sampler = sampling.UtilSampler(interval=0.2).start()
    except RuntimeError as err:
        print(f"no utilization samples: {err}")
    results = {"device": torch.cuda.get_device_name() if full else "CPU", "torch": torch.__version__,
               "ceiling": ceiling, "datasheet": datasheet, "nvml_gpu": sampler.name if sampler else None, "gpm": bool(sampler and sampler.gpm),
               "stages": [], "sweep": [], "t_start": time.monotonic()}
    if sampler and not full:
        results["note"] = (f"NVML reports {sampler.name} but this process has no CUDA device: the utilization numbers"
                           " do not describe this workload (another process or a simulator)")
        print(results["note"])
    try:
        data = train.SyntheticImages(**{k: (train.FULL if full else train.TINY)[k] for k in ("samples", "features", "classes")})
        print(f"{'stage':22} {'samples/s':>11} {'speedup':>8} {'NVML %':>7} {'SM %':>6} {'TFLOP/s':>8} {'MFU':>7}"
              f" {'of ceil':>8} {'peak GiB':>9}")
        for stage in stages:
            cfg = train.stage_config(stage, device)
            profiled = stage in (stages[0], stages[-1])
            r = train.run(cfg, device, seconds, data=data, profile_steps=5 if profiled else 0,
                          profile_prefix=str(out / f"stage{stage}"))
            r["stage"], r["name"] = stage, train.STAGES[stage]
            attach_utilization(r, sampler, sampling.summarize)
            attach_rates(r, ceiling["tflops"], datasheet["tflops"])
            results["stages"].append(r)
            speedup = r["samples_per_s"] / results["stages"][0]["samples_per_s"]
            util = {k: (v["mean"] if v else float("nan")) for k, v in r["utilization"].items()}
            print(f"{stage} {r['name']:20} {r['samples_per_s']:11,.0f} {speedup:7.1f}x {util.get('nvml_util', float('nan')):7.1f}"
                  f" {util.get('sm_activity', float('nan')):6.1f} {r['achieved_tflops']:8.3g}"
                  f" {percent(r['mfu_datasheet'], 7)} {r['mfu']:8.1%} {r['peak_memory_gib'] or float('nan'):9.2f}")
        if not args.no_sweep:
            # Batch sweep with the input, bf16 and sync fixes (stage 4), uncompiled: no recompilation per batch size.
            batches = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768] if full else [64, 512]
            print(f"batch sweep (stage 4 settings), {seconds / 2:.1f} s each:")
            for batch in batches:
                cfg = train.stage_config(4, device)
                cfg.batch_size = batch
                r = train.run(cfg, device, seconds / 2, data=data)
                attach_utilization(r, sampler, sampling.summarize)
                attach_rates(r, ceiling["tflops"], datasheet["tflops"])
                results["sweep"].append(r)
                print(f"  batch {batch:6d}: {r['samples_per_s']:11,.0f} samples/s, MFU {percent(r['mfu_datasheet'], 6)}"
                      f" ({r['mfu']:.1%} of the ceiling),"
                      f" peak {r['peak_memory_gib'] or float('nan'):.2f} GiB")
    finally:
        if sampler:
            sampler.stop()
    results["timeline"] = sampler.samples if sampler else []
    results["total_memory_gib"] = torch.cuda.get_device_properties(0).total_memory / 2**30 if full else None
    path = out / "lab2_results.json"
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    written = report.write_report(results, out)
    print("completion criteria:")
    for row in report.evaluate(results):
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[row["passed"]]
        print(f"  {mark} {row['criterion']}: {row['shown']}")
    print("wrote " + ", ".join(p.name for p in [path, *written]))


if __name__ == "__main__":
    main()
