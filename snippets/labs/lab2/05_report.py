"""Lab 2 profiling report: lab2_results.json (from 04_experiment.py) and its traces -> REPORT.md and two charts.

    python 05_report.py                        # reads ./lab2_results.json, writes into the same folder
    python 05_report.py runs/h100/lab2_results.json

04_experiment.py calls write_report() itself; run this file to regenerate the report, e.g. after editing it.
Exit status 0 only when every completion criterion passes.
"""
import argparse
import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

NVML_TARGET, SM_TARGET, MFU_TARGET, SPEEDUP_TARGET = 90.0, 80.0, 0.55, 3.0
GPU_CATEGORIES = {"kernel", "gpu_memcpy", "gpu_memset"}


# ---- the numbers ---------------------------------------------------------------------------------------------

def mean_of(stage: dict, key: str) -> float | None:
    summary = stage.get("utilization", {}).get(key)
    return summary["mean"] if summary else None


def evaluate(results: dict) -> list[dict]:
    """The completion criteria, each with its measured value; passed is None where it could not be measured."""
    stages = results["stages"]
    base, final = stages[0], stages[-1]
    foreign = results.get("note")  # NVML did not watch this workload
    rows = []
    for key, target, label in (("nvml_util", NVML_TARGET, "NVML utilization"), ("sm_activity", SM_TARGET, "GPM SM activity")):
        value = mean_of(final, key)
        criterion = f"{label} >= {target:.0f} % (final stage, mean)"
        if foreign or value is None:
            why = "not measured: " + (foreign or ("no NVML" if key == "nvml_util" or not results.get("gpm") else "no samples"))
            rows.append({"criterion": criterion, "value": None, "passed": None, "shown": why})
        else:
            rows.append({"criterion": criterion, "value": value, "passed": value >= target, "shown": f"{value:.1f} %"})
    peak, mfu_peak = (results.get("datasheet") or {}).get("tflops"), final.get("mfu_datasheet")
    criterion = f"MFU >= {MFU_TARGET:.0%} of the dense bf16 datasheet peak (final stage)"
    if mfu_peak is None:
        rows.append({"criterion": criterion, "value": None, "passed": None,
                     "shown": f"no datasheet peak for {results.get('device', 'this card')}: add its dense bf16 peak to"
                              " DATASHEET_BF16_TFLOPS in 04_experiment.py, with its source"})
    else:
        tensor = mean_of(final, "tensor_activity")
        rows.append({"criterion": criterion, "value": mfu_peak, "passed": mfu_peak >= MFU_TARGET,
                     "shown": f"{mfu_peak:.1%} ({final['achieved_tflops']:.0f} of {peak:.0f} TFLOP/s"
                              + (f"; tensor activity {tensor:.1f} %" if tensor is not None and not foreign else "") + ")"})
    criterion = f"tokens/s >= {SPEEDUP_TARGET:.0f}x the baseline (stage 0)"
    if base["stage"] != 0 or len(stages) < 2:
        rows.append({"criterion": criterion, "value": None, "passed": None, "shown": "run stage 0 and a later stage"})
    else:
        speedup = final["tokens_per_s"] / base["tokens_per_s"]
        rows.append({"criterion": criterion, "value": speedup, "passed": speedup >= SPEEDUP_TARGET,
                     "shown": f"{speedup:.1f}x ({base['tokens_per_s']:,.0f} -> {final['tokens_per_s']:,.0f})"})
    ceiling, mfu = results["ceiling"], final["mfu"]
    honest = ceiling["tflops"] > 0 and 0 < mfu <= 1 and (mfu_peak is None or 0 < mfu_peak <= 1)
    shown = (f"MFU {mfu_peak:.1%} of the {peak:.0f} TFLOP/s datasheet peak; " if mfu_peak is not None else
             "MFU against the datasheet: unknown; ")
    shown += (f"{mfu:.1%} of the ceiling measured in this run: {final['achieved_tflops']:.3g} TFLOP/s /"
              f" {ceiling['tflops']:.3g} TFLOP/s (best of {len(ceiling.get('rows', []))} {ceiling['dtype']} products)")
    if mfu > 1 or (mfu_peak or 0) > 1:
        shown += ": above the ceiling, so the FLOP count or the ceiling is wrong"
    rows.append({"criterion": "MFU reported against the datasheet peak and a ceiling measured in the same run",
                 "value": mfu, "passed": honest, "shown": shown})
    return rows


def passed(rows: list[dict]) -> bool:
    return all(row["passed"] is True for row in rows)


# ---- traces --------------------------------------------------------------------------------------------------

def short(name: str) -> str:
    """A kernel's name without `void`, template arguments and parameters: `flash_fwd_kernel`, `nvjet_tst_...`."""
    name = name.removeprefix("void ")
    depth, out = 0, []
    for ch in name:
        depth += ch == "<"
        if depth == 0 and ch == "(":
            break
        if depth == 0:
            out.append(ch)
        depth -= ch == ">"
    return "".join(out).strip() or name


def category(name: str) -> str:
    """What a kernel does, from its name: attention first (FlashAttention kernels carry CUTLASS templates)."""
    low = name.lower()
    if any(word in low for word in ("flash", "fmha", "attention", "sdpa")):
        return "attention"
    if any(word in low for word in ("gemm", "nvjet", "xmma", "cutlass", "cublas", "wgmma")):
        return "gemm"
    return "triton" if low.startswith("triton") else "other"  # triton: kernels torch.compile generated


def read_trace(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            return json.load(f)["traceEvents"]
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"{path}: not a readable Chrome trace ({err}); rerun 04_experiment.py to profile again")


def top_kernels(path: Path, steps: int, top: int = 10) -> dict:
    """GPU kernels of a torch.profiler trace, by total time: name, kind, calls and ms per step, share of kernel time."""
    totals, calls = defaultdict(float), defaultdict(int)
    for e in read_trace(path):
        if e.get("ph") == "X" and e.get("cat") == "kernel" and "dur" in e:
            totals[e["name"]] += e["dur"]
            calls[e["name"]] += 1
    total = sum(totals.values())
    if not total:
        return {"kernel_ms_per_step": 0.0, "top": [], "by_category": {}}  # no GPU kernels: a CPU run
    by_category = dict.fromkeys(("gemm", "attention", "triton", "other"), 0.0)
    for name, us in totals.items():
        by_category[category(name)] += us / total
    ranked = sorted(totals, key=totals.get, reverse=True)[:top]
    return {"kernel_ms_per_step": total / 1e3 / steps, "by_category": by_category,
            "top": [{"name": short(n), "category": category(n), "calls_per_step": calls[n] / steps,
                     "ms_per_step": totals[n] / 1e3 / steps, "share": totals[n] / total} for n in ranked]}


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping [start, end) intervals."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        covered += end - max(start, reach)
        reach = end
    return covered


def gaps(intervals: list[tuple[float, float]], top: int = 3) -> list[tuple[float, float]]:
    """The `top` longest stretches with no interval running, as (start, length)."""
    found, reach = [], None
    for start, end in sorted(intervals):
        if reach is not None and start > reach:
            found.append((reach, start - reach))
        reach = end if reach is None else max(reach, end)
    return sorted(found, key=lambda g: -g[1])[:top]


def trace_summary(path: Path, steps: int) -> dict:
    """What a Chrome trace from torch.profiler says about the device: busy share, kernels per step, idle gaps."""
    spans = [e for e in read_trace(path) if e.get("ph") == "X" and "dur" in e]
    device = [(e["ts"], e["ts"] + e["dur"]) for e in spans if e.get("cat") in GPU_CATEGORIES]
    where = "GPU"
    if not device:  # a CPU run: what the operators covered instead
        device, where = [(e["ts"], e["ts"] + e["dur"]) for e in spans if e.get("cat") == "cpu_op"], "CPU operators"
    if not spans or not device:
        return {"where": where, "span_ms": 0.0, "busy_ms": 0.0, "busy_fraction": None, "events_per_step": 0, "gaps": []}
    start, end = min(e["ts"] for e in spans), max(e["ts"] + e["dur"] for e in spans)
    busy = union_length(device)
    return {"where": where, "span_ms": (end - start) / 1e3, "busy_ms": busy / 1e3, "busy_fraction": busy / (end - start),
            "events_per_step": len(device) / steps,
            "gaps": [{"at_ms": (s - start) / 1e3, "ms": g / 1e3} for s, g in gaps(device)]}


# ---- the charts ----------------------------------------------------------------------------------------------

def charts(results: dict, out: Path) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: the report has no charts (pip install matplotlib)")
        return []

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written, t_start = [], results["t_start"]
    if results["timeline"]:
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=80)
        for key, label in (("nvml_util", "NVML utilization"), ("sm_activity", "GPM SM activity"),
                           ("tensor_activity", "GPM tensor activity")):
            points = [(s["t"] - t_start, s[key]) for s in results["timeline"] if key in s]
            if points:
                ax.plot(*zip(*points), label=label, linewidth=1)
        for stage in results["stages"]:
            t0, t1 = (t - t_start for t in stage["window"])
            ax.axvspan(t0, t1, color="tab:green", alpha=0.12)
            ax.text((t0 + t1) / 2, 103, str(stage["stage"]), ha="center", fontsize=8)
        ax.set(xlabel="time since start (s)", ylabel="%", ylim=(0, 110),
               title=f"Utilization over the run; shaded: measured window of each stage ({results['device']})")
        ax.legend(fontsize=7, loc="lower right")
        written.append(save(fig, out / "util_timeline.png", plt))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.4 * len(results["stages"])), dpi=80)
    names = [f"{s['stage']} {s['name']}" for s in results["stages"]]
    rates = [s["tokens_per_s"] for s in results["stages"]]
    ax.barh(names[::-1], rates[::-1], color="tab:green")
    for y, (rate, stage) in enumerate(zip(rates[::-1], results["stages"][::-1])):
        mfu = stage.get("mfu_datasheet")
        ax.text(rate, y, f" {rate / rates[0]:.1f}x, MFU " + (f"{mfu:.1%} of datasheet" if mfu is not None else
                f"{stage['mfu']:.1%} of ceiling"), va="center", fontsize=8)
    ax.set(xscale="log", xlim=(min(rates) / 2, max(rates) * 6), xlabel="tokens/s (log scale)",
           title="Throughput per stage (each adds one fix)")
    written.append(save(fig, out / "stage_gains.png", plt))
    return written


def save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- the report ----------------------------------------------------------------------------------------------

def fmt(value, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def mib(value) -> str:
    return fmt(value and value / 2**20, ",.1f")


def write_report(results: dict, out: Path) -> list[Path]:
    out = Path(out)
    written = charts(results, out)
    stages, ceiling = results["stages"], results["ceiling"]
    peak = (results.get("datasheet") or {}).get("tflops")
    final = stages[-1]
    cfg = final["config"]
    rows = evaluate(results)
    best = ceiling["best"]
    lines = ["# Lab 2 profiling report", ""]
    if results.get("note"):
        lines += [f"> **Warning:** {results['note']}", ""]
    lines += [f"- Device: {results['device']} (NVML: {results['nvml_gpu'] or 'not available'}"
              f"{', ' + results['nvml_uuid'] if results.get('nvml_uuid') else ''}), torch {results['torch']}",
              f"- Datasheet peak: {peak:.0f} TFLOP/s dense bf16, the standard MFU denominator" if peak else
              "- Datasheet peak: unknown for this card (add it to 04_experiment.py), so no datasheet MFU",
              f"- Ceiling: {ceiling['tflops']:.3g} TFLOP/s, the best of {len(ceiling['rows'])} {ceiling['dtype']} products"
              f" measured in this run ({'x'.join(map(str, best['shape']))}"
              + (f", SM clock {best['sm_clock_mhz']:.0f} MHz, {best['power_w']:.0f} W" if "sm_clock_mhz" in best else "")
              + ")",
              f"- Model: GPT, {cfg['layers']} layers, width {cfg['width']}, {cfg['heads']} heads, context {cfg['seq']},"
              f" vocabulary {cfg['vocab']}; {final['params']:,} parameters; {final['flops_per_token'] / 1e9:.3g} GFLOP"
              " per token (6·N + 12·L·H·Q·T)", "",
              "## Completion criteria", "", "| | Criterion | Measured |", "|---|---|---|"]
    lines += [f"| {dict([(True, 'pass'), (False, 'FAIL'), (None, 'n/a')])[r['passed']]} | {r['criterion']} | {r['shown']} |"
              for r in rows]
    lines += ["", f"**Overall: {'PASS' if passed(rows) else 'NOT YET'}**", "", "## Stages", "",
              "| Stage | Tokens/step | tokens/s | Speedup | NVML util mean (p5) | SM activity | Tensor activity"
              " | TFLOP/s | MFU (datasheet) | MFU (ceiling) | Peak GiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in stages:
        u = s.get("utilization", {})
        nvml = u.get("nvml_util")
        lines.append(f"| {s['stage']} {s['name']} | {s['config']['batch'] * s['config']['seq']:,} | {s['tokens_per_s']:,.0f}"
                     f" | {s['tokens_per_s'] / stages[0]['tokens_per_s']:.1f}x"
                     f" | {fmt(nvml and nvml['mean'], '.1f')} ({fmt(nvml and nvml['p5'], '.1f')})"
                     f" | {fmt(mean_of(s, 'sm_activity'), '.1f')} | {fmt(mean_of(s, 'tensor_activity'), '.1f')}"
                     f" | {s['achieved_tflops']:.3g} | {fmt(s.get('mfu_datasheet'), '.1%')} | {s['mfu']:.1%}"
                     f" | {fmt(s.get('peak_memory_gib'), '.2f')} |")
    drawn = {p.name for p in written}
    for name, alt in (("util_timeline.png", "Utilization timeline"), ("stage_gains.png", "Throughput per stage")):
        if name in drawn:
            lines += ["", f"![{alt}]({name})"]
    memory = results.get("memory")
    if memory:
        c = memory["checkpointing"]
        lines += ["", f"## Memory (stage {memory['stage']}, {memory['config']['batch']} x {memory['config']['seq']} tokens)", "",
                  "| Per transformer block | Measured MiB | Formula MiB |", "|---|---|---|",
                  f"| kept for the backward pass | {mib(memory['per_layer']['measured_bytes'])}"
                  f" | {mib(memory['per_layer']['formula_bytes'])} |",
                  f"| with activation checkpointing | {mib(memory['per_layer_checkpointed']['measured_bytes'])}"
                  f" | {mib(memory['per_layer_checkpointed']['formula_bytes'])} |", "",
                  f"Checkpointing every block: {c['tokens_per_s']:,.0f} tokens/s instead of {c['tokens_per_s_without']:,.0f}"
                  f" ({c['throughput_ratio']:.1%}); peak memory {fmt(c['peak_memory_gib'], '.1f')} GiB instead of"
                  f" {fmt(c['peak_memory_gib_without'], '.1f')} GiB."]
    lines += ["", "## Kernels"]
    for s in stages:
        if "profile" not in s:
            continue
        p, k = s["profile"], s["profile"].get("kernels") or {}
        t = trace_summary(out / Path(p["trace"]).name, p["steps"])
        lines += ["", f"### Stage {s['stage']} ({s['name']}), {p['steps']} steps profiled", "",
                  f"- Trace `{Path(p['trace']).name}`: {t['where']} busy {fmt(t['busy_fraction'], '.1%')} of"
                  f" {t['span_ms']:.1f} ms; {t['events_per_step']:.0f} {t['where']} events per step",
                  "- Longest idle stretches: " + (", ".join(f"{g['ms']:.2f} ms at {g['at_ms']:.1f} ms" for g in t["gaps"])
                                                  or "none")]
        if k.get("top"):
            lines += ["- Kernel time by kind: " + ", ".join(f"{name} {share:.1%}" for name, share in
                                                            sorted(k["by_category"].items(), key=lambda i: -i[1])), "",
                      "| Kernel | Kind | Calls/step | ms/step | Share |", "|---|---|---|---|---|"]
            lines += [f"| `{x['name'][:70]}` | {x['category']} | {x['calls_per_step']:.0f} | {x['ms_per_step']:.2f}"
                      f" | {x['share']:.1%} |" for x in k["top"]]
        else:
            lines += ["", "| Operator | Calls | Self device ms | Self CPU ms |", "|---|---|---|---|"]
            lines += [f"| `{o['name'][:60]}` | {o['calls']} | {o['self_device_ms']:.2f} | {o['self_cpu_ms']:.2f} |"
                      for o in p["top_ops"]]
    ncu = results.get("ncu") or {}
    lines += ["", "## Nsight Compute"]
    if "skipped" in ncu:
        lines += ["", f"Not measured: {ncu['skipped']}"]
    elif ncu:
        lines += ["", f"`{ncu['command']}`, clocks locked to base:", "",
                  "| Kernel | Kind | ms | SM throughput % | Achieved occupancy % | DRAM throughput % |", "|---|---|---|---|---|---|"]
        lines += [f"| `{k['name'][:60]}` | {k['category']} | {k.get('duration_ns', 0) / 1e6:.2f}"
                  f" | {fmt(k.get('sm_throughput_pct'), '.1f')} | {fmt(k.get('achieved_occupancy_pct'), '.1f')}"
                  f" | {fmt(k.get('dram_throughput_pct'), '.1f')} |" for k in ncu["kernels"]]
    lines += ["", "## Analysis", "",
              "_Write yours: for each stage, which bound it moved (launches, synchronization, memory traffic, math),"
              " the evidence in the numbers above, and what bounds the final stage._", ""]
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return [report, *written]


def load_results(path: Path) -> dict:
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: not found; run 04_experiment.py first (it writes this file)") from None
    except ValueError as err:
        raise SystemExit(f"{path}: not valid JSON ({err}); rerun 04_experiment.py") from None
    missing = [k for k in ("device", "ceiling", "stages", "timeline", "t_start") if k not in results]
    if missing or not results.get("stages"):
        raise SystemExit(f"{path}: missing {', '.join(missing) or 'stage results'}; is it from 04_experiment.py?")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="lab2_results.json", type=Path)
    args = parser.parse_args(argv)
    results = load_results(args.results)
    written = write_report(results, args.results.parent)
    rows = evaluate(results)
    for row in rows:
        print(f"{dict([(True, 'PASS'), (False, 'FAIL'), (None, 'n/a ')])[row['passed']]} {row['criterion']}: {row['shown']}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0 if passed(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
