"""What serving a model takes: weights + KV cache per concurrent sequence, and the HBM-bandwidth bound on decode.

Run it with no arguments and it sizes Llama 3.1 70B in FP16 with one 128K-token sequence on H100 80GB cards;
pass your own numbers as flags (--context-tokens 8192 --concurrency 64 --gpus 4) or in a TOML file (--config).
Decode reads every weight and every cached token once per step, so a step takes at least
bytes / (GPUs × HBM bandwidth): the table shows that bound against batch size, the throughput-latency trade.
"""
import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

# name: (default, rule, meaning). Defaults: Llama 3.1 70B's config.json (80 layers, 8 KV heads, head_dim 128) and
# the H100 SXM datasheet (80 GB HBM3 at 3.35 TB/s).
FIELDS = {
    "layers": (80, "positive", "transformer layers"),
    "kv_heads": (8, "positive", "key/value heads (grouped-query attention: fewer than query heads)"),
    "head_dim": (128, "positive", "dimension of one attention head"),
    "kv_bytes": (2, "positive", "bytes per cached value (2 for FP16/BF16, 1 for an FP8 KV cache)"),
    "params": (70.6e9, "positive", "model parameters"),
    "weight_bytes": (2, "positive", "bytes per weight (2 for BF16, 1 for FP8, 0.5 for 4-bit)"),
    "context_tokens": (131072, "positive", "tokens cached per sequence (prompt + generated)"),
    "concurrency": (1, "positive", "sequences served at once"),
    "gpu_mem_gb": (80, "positive", "memory per GPU, GB"),
    "usable_memory": (0.90, "fraction", "share of GPU memory left for weights and KV after runtime overhead"),
    "hbm_tbps": (3.35, "positive", "memory bandwidth per GPU, TB/s"),
    "gpus": (None, "positive", "GPUs serving one replica; when omitted, the fewest that fit"),
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
    parser.add_argument("--json", metavar="PATH", help="also write inputs, results and a chart as JSON")
    args = parser.parse_args(argv)
    values = read_config(args.config) if args.config else {n: d for n, (d, _, _) in FIELDS.items()}
    values.setdefault("gpus", None)
    for name in FIELDS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    for name, value in values.items():
        if value is not None:
            check(name, float(value), f"{args.config}: " if args.config and getattr(args, name) is None else "--")
    return values, args


def size(v: dict) -> dict:
    kv_per_token = 2 * v["layers"] * v["kv_heads"] * v["head_dim"] * v["kv_bytes"]  # a K and a V per layer
    kv_per_seq = kv_per_token * v["context_tokens"]
    weights = v["params"] * v["weight_bytes"]
    usable = v["gpu_mem_gb"] * 1e9 * v["usable_memory"]
    needed = weights + kv_per_seq * v["concurrency"]
    gpus = int(v["gpus"]) if v["gpus"] else math.ceil(needed / usable)
    max_batch = max(0, math.floor((gpus * usable - weights) / kv_per_seq))
    batches = sorted({2 ** i for i in range(0, 20) if 2 ** i <= max_batch} | ({max_batch} if max_batch else set()))
    decode = []
    for batch in batches:
        step = (weights + kv_per_seq * batch) / (gpus * v["hbm_tbps"] * 1e12)  # seconds per step, lower bound
        decode.append({"batch": batch, "step_ms": step * 1e3, "tokens_per_s_per_seq": 1 / step,
                       "tokens_per_s": batch / step})
    return {"kv_bytes_per_token": kv_per_token, "kv_gb_per_seq": kv_per_seq / 1e9, "weights_gb": weights / 1e9,
            "needed_gb": needed / 1e9, "gpus": gpus, "fits": needed <= gpus * usable, "max_batch": max_batch,
            "decode": decode}


def main(argv: list[str]) -> int:
    try:
        v, args = inputs(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    r = size(v)
    print(f"{'inference sizing':<48}value")
    rows = [("KV cache per token (bytes)", f"{r['kv_bytes_per_token']:,.0f}"),
            (f"KV cache per sequence of {v['context_tokens']:,.0f} tokens (GB)", f"{r['kv_gb_per_seq']:.1f}"),
            ("weights (GB)", f"{r['weights_gb']:.1f}"),
            (f"weights + KV for {v['concurrency']:,.0f} sequences (GB)", f"{r['needed_gb']:.1f}"),
            ("GPUs per replica", f"{r['gpus']}" + ("" if r["fits"] else "  (does NOT fit: add GPUs)")),
            ("most sequences that fit", f"{r['max_batch']:,}")]
    for name, value in rows:
        print(f"{name:<48}{value}")
    print(f"\n{'batch':>7}{'step ≥ (ms)':>14}{'tokens/s per seq ≤':>21}{'tokens/s total ≤':>19}")
    for d in r["decode"]:
        print(f"{d['batch']:>7,}{d['step_ms']:>14.1f}{d['tokens_per_s_per_seq']:>21.1f}{d['tokens_per_s']:>19,.0f}")
    if args.json:
        chart = {"title": f"Decode bound, {r['gpus']} GPUs at {v['hbm_tbps']:g} TB/s each",
                 "x": {"label": "concurrent sequences (batch)", "unit": "", "log": True},
                 "y": {"label": "decode throughput bound", "unit": "tokens/s"},
                 "series": {"all sequences": [[d["batch"], d["tokens_per_s"]] for d in r["decode"]],
                            "one sequence": [[d["batch"], d["tokens_per_s_per_seq"]] for d in r["decode"]]}}
        Path(args.json).write_text(json.dumps({"inputs": v, "results": r, "chart": chart}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
