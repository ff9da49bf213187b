"""A serving layout you can deploy: tensor-parallel degree, replicas, and the latency and throughput it can reach.

For each tensor-parallel degree that fits a node (1, 2, 4, 8) and that vLLM accepts (it divides the attention
heads, and the KV heads divide it or it divides them), the weights take their share of each GPU's memory and the
rest holds paged KV cache (vLLM blocks of --block-size tokens). That fixes the sequences one replica holds, so the
replicas (and GPUs) your users need; a model no node holds gets pipeline stages across nodes. Per replica it bounds
time to first token (prefill, compute-bound), time per output token (decode reads every weight and cached token
once per step) and output tokens/s, from the datasheet peak and bandwidth: real servers stay below these bounds.

Run it with no arguments for Llama 3.1 70B in BF16, 100 users at 32K tokens each, on H100 80GB nodes; pass your own
as flags or a TOML file of the same names (--config). --gpus N asks what N GPUs deliver instead; --tpot-ms keeps
only layouts that meet a per-token latency; --measured-tokens-per-s says how far a measurement is below the bound.
"""
import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

# name: (default, kind, low, high, meaning); kind "int": a whole number in [low, high], "num": in (low, high],
# "frac": in (low, 1]. Model defaults: Llama 3.1 70B's config.json (80 layers, 64 heads, 8 KV heads, head_dim 128);
# hardware: the H100 SXM datasheet (80 GB HBM3 at 3.35 TB/s, 989 TFLOP/s dense BF16); usable_memory and block_size:
# vLLM's defaults (CacheConfig in vllm/config/cache.py: gpu_memory_utilization 0.92, block_size 16).
FIELDS = {
    "params": (70.6e9, "num", 1e6, 1e14, "model parameters"),
    "layers": (80, "int", 1, 1000, "transformer layers"),
    "heads": (64, "int", 1, 10_000, "attention (query) heads"),
    "kv_heads": (8, "int", 1, 10_000, "key/value heads (grouped-query attention: fewer than query heads)"),
    "head_dim": (128, "int", 1, 10_000, "dimension of one attention head"),
    "weight_bytes": (2.0, "num", 0.1, 8, "bytes per weight (2 BF16, 1 FP8, 0.5 4-bit)"),
    "kv_bytes": (2.0, "num", 0.1, 8, "bytes per cached value (2 BF16, 1 FP8 KV cache)"),
    "prompt_tokens": (30720, "int", 0, 10_000_000, "prompt tokens per request"),
    "output_tokens": (2048, "int", 1, 10_000_000, "generated tokens per request"),
    "users": (100, "int", 1, 100_000_000, "requests served at once (concurrent sequences)"),
    "gpu_mem_gb": (80.0, "num", 1, 2000, "memory per GPU, GB"),
    "usable_memory": (0.92, "frac", 0.05, 1, "share of GPU memory for weights and KV cache (vLLM "
                                             "gpu_memory_utilization)"),
    "hbm_tbps": (3.35, "num", 0.01, 1000, "memory bandwidth per GPU, TB/s"),
    "peak_tflops": (989.0, "num", 1, 100_000, "dense datasheet peak per GPU at the weights' precision, TFLOP/s"),
    "gpus_per_node": (8, "int", 1, 1024, "GPUs per node joined by NVLink (tensor parallelism stays inside one)"),
    "block_size": (16, "int", 1, 4096, "tokens per KV-cache block (vLLM --block-size)"),
    "tp": (None, "int", 1, 1024, "force this tensor-parallel degree (default: every valid one)"),
    "gpus": (None, "int", 1, 10_000_000, "GPUs you have: how many users they serve, at what speed"),
    "tpot_ms": (None, "num", 0.001, 1e7, "keep only layouts whose time per output token bound is within this, ms"),
    "measured_tokens_per_s": (None, "num", 0, 1e12, "a measured output tokens/s for the chosen layout, to compare"),
}
SLIPS = {
    "params": lambda v: v < 1e6 and f"{v:g} looks like billions: write {v:g}e9",
    "peak_tflops": lambda v: v > 1e5 and f"{v:g} looks like FLOP/s: give TFLOP/s ({v / 1e12:g})",
    "gpu_mem_gb": lambda v: v > 2000 and f"{v:g} looks like bytes: give GB ({v / 1e9:g})",
    "hbm_tbps": lambda v: v > 1000 and f"{v:g} looks like GB/s or bytes/s: give TB/s ({v / 1000:g} or {v / 1e12:g})",
    "usable_memory": lambda v: 1 < v <= 100 and f"{v:g} looks like a percentage: write {v / 100:g}",
    "weight_bytes": lambda v: v >= 8 and f"{v:g} looks like bits: give bytes ({v / 8:g})",
    "kv_bytes": lambda v: v >= 8 and f"{v:g} looks like bits: give bytes ({v / 8:g})",
}
NODE_TP = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class InputError(Exception):
    """A bad input: one line naming the input, the accepted range and what to fix."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors, as one line too
        raise InputError(message)


def say(message: str) -> None:
    """One line on stderr: control characters and line breaks from the input shown escaped, as Python writes them."""
    print("error: " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in message), file=sys.stderr)


def rule(name: str) -> str:
    _, kind, low, high, _ = FIELDS[name]
    if kind == "int":
        return f"a whole number from {low:,} to {high:,}"
    return f"more than {low:g} and at most {1 if kind == 'frac' else high:g}"


def check(name: str, value, origin: str):
    """The value as a number, or InputError naming the flag (or file and field), the range and any unit slip."""
    where = f"{origin}{name}" if origin != "--" else "--" + name.replace("_", "-")
    _, kind, low, high, meaning = FIELDS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (isinstance(value, str) and origin != "--"):
        raise InputError(f"{where} = {value!r}: not a number; must be {rule(name)} ({meaning})")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where} = {value!r}: not a number; must be {rule(name)} ({meaning})") from None
    high = 1 if kind == "frac" else high
    ok = low <= number <= high and number == int(number) if kind == "int" else math.isfinite(number) and low < number <= high
    if not ok:
        slip = SLIPS.get(name, lambda v: False)(number) if math.isfinite(number) else False
        raise InputError(f"{where} = {value}: must be {rule(name)} ({meaning})" + (f"; {slip}" if slip else ""))
    return int(number) if kind == "int" else number


def read_config(path: str) -> dict:
    try:
        text = Path(path).read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except IsADirectoryError:
        raise InputError(f"--config {path}: is a directory; give a TOML file") from None
    except OSError as err:
        raise InputError(f"--config {path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise InputError(f"--config {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"--config {path}: not valid TOML ({err})") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InputError(f"--config {path}: unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    return data


def inputs(argv: list[str]) -> tuple[dict, argparse.Namespace]:
    parser = Parser(description=__doc__.split("\n")[0])
    for name, (default, _, _, _, meaning) in FIELDS.items():
        parser.add_argument("--" + name.replace("_", "-"), metavar="N", help=f"{meaning} (default {default})")
    parser.add_argument("--config", metavar="PATH", help="TOML file with any of the fields above (flags override it)")
    parser.add_argument("--json", metavar="PATH", help="also write inputs, layouts and a chart as JSON")
    args = parser.parse_args(argv)
    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json {args.json}: is a directory; give a file name")
    values = {name: spec[0] for name, spec in FIELDS.items()}
    origin = {}
    for name, value in (read_config(args.config) if args.config else {}).items():
        values[name], origin[name] = value, f"--config {args.config}: "
    for name in FIELDS:
        if getattr(args, name) is not None:
            values[name], origin[name] = getattr(args, name), "--"
    for name, value in values.items():
        if value is not None:
            values[name] = check(name, value, origin.get(name, "--"))
    if values["kv_heads"] > values["heads"] or values["heads"] % values["kv_heads"]:
        raise InputError(f"--kv-heads = {values['kv_heads']}: must divide --heads {values['heads']} "
                         "(each KV head serves a group of query heads)")
    if values["tp"] and not valid_tp(values, values["tp"]):
        raise InputError(f"--tp = {values['tp']}: choose one of {', '.join(map(str, degrees(values)))} (it must "
                         f"divide the {values['heads']} heads, divide or be divided by the {values['kv_heads']} KV "
                         f"heads, and fit a node of {values['gpus_per_node']} GPUs)")
    return values, args


def valid_tp(v: dict, t: int) -> bool:
    """vLLM's rule: the heads split evenly; KV heads split evenly, or each GPU keeps a copy of one."""
    return (t in NODE_TP and t <= v["gpus_per_node"] and v["heads"] % t == 0
            and (v["kv_heads"] % t == 0 or t % v["kv_heads"] == 0))


def degrees(v: dict) -> list[int]:
    return [t for t in NODE_TP if valid_tp(v, t)]


# --8<-- [start:layout]
def capacity(v: dict, t: int, p: int) -> tuple[int, float]:
    """Full-length sequences one replica on t × p GPUs holds, and its KV bytes per token on each GPU."""
    usable = v["gpu_mem_gb"] * 1e9 * v["usable_memory"]
    kv_per_token_gpu = 2 * v["layers"] / p * max(1, v["kv_heads"] // t) * v["head_dim"] * v["kv_bytes"]
    context = v["prompt_tokens"] + v["output_tokens"]
    seq_bytes = math.ceil(context / v["block_size"]) * v["block_size"] * kv_per_token_gpu  # whole blocks (paging)
    room = usable - v["params"] * v["weight_bytes"] / (t * p)  # what the weights' share leaves for KV cache
    return (math.floor(room / seq_bytes) if room > 0 else 0), kv_per_token_gpu


def layout(v: dict, t: int, p: int) -> dict | None:
    """Replicas of t × p GPUs (tensor × pipeline parallel) for the users, or on --gpus; the bounds at their batch."""
    seqs, kv_per_token_gpu = capacity(v, t, p)
    replicas = (v["gpus"] // (t * p) if v["gpus"] else math.ceil(v["users"] / seqs)) if seqs else 0
    if replicas < 1:
        return None
    batch = min(seqs, math.ceil(v["users"] / replicas))
    b = bounds(v, t, p, batch, kv_per_token_gpu * t * p)
    return {"tp": t, "pp": p, "replicas": replicas, "gpus": replicas * t * p, "seqs_per_replica": seqs,
            "batch": batch, "served": min(v["users"], batch * replicas), **b,
            "tokens_per_s": b["tokens_per_s_per_replica"] * replicas}


def bounds(v: dict, t: int, p: int, batch: int, kv_per_token: float) -> dict:
    """Lower bounds on time (so upper bounds on speed) from the datasheet peak and HBM bandwidth."""
    peak, bw = v["peak_tflops"] * 1e12, v["hbm_tbps"] * 1e12
    weights, n, d_attn = v["params"] * v["weight_bytes"], v["params"], v["heads"] * v["head_dim"]
    prompt, out = v["prompt_tokens"], v["output_tokens"]
    mean_context = prompt + out / 2  # tokens cached, averaged over a request's decode steps
    # Prefill is compute-bound: 2N per prompt token plus causal attention 2·L·P²·d; the weights are read at least once.
    prefill_flops = 2 * n * prompt + 2 * v["layers"] * prompt ** 2 * d_attn
    prefill_s = max(prefill_flops / (t * peak), weights / (t * bw) if prompt else 0)  # stages run one after another
    # A decode step reads every weight and each sequence's cache; it computes 2N + 4·L·context·d per sequence.
    step_bytes = weights + batch * mean_context * kv_per_token
    step_flops = batch * (2 * n + 4 * v["layers"] * mean_context * d_attn)
    tpot_s = max(step_bytes / (t * bw), step_flops / (t * peak))
    # Throughput: every stage busy (t·p GPUs), the batch's prefill and decode FLOPs done at peak, its decode steps
    # reading their bytes at full bandwidth; whichever takes longer bounds the time per batch of requests.
    compute_s = batch * (prefill_flops + out * step_flops / batch) / (t * p * peak)
    memory_s = out * step_bytes / (t * p * bw)
    return {"ttft_s": prefill_s, "ttft_last_of_batch_s": batch * prefill_s, "tpot_ms": tpot_s * 1e3,
            "tokens_per_s_per_replica": batch * out / max(compute_s, memory_s),
            "bound_by": "compute" if compute_s >= memory_s else "memory bandwidth"}
# --8<-- [end:layout]


def plan(v: dict) -> dict:
    """Every deployable layout, and the one with the fewest GPUs (ties: the faster per token)."""
    tried = [v["tp"]] if v["tp"] else degrees(v)
    options = [o for t in tried if (o := layout(v, t, 1))]
    unfit = {t: "no room for one sequence" if not capacity(v, t, 1)[0] else "more GPUs than --gpus"
             for t in tried if t not in {o["tp"] for o in options}}
    if not options:  # no node holds the model: pipeline stages across nodes, TP as wide as a node allows
        t = max(tried)
        p = next((p for p in range(2, v["layers"] + 1) if capacity(v, t, p)[0]), None)
        if p and layout(v, t, p):
            options = [layout(v, t, p)]
        elif p:
            unfit[t] = f"no room in --gpus {v['gpus']}: one replica needs TP {t} × PP {p} = {t * p} GPUs"
    meets = [o for o in options if not v["tpot_ms"] or o["tpot_ms"] <= v["tpot_ms"]]
    key = (lambda o: (-o["served"], o["gpus"], o["tpot_ms"])) if v["gpus"] else (lambda o: (o["gpus"], o["tpot_ms"]))
    return {"options": options, "unfit_tp": unfit, "choice": min(meets, key=key) if meets else None}


def main(argv: list[str]) -> int:
    try:
        v, args = inputs(argv)
    except InputError as err:
        say(str(err))
        return 2
    result = plan(v)
    context = v["prompt_tokens"] + v["output_tokens"]
    kv_token = 2 * v["layers"] * v["kv_heads"] * v["head_dim"] * v["kv_bytes"]
    print(f"model: {v['params'] * v['weight_bytes'] / 1e9:.1f} GB of weights; KV cache {kv_token:,.0f} bytes per "
          f"token, {kv_token * context / 1e9:.2f} GB per {context:,}-token sequence")
    print(f"{'TP':>3}{'PP':>4}{'seqs/replica':>14}{'replicas':>10}{'GPUs':>7}{'batch':>7}{'TTFT ≥ s':>10}"
          f"{'TPOT ≥ ms':>11}{'tokens/s ≤':>12}  bound by")
    for o in result["options"]:
        print(f"{o['tp']:>3}{o['pp']:>4}{o['seqs_per_replica']:>14,}{o['replicas']:>10,}{o['gpus']:>7,}{o['batch']:>7,}"
              f"{o['ttft_s']:>10.2f}{o['tpot_ms']:>11.1f}{o['tokens_per_s']:>12,.0f}  {o['bound_by']}")
    for t, why in result["unfit_tp"].items():
        print(f"{t:>3}   - {why}" if why.startswith(("more", "no room in")) else
              f"{t:>3}   - the weights' share of a GPU leaves no room for one {context:,}-token sequence")
    c = result["choice"]
    if not result["options"]:
        print("no layout on these GPUs" if v["gpus"] else
              "no layout: the model does not fit even with a stage per layer; use a smaller precision")
    elif not c:
        best = min(result["options"], key=lambda o: o["tpot_ms"])
        print(f"no layout meets TPOT ≤ {v['tpot_ms']:g} ms; the fastest bound is {best['tpot_ms']:.1f} ms "
              f"(TP {best['tp']}): fewer users per replica, a faster precision or faster GPUs")
    else:
        where = f"TP {c['tp']}" + (f" × PP {c['pp']} (across nodes)" if c["pp"] > 1 else "")
        ttft = (f"; the first token after ≥ {c['ttft_s']:.2f} s alone, ≥ {c['ttft_last_of_batch_s']:.1f} s for the "
                f"last of {c['batch']:,} arriving together" if v["prompt_tokens"] else "")
        print(f"deploy: {c['replicas']:,} replica(s) of {where} = {c['gpus']:,} GPUs for {c['served']:,} of "
              f"{v['users']:,} users at once{ttft}")
        if v["measured_tokens_per_s"] is not None:
            ratio = v["measured_tokens_per_s"] / c["tokens_per_s"]
            print(f"measured {v['measured_tokens_per_s']:,.0f} tokens/s is {ratio:.1%} of the bound "
                  f"{c['tokens_per_s']:,.0f}: the bound is {1 / ratio:.1f}× above it" if ratio else
                  "measured 0 tokens/s")
            if ratio > 1:
                say("the measurement exceeds the bound: an input (peak, bandwidth, precision, lengths) does not "
                    "describe the measured system")
                return 1
    if args.json:
        chart = None
        if c:
            points = [bounds(v, c["tp"], c["pp"], b, 2 * v["layers"] * max(1, v["kv_heads"] // c["tp"]) * c["tp"]
                             * v["head_dim"] * v["kv_bytes"]) | {"batch": b}
                      for b in sorted({2 ** i for i in range(25) if 2 ** i < c["seqs_per_replica"]}
                                      | {c["seqs_per_replica"]})]
            chart = {"title": f"One replica of TP {c['tp']}: output tokens/s bound against batch",
                     "x": {"label": "sequences in the batch", "unit": "", "log": True},
                     "y": {"label": "output tokens/s (upper bound)", "unit": "tokens/s"},
                     "series": {"replica throughput": [[q["batch"], q["tokens_per_s_per_replica"]] for q in points],
                                "one sequence (1000 / TPOT)": [[q["batch"], 1e3 / q["tpot_ms"]] for q in points]}}
        try:
            Path(args.json).write_text(json.dumps({"inputs": v, **result} | ({"chart": chart} if chart else {}),
                                                  indent=2))
        except OSError as err:
            say(f"--json {args.json}: cannot write ({err.strerror or err})")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
