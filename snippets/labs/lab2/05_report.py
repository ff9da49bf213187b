"""Lab 2 profiling report: lab2_results.json (from 04_experiment.py) and its traces -> REPORT.md and three charts.

    python 05_report.py                        # reads ./lab2_results.json, writes into the same folder
    python 05_report.py runs/h100/lab2_results.json

04_experiment.py calls write_report() itself; run this file to regenerate the report, e.g. after editing it.
"""
import argparse
import gzip
import json
import sys
from pathlib import Path

NVML_TARGET, SM_TARGET, SPEEDUP_TARGET = 90.0, 80.0, 3.0
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
    criterion = f"samples/s >= {SPEEDUP_TARGET:.0f}x the baseline (stage 0)"
    if base["stage"] != 0 or len(stages) < 2:
        rows.append({"criterion": criterion, "value": None, "passed": None, "shown": "run stage 0 and a later stage"})
    else:
        speedup = final["samples_per_s"] / base["samples_per_s"]
        rows.append({"criterion": criterion, "value": speedup, "passed": speedup >= SPEEDUP_TARGET,
                     "shown": f"{speedup:.1f}x ({base['samples_per_s']:,.0f} -> {final['samples_per_s']:,.0f})"})
    ceiling, mfu = results["ceiling"], final["mfu"]
    peak, mfu_peak = (results.get("datasheet") or {}).get("tflops"), final.get("mfu_datasheet")
    honest = ceiling["tflops"] > 0 and 0 < mfu <= 1 and (mfu_peak is None or 0 < mfu_peak <= 1)
    # The standard MFU first (against the datasheet's dense peak), then against the ceiling measured in this run.
    shown = (f"MFU {mfu_peak:.1%} of the {peak:.0f} TFLOP/s dense bf16 datasheet peak; " if mfu_peak is not None
             else f"MFU against the datasheet: unknown ({results.get('device', 'this card')} has no datasheet peak in"
                  " 04_experiment.py); ")
    shown += (f"{mfu:.1%} of the ceiling measured in this run: {final['achieved_tflops']:.3g} TFLOP/s /"
              f" {ceiling['tflops']:.3g} TFLOP/s ({ceiling['dtype']} {ceiling['n']}^3 matmul)")
    if mfu > 1:
        shown += ": above the ceiling, so the FLOP count or the ceiling is wrong"
    rows.append({"criterion": "MFU reported against the datasheet peak and a ceiling measured in the same run",
                 "value": mfu, "passed": honest, "shown": shown})
    return rows


def passed(rows: list[dict]) -> bool:
    return all(row["passed"] is True for row in rows)


def knee(sweep: list[dict], fraction: float = 0.9) -> dict | None:
    """The smallest batch that reaches `fraction` of the best throughput in the sweep."""
    if not sweep:
        return None
    best = max(r["samples_per_s"] for r in sweep)
    return min((r for r in sweep if r["samples_per_s"] >= fraction * best), key=lambda r: r["config"]["batch_size"])


def memory_fit(sweep: list[dict], total_gib: float | None) -> dict | None:
    """Least-squares line peak_memory = fixed + per_sample * batch; where it reaches the card's memory."""
    points = [(r["config"]["batch_size"], r["peak_memory_gib"]) for r in sweep if r.get("peak_memory_gib") is not None]
    if len(points) < 2:
        return None
    n = len(points)
    mx, my = sum(b for b, _ in points) / n, sum(m for _, m in points) / n
    slope = sum((b - mx) * (m - my) for b, m in points) / sum((b - mx) ** 2 for b, _ in points)
    fixed = my - slope * mx
    fit = {"fixed_gib": fixed, "gib_per_sample": slope}
    if total_gib and slope > 0:
        fit["max_batch"] = int((total_gib - fixed) / slope)
    return fit


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
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            events = json.load(f)["traceEvents"]
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"{path}: not a readable Chrome trace ({err}); rerun 04_experiment.py to profile again")
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
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
    if results["sweep"]:
        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=80)
        batches = [r["config"]["batch_size"] for r in results["sweep"]]
        ax.plot(batches, [r["samples_per_s"] for r in results["sweep"]], marker="o", label="samples/s")
        best = knee(results["sweep"])
        ax.axvline(best["config"]["batch_size"], color="gray", linestyle="--", label="knee: 90 % of the best")
        ax.set(xscale="log", xlabel="batch size", ylabel="samples/s", title="Batch sweep (stage 4 settings)")
        ax.set_xscale("log", base=2)
        memory = [(b, r["peak_memory_gib"]) for b, r in zip(batches, results["sweep"]) if r.get("peak_memory_gib")]
        if memory:
            twin = ax.twinx()
            twin.plot(*zip(*memory), color="tab:red", marker="s", linewidth=1, label="peak memory")
            twin.set_ylabel("peak memory (GiB)", color="tab:red")
        ax.legend(fontsize=7, loc="upper left")
        written.append(save(fig, out / "batch_sweep.png", plt))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.4 * len(results["stages"])), dpi=80)
    names = [f"{s['stage']} {s['name']}" for s in results["stages"]]
    rates = [s["samples_per_s"] for s in results["stages"]]
    ax.barh(names[::-1], rates[::-1], color="tab:green")
    for y, (rate, stage) in enumerate(zip(rates[::-1], results["stages"][::-1])):
        mfu = stage.get("mfu_datasheet")
        ax.text(rate, y, f" {rate / rates[0]:.1f}x, MFU " + (f"{mfu:.1%} of datasheet" if mfu is not None else
                f"{stage['mfu']:.1%} of ceiling"), va="center", fontsize=8)
    ax.set(xscale="log", xlim=(min(rates) / 2, max(rates) * 4), xlabel="samples/s (log scale)",
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


def write_report(results: dict, out: Path) -> list[Path]:
    out = Path(out)
    written = charts(results, out)
    stages, ceiling = results["stages"], results["ceiling"]
    peak = (results.get("datasheet") or {}).get("tflops")
    cfg = stages[-1]["config"]
    rows = evaluate(results)
    lines = ["# Lab 2 profiling report", ""]
    if results.get("note"):
        lines += [f"> **Warning:** {results['note']}", ""]
    lines += [f"- Device: {results['device']} (NVML: {results['nvml_gpu'] or 'not available'}), torch {results['torch']}",
              f"- Datasheet peak: {peak:.0f} TFLOP/s dense bf16, the standard MFU denominator" if peak else
              "- Datasheet peak: unknown for this card (add it to 04_experiment.py), so no datasheet MFU",
              f"- Ceiling: {ceiling['tflops']:.3g} TFLOP/s, {ceiling['dtype']} {ceiling['n']}^3 matmul measured in this run",
              f"- Model: MLP {cfg['features']} -> {cfg['depth']}x{cfg['width']} -> {cfg['classes']},"
              f" {stages[-1]['params']:,} parameters, {stages[-1]['flops_per_sample'] / 1e9:.3g} GFLOP per"
              " training sample (matmuls)", "",
              "## Completion criteria", "", "| | Criterion | Measured |", "|---|---|---|"]
    lines += [f"| {dict([(True, 'pass'), (False, 'FAIL'), (None, 'n/a')])[r['passed']]} | {r['criterion']} | {r['shown']} |"
              for r in rows]
    lines += ["", f"**Overall: {'PASS' if passed(rows) else 'NOT YET'}**", "", "## Stages", "",
              "| Stage | Batch | samples/s | Speedup | NVML util mean (p5) | SM activity | Tensor activity | TFLOP/s"
              " | MFU (datasheet) | MFU (ceiling) | Peak GiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in stages:
        u = s.get("utilization", {})
        nvml = u.get("nvml_util")
        lines.append(f"| {s['stage']} {s['name']} | {s['config']['batch_size']} | {s['samples_per_s']:,.0f}"
                     f" | {s['samples_per_s'] / stages[0]['samples_per_s']:.1f}x"
                     f" | {fmt(nvml and nvml['mean'], '.1f')} ({fmt(nvml and nvml['p5'], '.1f')})"
                     f" | {fmt(mean_of(s, 'sm_activity'), '.1f')} | {fmt(mean_of(s, 'tensor_activity'), '.1f')}"
                     f" | {s['achieved_tflops']:.3g} | {fmt(s.get('mfu_datasheet'), '.1%')} | {s['mfu']:.1%}"
                     f" | {fmt(s.get('peak_memory_gib'), '.2f')} |")
    drawn = {p.name for p in written}
    if "util_timeline.png" in drawn:
        lines += ["", "![Utilization timeline](util_timeline.png)"]
    if "stage_gains.png" in drawn:
        lines += ["", "![Throughput per stage](stage_gains.png)"]
    if results["sweep"]:
        best, fit = knee(results["sweep"]), memory_fit(results["sweep"], results.get("total_memory_gib"))
        lines += ["", "## Batch sweep", "", "| Batch | samples/s | MFU (datasheet) | MFU (ceiling) | Peak GiB |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['config']['batch_size']} | {r['samples_per_s']:,.0f} | {fmt(r.get('mfu_datasheet'), '.1%')}"
                  f" | {r['mfu']:.1%}"
                  f" | {fmt(r.get('peak_memory_gib'), '.2f')} |" for r in results["sweep"]]
        lines += ["", f"Knee: batch {best['config']['batch_size']} is the smallest reaching 90 % of the best throughput."]
        if fit:
            lines.append(f"Memory: {fit['fixed_gib']:.2f} GiB + {fit['gib_per_sample'] * 2**20:.1f} KiB per sample"
                         + (f"; a straight line reaches the card's {results['total_memory_gib']:.0f} GiB near batch"
                            f" {fit['max_batch']:,} (fragmentation makes the real limit lower)" if "max_batch" in fit else ""))
        if "batch_sweep.png" in drawn:
            lines += ["", "![Batch sweep](batch_sweep.png)"]
    lines += ["", "## Profiles"]
    for s in stages:
        if "profile" not in s:
            continue
        p = s["profile"]
        t = trace_summary(out / Path(p["trace"]).name, p["steps"])
        lines += ["", f"### Stage {s['stage']} ({s['name']}), {p['steps']} steps", "",
                  f"- Trace `{Path(p['trace']).name}`: {t['where']} busy {fmt(t['busy_fraction'], '.1%')} of"
                  f" {t['span_ms']:.1f} ms; {t['events_per_step']:.0f} {t['where']} events per step",
                  "- Longest idle stretches: " + (", ".join(f"{g['ms']:.2f} ms at {g['at_ms']:.1f} ms" for g in t["gaps"])
                                                  or "none"), "",
                  "| Operator | Calls | Self device ms | Self CPU ms |", "|---|---|---|---|"]
        lines += [f"| `{o['name'][:60]}` | {o['calls']} | {o['self_device_ms']:.2f} | {o['self_cpu_ms']:.2f} |"
                  for o in p["top_ops"]]
    lines += ["", "## Analysis", "",
              "_Write yours: for each stage, which bound it moved (data loading, synchronization, launch overhead,"
              " memory bandwidth, math), the evidence in the numbers above, and what bounds the final stage._", ""]
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
    missing = [k for k in ("device", "ceiling", "stages", "sweep", "timeline", "t_start") if k not in results]
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
