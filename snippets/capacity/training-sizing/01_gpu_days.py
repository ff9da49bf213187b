"""How many GPU-days a training run needs: 6·N·D FLOPs over what each GPU sustains (peak × MFU × goodput).

Run it with no arguments and it sizes Llama 3 405B as Meta's paper describes it; pass your own numbers as flags
(--params 70e9 --tokens 2e12 --gpus 512), or all of them in a TOML file (--config job.toml), to size your job.
--days N turns it round: how many GPUs finish in N days. --from-recording takes peak and MFU from a recording of
snippets/optimization/metrics/01_mfu.py (its mfu.json): a single-GPU best case, an upper bound for a fleet.
"""
import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

# name: (default, rule, meaning). The defaults are Llama 3 405B (arXiv 2407.21783, section 3.3).
FIELDS = {
    "params": (405e9, "positive", "model parameters N"),
    "tokens": (15.6e12, "positive", "training tokens D"),
    "flops_per_token": (6.0, "positive", "FLOPs per parameter per token (6; 8 with full activation recomputation)"),
    "peak_tflops": (989.0, "positive", "dense BF16 peak per GPU, TFLOP/s (H100 SXM datasheet)"),
    "mfu": (0.40, "fraction", "model FLOPs utilization: share of peak the job sustains while it runs"),
    "goodput": (0.90, "fraction", "share of wall-clock time spent on training that is kept (not lost to failures)"),
    "gpus": (16384, "positive", "GPUs in the job"),
    "days": (None, "positive", "target wall-clock days; when given, the answer is the GPU count"),
}


class InputError(Exception):
    """A bad input: one line naming the input and what to fix."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors, as one line too
        raise InputError(message)


def read_config(path: str) -> dict:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err})") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InputError(f"{path}: unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    missing = [n for n, (default, _, _) in FIELDS.items() if default is not None and n not in data]
    if missing:
        name = missing[0]
        raise InputError(f"{path}: missing field {name!r} ({FIELDS[name][2]}); add `{name} = ...`")
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{path}: {name!r} must be a number, got {value!r}")
    return data


def from_recording(path: str) -> dict:
    """Peak and MFU measured on our own card: the recording's mfu.json (ceiling_flops, mfu)."""
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a readable JSON recording ({err.__class__.__name__})") from None
    mfu_json = data.get("artifacts", {}).get("mfu.json", {}).get("json", data)
    if not all(isinstance(mfu_json.get(k), (int, float)) for k in ("ceiling_flops", "mfu")):
        raise InputError(f"{path}: no mfu.json with 'ceiling_flops' and 'mfu'; pass a recording of "
                         "snippets/optimization/metrics/01_mfu.py")
    return {"peak_tflops": mfu_json["ceiling_flops"] / 1e12, "mfu": mfu_json["mfu"]}


def check(name: str, value: float, origin: str) -> None:
    rule, meaning = FIELDS[name][1], FIELDS[name][2]
    if math.isnan(value) or value <= 0 or (rule == "fraction" and value > 1):
        allowed = "more than 0 and at most 1" if rule == "fraction" else "more than 0"
        raise InputError(f"{origin}{name.replace('_', '-')} = {value:g}: must be {allowed} ({meaning})")


def inputs(argv: list[str]) -> tuple[dict, argparse.Namespace]:
    parser = Parser(description=__doc__.split("\n")[0])
    for name, (default, _, meaning) in FIELDS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=float, help=f"{meaning} (default {default})")
    parser.add_argument("--config", help="TOML file with every field above (flags override it)")
    parser.add_argument("--from-recording", metavar="PATH", help="take peak and MFU from a 01_mfu recording")
    parser.add_argument("--json", metavar="PATH", help="also write inputs and results as JSON")
    args = parser.parse_args(argv)
    values = read_config(args.config) if args.config else {n: d for n, (d, _, _) in FIELDS.items()}
    values.setdefault("days", None)
    if args.from_recording:
        values.update(from_recording(args.from_recording))
    for name in FIELDS:
        flag = getattr(args, name)
        if flag is not None:
            values[name] = flag
    for name, value in values.items():
        if value is not None:
            check(name, float(value), f"{args.config}: " if args.config and getattr(args, name) is None else "--")
    return values, args


def size(v: dict) -> dict:
    flops = v["flops_per_token"] * v["params"] * v["tokens"]
    per_gpu = v["peak_tflops"] * 1e12 * v["mfu"] * v["goodput"]  # FLOP/s each GPU delivers, averaged over the run
    gpu_hours = flops / per_gpu / 3600
    gpus = math.ceil(gpu_hours / (24 * v["days"])) if v["days"] else v["gpus"]
    return {"training_flops": flops, "sustained_tflops_per_gpu": per_gpu / 1e12, "gpu_hours": gpu_hours,
            "gpus": gpus, "days": gpu_hours / gpus / 24}


def main(argv: list[str]) -> int:
    try:
        v, args = inputs(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    r = size(v)
    rows = [("model parameters N", f"{v['params']:.3g}"), ("training tokens D", f"{v['tokens']:.3g}"),
            ("FLOPs per parameter per token", f"{v['flops_per_token']:g}"),
            ("peak per GPU (TFLOP/s)", f"{v['peak_tflops']:.0f}"), ("MFU", f"{v['mfu']:.1%}"),
            ("goodput", f"{v['goodput']:.1%}"), None,
            ("training FLOPs", f"{r['training_flops']:.3g}"),
            ("sustained per GPU (TFLOP/s)", f"{r['sustained_tflops_per_gpu']:.0f}"),
            ("GPU-hours", f"{r['gpu_hours'] / 1e6:.2f} M" if r["gpu_hours"] >= 1e6 else f"{r['gpu_hours']:,.0f}"),
            (f"GPUs{' to finish in ' + format(v['days'], 'g') + ' days' if v['days'] else ''}", f"{r['gpus']:,.0f}"),
            ("wall-clock days", f"{r['days']:.1f}")]
    print(f"{'training sizing: FLOPs = ' + format(v['flops_per_token'], 'g') + '·N·D':<34}value")
    for row in rows:
        print("-" * 46 if row is None else f"{row[0]:<34}{row[1]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"inputs": v, "results": r}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
