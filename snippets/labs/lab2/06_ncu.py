"""Lab 2 kernel metrics: Nsight Compute (ncu) on the training step's biggest GEMM and its attention kernel.

    python 06_ncu.py                     # the full-size shapes; prints a table, writes ncu_kernels.json
    python 06_ncu.py --batch 2           # fewer tokens per step

ncu replays each kernel it profiles to read its hardware counters, which takes long for a whole training step. So
this runs, eagerly, the two operations at the training run's shapes: the output layer (tokens x width times the
tied embedding, width x vocabulary: the largest matrix product of the step) and the causal attention
(F.scaled_dot_product_attention). It warms both up, then runs each once between cudaProfilerStart and
cudaProfilerStop, and ncu profiles only that stretch (--profile-from-start off), with four metrics:
SM throughput, achieved occupancy and DRAM throughput as percentages of their peak, and the kernel's duration.
ncu locks the clocks to base while it measures (--clock-control base, its default), so its durations are longer
than in training; the percentages are against the peak at that clock.
"""
import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import sys

METRICS = {"sm__throughput.avg.pct_of_peak_sustained_elapsed": "sm_throughput_pct",
           "sm__warps_active.avg.pct_of_peak_sustained_active": "achieved_occupancy_pct",
           "dram__throughput.avg.pct_of_peak_sustained_elapsed": "dram_throughput_pct",
           "gpu__time_duration.sum": "duration_ns"}
SHAPES = dict(batch=8, seq=2048, width=2048, heads=16, vocab=50304)  # 02_train.py's FULL size
PERMISSION_HELP = "https://developer.nvidia.com/ERR_NVGPUCTRPERM"


class NcuUnavailable(RuntimeError):
    """ncu cannot profile here; str() says why and what to do."""


def find_ncu() -> str:
    """The ncu binary: $NCU, then PATH, then the CUDA toolkit's usual places."""
    candidates = [os.environ.get("NCU"), shutil.which("ncu"), "/usr/local/cuda/bin/ncu",
                  *sorted(glob.glob("/opt/nvidia/nsight-compute/*/ncu"), reverse=True)]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise NcuUnavailable("ncu (Nsight Compute CLI) not found: install Nsight Compute (it comes with the CUDA toolkit;"
                         " https://developer.nvidia.com/nsight-compute) or set NCU=/path/to/ncu")


def category(name: str) -> str:
    """What a kernel does, from its name: attention first (FlashAttention kernels carry CUTLASS templates)."""
    low = name.lower()
    if any(word in low for word in ("flash", "fmha", "attention", "sdpa")):
        return "attention"
    if any(word in low for word in ("gemm", "nvjet", "xmma", "cutlass", "cublas", "wgmma")):
        return "gemm"
    return "triton" if low.startswith("triton") else "other"  # triton: kernels torch.compile generated


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


def parse_csv(text: str) -> list[dict]:
    """Kernels from `ncu --csv` output (one row per kernel and metric), in launch order."""
    lines = [line for line in text.splitlines() if line.startswith('"')]  # ncu's own ==PROF== lines are not CSV
    kernels = {}
    for row in csv.DictReader(lines):
        if row.get("Metric Name") not in METRICS:
            continue
        name = row["Kernel Name"]
        kernel = kernels.setdefault(row["ID"], {"name": short(name), "category": category(name),
                                                "grid": row.get("Grid Size"), "block": row.get("Block Size")})
        kernel[METRICS[row["Metric Name"]]] = float(row["Metric Value"].replace(",", ""))
    return [kernels[k] for k in sorted(kernels, key=int)]


def profile(shapes: dict, ncu: str | None = None, timeout: int = 300, log: str = "ncu.csv") -> dict:
    """Run ncu on this file's --inner mode; return the profiled kernels, the biggest GEMM and the attention kernel."""
    ncu = ncu or find_ncu()
    inner = [sys.executable, os.path.abspath(__file__), "--inner", *(f"--{k}={v}" for k, v in shapes.items())]
    command = [ncu, "--profile-from-start", "off", "--metrics", ",".join(METRICS), "--csv", "--print-units", "base",
               "--log-file", log, *inner]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NcuUnavailable(f"ncu took longer than {timeout} s; try fewer tokens (--batch 1)") from None
    text = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
    everything = text + done.stdout + done.stderr
    if "ERR_NVGPUCTRPERM" in everything:
        raise NcuUnavailable("ncu may not read the GPU's performance counters here (ERR_NVGPUCTRPERM): run as root,"
                             f" or let users profile (NVreg_RestrictProfilingToAdminUsers=0; {PERMISSION_HELP});"
                             " in a container, add --cap-add SYS_ADMIN")
    kernels = parse_csv(text)
    if done.returncode != 0 or not kernels:
        last = [line for line in everything.splitlines() if line.strip()][-3:]
        raise NcuUnavailable(f"ncu exited with status {done.returncode} and profiled {len(kernels)} kernels: "
                             + " | ".join(last))
    pick = {}
    for role, kind, fallback in (("gemm", "gemm", 0), ("attention", "attention", -1)):
        found = [k for k in kernels if k["category"] == kind]
        # Unknown names: the inner step launches the product first and the attention last.
        pick[role] = max(found, key=lambda k: k.get("duration_ns", 0)) if found else kernels[fallback]
    return {"command": " ".join(command[:-len(inner)]) + " python 06_ncu.py --inner ...", "shapes": shapes,
            "kernels": kernels, **pick}


def inner(shapes: dict) -> None:
    """The profiled stretch: the output layer's product and the causal attention, at the training run's shapes."""
    import torch
    import torch.nn.functional as F

    b, t, c, h, v = (shapes[k] for k in ("batch", "seq", "width", "heads", "vocab"))
    with torch.device("cuda"):
        x = torch.randn(b * t, c, dtype=torch.bfloat16)             # the final norm's output, cast by autocast
        embedding = torch.randn(v, c, dtype=torch.bfloat16) * 0.02  # the tied output layer's weight
        qkv = torch.randn(b, t, 3 * c, dtype=torch.bfloat16)        # the qkv projection, split as the model does
    q, k, w = (z.view(b, t, h, c // h).transpose(1, 2) for z in qkv.split(c, dim=2))
    for _ in range(2):  # warm-up: cuBLAS picks its kernel, the attention kernel loads
        F.linear(x, embedding)
        F.scaled_dot_product_attention(q, k, w, is_causal=True)
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    F.linear(x, embedding)
    F.scaled_dot_product_attention(q, k, w, is_causal=True)
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in SHAPES.items():
        parser.add_argument(f"--{key}", type=int, default=value, help=f"default {value}")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)  # the process ncu profiles
    args = parser.parse_args(argv)
    shapes = {k: getattr(args, k) for k in SHAPES}
    bad = [f"--{k} {v}" for k, v in shapes.items() if v < 1]
    if bad or shapes["width"] % shapes["heads"]:
        parser.error(f"{', '.join(bad) or '--width must be a multiple of --heads'}: shapes must be positive")
    if args.inner:
        return inner(shapes)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("06_ncu.py: no CUDA GPU here; ncu profiles GPU kernels, so there is nothing to measure")
    try:
        result = profile(shapes)
    except NcuUnavailable as err:
        raise SystemExit(f"06_ncu.py: {err}") from None
    print(f"ncu on {torch.cuda.get_device_name()}, {shapes['batch']} x {shapes['seq']} tokens, width {shapes['width']}:")
    print(f"{'kernel':44} {'kind':10} {'ms':>7} {'SM %':>6} {'occup. %':>9} {'DRAM %':>7}")
    for k in result["kernels"]:
        print(f"{k['name'][:44]:44} {k['category'][:10]:10} {k.get('duration_ns', 0) / 1e6:7.2f}"
              f" {k.get('sm_throughput_pct', float('nan')):6.1f} {k.get('achieved_occupancy_pct', float('nan')):9.1f}"
              f" {k.get('dram_throughput_pct', float('nan')):7.1f}")
    with open("ncu_kernels.json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
