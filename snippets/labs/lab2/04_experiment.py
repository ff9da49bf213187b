"""Lab 2 experiment: measure every stage of 02_train.py, the activation memory, the checkpointing trade and the
kernels of the first and last stage.

    python 04_experiment.py                           # everything, then the report
    python 04_experiment.py --stages 0 3 7 --seconds 5 --no-ncu

Keep 02_train.py, 03_sampler.py, 05_report.py and 06_ncu.py in the same folder. In one run it:

1. sweeps bf16 matrix products over square and model shapes (CUDA events, median) while reading the SM clock and
   the board power: the best rate is the measured ceiling;
2. runs every stage for a fixed time after a warm-up, while 03_sampler.py samples NVML utilization, GPM SM and
   tensor activity, SM clock and power every 0.2 s; each stage is summarized over its own measured window;
3. computes model TFLOP/s (PaLM's 6·N + 12·L·H·Q·T per token) and MFU: against the card's dense bf16 datasheet
   peak (the standard definition; key mfu_datasheet), then against the ceiling of step 1 (key mfu);
4. measures the memory each transformer block keeps for the backward pass, against the formula, with and without
   activation checkpointing, and what checkpointing costs in tokens/s;
5. profiles three steps of the first and the last stage with torch.profiler (the top kernels by GPU time), and
   runs 06_ncu.py: ncu's SM throughput, achieved occupancy and DRAM throughput of the biggest GEMM and of the
   attention kernel;
6. writes lab2_results.json, then the report through 05_report.py.
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
# Dense (no sparsity) bf16 tensor-core peak in TFLOP/s by the name CUDA reports; the datasheets print the 2:4-sparse
# rate, twice these. Sources: https://www.nvidia.com/en-us/data-center/h100/,
# https://www.nvidia.com/en-us/data-center/h200/
DATASHEET_BF16_TFLOPS = {"NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H200": 989.0, "NVIDIA H100 NVL": 835.0,
                         "NVIDIA H200 NVL": 835.0}
# nvml.h's clock event reasons: why the SM clock is below its maximum.
CLOCK_EVENT_REASONS = {"gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4, "hw_slowdown": 0x8,
                       "sync_boost": 0x10, "sw_thermal_slowdown": 0x20, "hw_thermal_slowdown": 0x40,
                       "hw_power_brake_slowdown": 0x80}


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


def telemetry(handle) -> dict:
    """SM clock, power and clock event reasons of the GPU now (empty without NVML)."""
    if handle is None:
        return {}
    import pynvml

    try:  # the older name of the same call, for nvidia-ml-py before 12.535
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons",
                          getattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))(handle)
        return {"sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
                "reasons": [name for name, bit in CLOCK_EVENT_REASONS.items() if reasons & bit]}
    except pynvml.NVMLError:
        return {}


def gemm_shapes(cfg, device: str) -> list[tuple[int, int, int]]:
    """(tokens or rows, in, out) of each product to time: squares, then the model's own Linear layers."""
    if device != "cuda":
        return [(256, 256, 256), (512, 512, 512)]
    tokens, c = cfg.batch * cfg.seq, cfg.width
    squares = [(n, n, n) for n in (2048, 4096, 6144, 8192, 16384)]
    return squares + [(tokens, c, 3 * c), (tokens, c, 4 * c), (tokens, 4 * c, c), (tokens, c, cfg.vocab)]


def gemm_sweep(shapes, device: str, handle=None, seconds: float = 0.4) -> dict:
    """bf16 x @ w.T (the layout of nn.Linear) per shape: median rate over batches of products timed with CUDA
    events for `seconds`, and the median SM clock and power read between batches. The best rate is the ceiling."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rows = []
    for m, k, n in shapes:
        x, w = torch.randn(m, k, device=device, dtype=dtype), torch.randn(n, k, device=device, dtype=dtype)
        out = torch.empty(m, n, device=device, dtype=dtype)
        product = lambda: torch.matmul(x, w.t(), out=out)  # noqa: E731
        product()  # warm-up: cuBLAS picks its kernel
        times, reads, reps, t_end = [], [], 1, time.monotonic() + seconds
        while time.monotonic() < t_end or len(times) < 3:
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    product()
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end) / 1e3
            else:
                t0 = time.perf_counter()
                for _ in range(reps):
                    product()
                elapsed = time.perf_counter() - t0
            times.append(elapsed / reps)
            reps = max(1, min(200, round(0.02 / times[-1])))  # batches of about 20 ms
            reads.append(telemetry(handle))
        reads = [r for r in reads if r]
        row = {"shape": [m, k, n], "tflops": 2 * m * k * n / statistics.median(times) / 1e12}
        if reads:
            row["sm_clock_mhz"] = statistics.median(r["sm_clock_mhz"] for r in reads)
            row["power_w"] = statistics.median(r["power_w"] for r in reads)
            row["reasons"] = sorted({reason for r in reads for reason in r["reasons"]})
        rows.append(row)
        del x, w, out
    best = max(rows, key=lambda r: r["tflops"])
    return {"dtype": str(dtype).removeprefix("torch."), "rows": rows, "best": best, "tflops": best["tflops"],
            "best_reasons": ", ".join(best.get("reasons", [])) or ("none" if "reasons" in best else "not read")}


def board_limits(handle) -> dict:
    if handle is None:
        return {}
    import pynvml

    try:
        return {"max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000}
    except pynvml.NVMLError:
        return {}


def activation_formula(cfg) -> int | None:
    """Bytes one block keeps for the backward pass, for bf16 autocast with SDPA and no dropout. Korthikanti et al.
    (2022) count s·b·h·(34 + 5·a·s/h) for their block; here, per token and hidden unit: the fp32 residual stream
    twice (4 + 4: the block's output and its middle, kept by the next LayerNorm), bf16 casts of both LayerNorm
    outputs (2 + 2), q, k, v (6), the attention output (2), the MLP's 4h-wide input and output of GELU (8 + 8) = 36;
    plus the attention's log-sum-exp (4 bytes per head and token) and the two LayerNorms' mean and 1/std (16 bytes
    per token). With checkpointing a block keeps only its fp32 input: 4·s·b·h."""
    if not (cfg.bf16 and cfg.sdpa):
        return None
    s, b, h, a = cfg.seq, cfg.batch, cfg.width, cfg.heads
    return 4 * s * b * h if cfg.checkpoint else s * b * (36 * h + 4 * a + 16)


def activation_memory(train, cfg, device: str, data) -> dict:
    """Memory each block keeps after its forward pass, read from the caching allocator around it (CUDA only), less
    the bf16 copies of its weights that autocast keeps for the backward pass; against activation_formula()."""
    result = {"checkpoint": cfg.checkpoint, "formula_bytes": activation_formula(cfg), "measured_bytes": None}
    if device != "cuda":
        return result
    model, _ = train.build(replace(cfg, compile=False), device)
    tokens, targets = (t.to(device) for t in next(train.make_batches(replace(cfg, workers=0), data)))
    marks = []
    hooks = [h for block in model.blocks for h in (
        block.register_forward_pre_hook(lambda *_: marks.append(torch.cuda.memory_allocated())),
        block.register_forward_hook(lambda *_: marks.append(torch.cuda.memory_allocated())))]
    torch.cuda.synchronize()
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cfg.bf16):
        loss = model(tokens, targets)
    torch.cuda.synchronize()
    per_block = [after - before for before, after in zip(marks[::2], marks[1::2])]
    weights = sum(p.numel() for p in model.blocks[0].parameters() if p.dim() == 2) * 2 if cfg.bf16 else 0
    result.update(measured_bytes=statistics.median(per_block[1:] or per_block) - weights, bf16_weights_bytes=weights,
                  blocks=len(per_block), forward_kept_bytes=torch.cuda.memory_allocated() - marks[0])
    for hook in hooks:
        hook.remove()
    del loss, model
    torch.cuda.empty_cache()
    return result


def attach_utilization(result: dict, sampler, summarize) -> None:
    """Mean and percentiles of each metric over the stage's measured window (nothing without NVML)."""
    t0, t1 = result["window"]
    keys = ["nvml_util", "sm_clock_mhz", "power_w"]
    if sampler and sampler.gpm:
        keys += ["sm_activity", "tensor_activity"]
    result["utilization"] = {k: summarize(sampler.values(k, t0, t1)) for k in keys} if sampler else {}


def attach_rates(result: dict, ceiling_tflops: float, datasheet_tflops: float | None) -> None:
    result["achieved_tflops"] = result["tokens_per_s"] * result["flops_per_token"] / 1e12
    result["mfu_datasheet"] = result["achieved_tflops"] / datasheet_tflops if datasheet_tflops else None
    result["mfu"] = result["achieved_tflops"] / ceiling_tflops  # against the ceiling measured in this run


def fmt(value, spec: str, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}{spec}}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, nargs="+", help="stages to run (default: all)")
    parser.add_argument("--seconds", type=float, help="measured seconds per stage (default 3 on a GPU, 0.1 on a CPU)")
    parser.add_argument("--no-ncu", action="store_true", help="skip the ncu kernel metrics")
    parser.add_argument("--out", default=".", help="folder for lab2_results.json, traces and the report")
    parser.add_argument("--train", default="02_train.py", help="staged training script (default: the reference)")
    args = parser.parse_args()
    train = load_sibling(args.train, "lab2_train")
    sampling, report = load_sibling("03_sampler.py", "lab2_sampler"), load_sibling("05_report.py", "lab2_report")
    kernels = load_sibling("06_ncu.py", "lab2_ncu")
    stages = args.stages if args.stages is not None else list(range(len(train.STAGES)))
    bad = [s for s in stages if not 0 <= s < len(train.STAGES)]
    if bad:
        parser.error(f"--stages {bad}: stages are 0..{len(train.STAGES) - 1} ({', '.join(train.STAGES)})")
    if args.seconds is not None and args.seconds <= 0:
        parser.error(f"--seconds {args.seconds}: must be > 0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    full = device == "cuda"
    seconds = args.seconds or (3.0 if full else 0.1)
    name = torch.cuda.get_device_name() if full else "CPU"
    final_cfg = train.stage_config(stages[-1], device)

    sampler = None
    try:
        sampler = sampling.UtilSampler(interval=0.2).start()
    except RuntimeError as err:
        print(f"no utilization samples: {err}")
    handle = sampler.handle if sampler and full else None  # the GPU this process computes on, found by UUID
    ceiling = gemm_sweep(gemm_shapes(final_cfg, device), device, handle, 0.4 if full else 0.05)
    ceiling.update(board_limits(handle))
    datasheet = {"tflops": DATASHEET_BF16_TFLOPS.get(name), "basis": "dense bf16 tensor-core peak, NVIDIA datasheet"}
    best = ceiling["best"]
    print(f"device {name}: "
          + (f"datasheet peak {datasheet['tflops']:.0f} TFLOP/s dense bf16" if datasheet["tflops"]
             else "datasheet peak unknown (not in DATASHEET_BF16_TFLOPS), so no datasheet MFU")
          + f"; measured ceiling {ceiling['tflops']:.3g} TFLOP/s, the best of {len(ceiling['rows'])} {ceiling['dtype']}"
          f" products ({'x'.join(map(str, best['shape']))})"
          + (f" at {best['sm_clock_mhz']:.0f} MHz (max {ceiling['max_sm_clock_mhz']}), {best['power_w']:.0f} W of"
             f" {ceiling['power_limit_w']:.0f} W, clock event reasons: {', '.join(best['reasons']) or 'none'}"
             if "sm_clock_mhz" in best and "power_limit_w" in ceiling else ""))
    results = {"device": name, "torch": torch.__version__, "ceiling": ceiling, "datasheet": datasheet,
               "nvml_gpu": sampler.name if sampler else None, "nvml_uuid": sampler.gpu_uuid if sampler else None,
               "gpm": bool(sampler and sampler.gpm), "stages": [], "t_start": time.monotonic()}
    if sampler and not full:
        results["note"] = (f"NVML reports {sampler.name} but this process has no CUDA device: the utilization numbers"
                           " do not describe this workload (another process or a simulator)")
        print(results["note"])
    try:
        data = train.SyntheticTokens(final_cfg.seq, final_cfg.vocab)
        print(f"{'stage':22} {'tokens/s':>10} {'speedup':>8} {'NVML %':>7} {'SM %':>6} {'TFLOP/s':>8} {'MFU':>7}"
              f" {'of ceil':>8} {'peak GiB':>9} {'wall s':>7}")
        for stage in stages:
            cfg = train.stage_config(stage, device)
            profiled = stage in (stages[0], stages[-1])
            r = train.run(cfg, device, seconds, data=data, profile_steps=(3 if full else 2) if profiled else 0,
                          profile_prefix=str(out / f"stage{stage}"))
            r["stage"], r["name"] = stage, train.STAGES[stage]
            attach_utilization(r, sampler, sampling.summarize)
            attach_rates(r, ceiling["tflops"], datasheet["tflops"])
            if profiled:
                trace = out / Path(r["profile"]["trace"]).name
                r["profile"]["kernels"] = report.top_kernels(trace, r["profile"]["steps"])
            results["stages"].append(r)
            util = {k: (v["mean"] if v else None) for k, v in r["utilization"].items()}
            speedup = r["tokens_per_s"] / results["stages"][0]["tokens_per_s"]
            print(f"{stage} {r['name']:20} {r['tokens_per_s']:10,.0f} {speedup:7.1f}x"
                  f" {fmt(util.get('nvml_util'), '.1f', 7)} {fmt(util.get('sm_activity'), '.1f', 6)}"
                  f" {r['achieved_tflops']:8.3g} {fmt(r['mfu_datasheet'], '.1%', 7)} {r['mfu']:8.1%}"
                  f" {fmt(r['peak_memory_gib'], '.2f', 9)} {r['wall_s']:7.1f}")
            if full:
                torch.cuda.empty_cache()
        # Memory and the checkpointing trade, on the last stage that is not compiled (eager: hooks see every block).
        eager = max((s for s in stages if not train.stage_config(s, device).compile), default=stages[-1])
        base_cfg = train.stage_config(eager, device)
        ckpt_cfg = replace(base_cfg, checkpoint=True, compile=False)
        results["memory"] = {"stage": eager, "config": asdict(base_cfg),
                             "per_layer": activation_memory(train, base_cfg, device, data),
                             "per_layer_checkpointed": activation_memory(train, ckpt_cfg, device, data)}
        base = next(r for r in results["stages"] if r["stage"] == eager)
        ckpt = train.run(ckpt_cfg, device, seconds, data=data)
        attach_rates(ckpt, ceiling["tflops"], datasheet["tflops"])
        results["memory"]["checkpointing"] = {
            "tokens_per_s": ckpt["tokens_per_s"], "tokens_per_s_without": base["tokens_per_s"],
            "throughput_ratio": ckpt["tokens_per_s"] / base["tokens_per_s"],
            "peak_memory_gib": ckpt["peak_memory_gib"], "peak_memory_gib_without": base["peak_memory_gib"],
            "mfu_datasheet": ckpt["mfu_datasheet"]}
        m = results["memory"]
        for key, label in (("per_layer", "per block"), ("per_layer_checkpointed", "per block, checkpointed")):
            got, want = m[key]["measured_bytes"], m[key]["formula_bytes"]
            print(f"activation memory {label} (stage {eager}): measured {fmt(got and got / 2**20, ',.1f', 1)} MiB,"
                  f" formula {fmt(want and want / 2**20, ',.1f', 1)} MiB"
                  + (f" ({got / want:.1%} of it)" if got and want else ""))
        c = m["checkpointing"]
        print(f"checkpointing every block: {c['tokens_per_s']:,.0f} tokens/s ({c['throughput_ratio']:.1%} of"
              f" {c['tokens_per_s_without']:,.0f})" + (f", peak {c['peak_memory_gib']:.1f} GiB instead of"
                                                      f" {c['peak_memory_gib_without']:.1f}" if full else ""))
    finally:
        if sampler:
            sampler.stop()
    if full:
        torch.cuda.empty_cache()
    final = results["stages"][-1]
    print(f"top kernels of stage {final['stage']} ({final['name']}), share of GPU time:")
    for k in final["profile"]["kernels"]["top"][:6]:
        print(f"  {k['share']:6.1%} {k['category']:18} {k['name'][:70]}")
    if args.no_ncu or not full:
        results["ncu"] = {"skipped": "--no-ncu" if args.no_ncu else "no CUDA GPU: ncu profiles GPU kernels"}
    else:
        shapes = {k: getattr(final_cfg, k) for k in ("batch", "seq", "width", "heads", "vocab")}
        try:
            results["ncu"] = kernels.profile(shapes, log=str(out / "ncu.csv"))
            print("ncu (clocks locked to base):")
            for role in ("gemm", "attention"):
                k = results["ncu"][role]
                print(f"  {role:9} {k['name'][:40]:40} {k['duration_ns'] / 1e6:6.2f} ms, SM throughput"
                      f" {k['sm_throughput_pct']:.1f} %, achieved occupancy {k['achieved_occupancy_pct']:.1f} %,"
                      f" DRAM throughput {k['dram_throughput_pct']:.1f} %")
        except kernels.NcuUnavailable as err:
            results["ncu"] = {"skipped": str(err)}
    if "skipped" in results["ncu"]:
        print(f"ncu: skipped: {results['ncu']['skipped']}")
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
