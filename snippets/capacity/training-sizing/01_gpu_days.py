"""How many GPUs, for how long, and how much memory on each: sizing a dense transformer's training run.

Time: each token costs 6·N FLOPs in the weights plus 12·L·h·s in attention (PaLM, appendix B), and each GPU
sustains its dense datasheet peak × MFU × goodput. Memory per GPU: weights, gradients and optimizer states,
split by tensor (--tp) and pipeline (--pp) parallelism and sharded over the data-parallel GPUs by ZeRO / FSDP
(--sharding), plus the activations of Korthikanti et al. 2022 (--recompute, --sequence-parallel).

Run it with no arguments for Llama 3 405B as Meta's paper describes its 8K-context layout; pass your own job as
flags (--params 70e9 --layers 80 --hidden 8192 --heads 64 ...) or as a TOML file of the same names (--config).
--days N turns it round: the GPUs, in whole model replicas, that finish in N days. --from-recording takes the
measured MFU (achieved FLOP/s over the datasheet peak) from a recording of this handbook's MFU snippet or Lab 2.
"""
import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

# name: (default, kind, low, high, meaning). kind: "int" a whole number in [low, high], "num" a number in
# (low, high], "frac" a share in (low, 1]. Defaults: Llama 3 405B (arXiv 2407.21783, Tables 3 and 4: 126 layers, model dimension
# 16,384, FFN 53,248, 128 heads, 8K sequences, TP 8 × PP 16 × DP 128 on 16,384 H100s) and the H100 datasheet.
FIELDS = {
    "params": (405e9, "num", 1e6, 1e14, "model parameters N (for a mixture of experts: those active per token)"),
    "tokens": (15.6e12, "num", 1e6, 1e17, "training tokens D"),
    "layers": (126, "int", 1, 1000, "transformer layers L"),
    "hidden": (16384, "int", 16, 1_000_000, "model dimension h (attention heads × head dimension)"),
    "heads": (128, "int", 1, 10_000, "attention heads a"),
    "ffn_hidden": (53248, "int", 16, 10_000_000, "MLP inner dimension f"),
    "vocab": (128256, "int", 1, 10_000_000, "vocabulary size V"),
    "seq_len": (8192, "int", 1, 10_000_000, "tokens per sequence s"),
    "micro_batch": (1, "int", 1, 100_000, "sequences per micro-batch b on each GPU"),
    "peak_tflops": (989.0, "num", 1, 100_000, "dense datasheet peak per GPU for the training precision, TFLOP/s"),
    "mfu": (0.40, "frac", 1e-4, 1, "model FLOPs utilization: model FLOP/s over the datasheet peak while the job runs"),
    "goodput": (0.90, "frac", 1e-3, 1, "share of wall-clock time whose work is kept (not lost to failures)"),
    "gpus": (16384, "int", 1, 10_000_000, "GPUs in the job"),
    "days": (None, "num", 0.01, 36_500, "target wall-clock days; when given, the answer is the GPU count"),
    "tp": (8, "int", 1, 1024, "tensor-parallel degree (within a node: 1, 2, 4 or 8)"),
    "pp": (16, "int", 1, 1024, "pipeline-parallel stages"),
    "gpu_mem_gb": (80.0, "num", 1, 2000, "memory per GPU, GB"),
    "weight_bytes": (2.0, "num", 0.4, 8, "bytes per weight held for compute (2: BF16)"),
    "grad_bytes": (4.0, "num", 0.4, 8, "bytes per gradient (4: FP32 accumulation, as Llama 3; 2: BF16)"),
    "optimizer_bytes": (12.0, "num", -1e-9, 64, "optimizer bytes per parameter (12: FP32 master copy + Adam m, v)"),
}
CHOICES = {
    "sharding": ("zero2", ("ddp", "zero1", "zero2", "zero3", "fsdp"),
                 "what the data-parallel GPUs shard: ddp nothing, zero1 optimizer states, zero2 also gradients, "
                 "zero3 (= fsdp FULL_SHARD) also weights"),
    "recompute": ("selective", ("none", "selective", "full"),
                  "activation recomputation: none, selective (attention scores; FlashAttention's effect), full"),
}
SLIPS = {  # a value out of range that is a unit away from a plausible one, and what to write instead
    "params": lambda v: v < 1e6 and f"{v:g} looks like billions: write {v:g}e9",
    "tokens": lambda v: v < 1e6 and f"{v:g} looks like billions or trillions: write {v:g}e9 or {v:g}e12",
    "peak_tflops": lambda v: v > 1e5 and f"{v:g} looks like FLOP/s: give TFLOP/s ({v / 1e12:g})",
    "gpu_mem_gb": lambda v: v > 2000 and f"{v:g} looks like bytes: give GB ({v / 1e9:g})",
    "mfu": lambda v: 1 < v <= 100 and f"{v:g} looks like a percentage: write {v / 100:g}",
    "goodput": lambda v: 1 < v <= 100 and f"{v:g} looks like a percentage: write {v / 100:g}",
}


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
    if kind == "frac":
        return f"more than {low:g} and at most 1"
    return f"from {max(low, 0):g} to {high:g}" if low < 0 else f"more than {low:g} and at most {high:g}"


def check(name: str, value, origin: str) -> float:
    """The value as a number, or InputError naming the flag (or file and field), the range and any unit slip."""
    where = f"{origin}{name}" if origin != "--" else "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (isinstance(value, str) and origin != "--"):
        raise InputError(f"{where} = {value!r}: not a number; must be {rule(name)} ({FIELDS[name][4]})")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where} = {value!r}: not a number; must be {rule(name)} ({FIELDS[name][4]})") from None
    _, kind, low, high, meaning = FIELDS[name]
    ok = math.isfinite(number) and low < number <= high if kind != "int" else low <= number <= high
    if kind == "int" and ok and number != int(number):
        ok = False
    if not ok:
        slip = SLIPS.get(name, lambda v: False)(number) if math.isfinite(number) else False
        raise InputError(f"{where} = {value}: must be {rule(name)} ({meaning})" + (f"; {slip}" if slip else ""))
    return int(number) if kind == "int" else number


def read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise InputError(f"{what} {path}: is a directory; give a {'TOML' if what == '--config' else 'JSON'} file") from None
    except OSError as err:
        raise InputError(f"{what} {path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise InputError(f"{what} {path}: not UTF-8 text") from None


def read_config(path: str) -> dict:
    try:
        data = tomllib.loads(read_text(path, "--config"))
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"--config {path}: not valid TOML ({err})") from None
    unknown = sorted(set(data) - set(FIELDS) - set(CHOICES) - {"sequence_parallel"})
    if unknown:
        raise InputError(f"--config {path}: unknown field {unknown[0]!r}; the fields are the flags' names: "
                         f"{', '.join([*FIELDS, *CHOICES, 'sequence_parallel'])}")
    return data


def from_recording(path: str) -> dict:
    """Datasheet peak and measured MFU (achieved ÷ datasheet) from a recording of 01_mfu.py or of Lab 2."""
    try:
        data = json.loads(read_text(path, "--from-recording"))
    except json.JSONDecodeError as err:
        raise InputError(f"--from-recording {path}: not JSON ({err.msg}, line {err.lineno})") from None
    awaiting = data.get("awaiting") if isinstance(data, dict) else None
    if isinstance(awaiting, dict) and awaiting.get("another_program"):
        raise InputError(f"--from-recording {path}: this recording was made by an earlier program that the snippet has "
                         "since replaced, and awaits a re-recording on a GPU; its figures describe that other program. "
                         "Re-record it, or give --mfu and --peak-tflops yourself")
    artifacts = data.get("artifacts", {}) if isinstance(data, dict) else {}
    found = {}
    for artifact in artifacts.values() if isinstance(artifacts, dict) else ():
        j = artifact.get("json") if isinstance(artifact, dict) else None
        if isinstance(j, dict) and "achieved_flops" in j:  # 01_mfu.py's mfu.json
            found = {"achieved": j.get("achieved_flops"), "peak": j.get("datasheet_flops"), "card": j.get("device")}
        elif isinstance(j, dict) and isinstance(j.get("stages"), list) and j["stages"]:  # Lab 2's results
            best = max((s for s in j["stages"] if isinstance(s, dict)), key=lambda s: s.get("achieved_tflops") or 0,
                       default={})
            sheet = j.get("datasheet") if isinstance(j.get("datasheet"), dict) else {}
            found = {"achieved": _times(best.get("achieved_tflops"), 1e12), "peak": _times(sheet.get("tflops"), 1e12),
                     "card": j.get("device")}
    if not all(isinstance(found.get(k), (int, float)) and found[k] > 0 for k in ("achieved", "peak")):
        raise InputError(f"--from-recording {path}: no achieved FLOP/s and datasheet peak in it; pass a recording of "
                         "snippets/optimization/metrics/01_mfu.py or snippets/labs/lab2/04_experiment.py")
    values = {"peak_tflops": found["peak"] / 1e12, "mfu": found["achieved"] / found["peak"]}
    for name, value in values.items():
        check(name, value, f"--from-recording {path}: ")
    return values | {"card": str(found.get("card") or "the recorded card")}


def _times(value, factor):
    return value * factor if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def inputs(argv: list[str]) -> tuple[dict, argparse.Namespace]:
    parser = Parser(description=__doc__.split("\n")[0])
    for name, (default, _, _, _, meaning) in FIELDS.items():
        parser.add_argument("--" + name.replace("_", "-"), metavar="N", help=f"{meaning} (default {default})")
    for name, (default, options, meaning) in CHOICES.items():
        parser.add_argument("--" + name, choices=options, help=f"{meaning} (default {default})")
    parser.add_argument("--sequence-parallel", action=argparse.BooleanOptionalAction,
                        help="shard the activations TP leaves whole over the TP group (default: on)")
    parser.add_argument("--config", metavar="PATH", help="TOML file with any of the fields above (flags override it)")
    parser.add_argument("--from-recording", metavar="PATH", help="take the datasheet peak and measured MFU from a "
                        "recording of 01_mfu.py or of Lab 2 (04_experiment.py)")
    parser.add_argument("--json", metavar="PATH", help="also write inputs and results as JSON")
    args = parser.parse_args(argv)
    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json {args.json}: is a directory; give a file name")
    config = read_config(args.config) if args.config else {}
    values = {n: FIELDS[n][0] for n in FIELDS} | {n: c[0] for n, c in CHOICES.items()} | {"sequence_parallel": True}
    origin = {}
    for name, value in config.items():
        values[name], origin[name] = value, f"--config {args.config}: "
    if args.from_recording:
        recorded = from_recording(args.from_recording)
        values["card"] = recorded.pop("card")
        values.update(recorded)
    for name in [*FIELDS, *CHOICES, "sequence_parallel"]:
        if getattr(args, name) is not None:
            values[name], origin[name] = getattr(args, name), "--"
    for name in FIELDS:
        if values[name] is not None:
            values[name] = check(name, values[name], origin.get(name, "--"))
    for name, (_, options, _) in CHOICES.items():
        if values[name] not in options:
            raise InputError(f"{origin.get(name, '--')}{name} = {values[name]!r}: choose one of {', '.join(options)}")
    if not isinstance(values["sequence_parallel"], bool):
        raise InputError(f"{origin['sequence_parallel']}sequence_parallel = {values['sequence_parallel']!r}: "
                         "must be true or false")
    consistent(values)
    return values, args


def consistent(v: dict) -> None:
    """Layouts that cannot exist, and a model shape that contradicts the parameter count."""
    if v["heads"] % v["tp"]:
        raise InputError(f"--tp = {v['tp']}: must divide --heads {v['heads']} (each GPU computes whole heads)")
    if v["pp"] > v["layers"]:
        raise InputError(f"--pp = {v['pp']}: at most --layers {v['layers']} (each stage needs a layer)")
    if not v["days"] and v["gpus"] % (v["tp"] * v["pp"]):
        raise InputError(f"--gpus = {v['gpus']}: must be a multiple of --tp {v['tp']} × --pp {v['pp']} = "
                         f"{v['tp'] * v['pp']} (whole model replicas)")
    shape = 12 * v["layers"] * v["hidden"] ** 2 + v["vocab"] * v["hidden"]
    if not 1 / 3 <= v["params"] / shape <= 3:
        raise InputError(f"--params = {v['params']:g}: a model of {v['layers']} layers of dimension {v['hidden']} has "
                         f"about {shape:.2g}; give the model's own --layers and --hidden (and active parameters "
                         "for a mixture of experts)")


# --8<-- [start:flops]
def flops_per_token(v: dict) -> dict:
    """Training FLOPs per token: 6N in the weights, 12·L·h·s in attention (PaLM, arXiv 2204.02311, appendix B)."""
    weights = 6 * v["params"]
    attention = 12 * v["layers"] * v["hidden"] * v["seq_len"]
    return {"weights": weights, "attention": attention, "total": weights + attention}


def time_to_train(v: dict) -> dict:
    per_token = flops_per_token(v)
    flops = per_token["total"] * v["tokens"]
    sustained = v["peak_tflops"] * 1e12 * v["mfu"] * v["goodput"]  # model FLOP/s per GPU, over the whole run
    gpu_hours = flops / sustained / 3600
    replica = v["tp"] * v["pp"]  # GPUs holding one copy of the model
    gpus = math.ceil(gpu_hours / (24 * v["days"]) / replica) * replica if v["days"] else v["gpus"]
    return {"flops": flops, "attention_share": per_token["attention"] / per_token["total"],
            "sustained_tflops_per_gpu": sustained / 1e12, "gpu_hours": gpu_hours, "gpus": gpus,
            "data_parallel": gpus // replica, "days": gpu_hours / gpus / 24}
# --8<-- [end:flops]


# --8<-- [start:memory]
def memory_per_gpu(v: dict, gpus: int) -> dict:
    """Bytes on the busiest GPU (the first pipeline stage): model states after sharding, then activations."""
    t, p, d = v["tp"], v["pp"], gpus // (v["tp"] * v["pp"])
    psi = v["params"] / (t * p)  # parameters each GPU computes with
    stage = {"ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3, "fsdp": 3}[v["sharding"]]
    weights = v["weight_bytes"] * psi / (d if stage >= 3 else 1)  # ZeRO paper (arXiv 1910.02054), Fig. 1
    grads = v["grad_bytes"] * psi / (d if stage >= 2 else 1)
    optimizer = v["optimizer_bytes"] * psi / (d if stage >= 1 else 1)
    # Activations, 16-bit, per layer (Korthikanti et al., arXiv 2205.05198, Table 2; the MLP term 4f/h as in
    # Megatron-LM's theoretical_memory_usage.py, 16 when f = 4h): sbh·(18 + 4f/h) + 5·a·s²·b for attention scores.
    s, b, h, a = v["seq_len"], v["micro_batch"], v["hidden"], v["heads"]
    sbh, split = s * b * h, 8 + 4 * v["ffn_hidden"] / h  # split: the part tensor parallelism divides
    scores = 0 if v["recompute"] != "none" else 5 * a * s / h  # selective recomputation drops it
    if v["recompute"] == "full":
        per_layer = 2 * sbh / (t if v["sequence_parallel"] else 1)  # only each layer's input is kept
    elif v["sequence_parallel"] or t == 1:
        per_layer = sbh * (10 + split + scores) / t
    else:
        per_layer = sbh * (10 + (split + scores) / t)  # layer norms, dropout masks and inputs stay whole
    # The first stage holds p micro-batches of L/p layers (1F1B): L layers' worth, whatever p is.
    activations = per_layer * v["layers"] + sbh * p / t  # + the embedding's dropout output
    if p == 1:
        activations += 4 * sbh * (1 + v["vocab"] / h) / t  # output layer and loss, on the last (only) stage
    total = weights + grads + optimizer + activations
    return {"data_parallel": d, "weights": weights, "grads": grads, "optimizer": optimizer,
            "activations": activations, "total": total, "fits": total <= v["gpu_mem_gb"] * 1e9}
# --8<-- [end:memory]


def main(argv: list[str]) -> int:
    try:
        v, args = inputs(argv)
    except InputError as err:
        say(str(err))
        return 2
    r = time_to_train(v)
    m = memory_per_gpu(v, r["gpus"])
    peak = f"{v['peak_tflops']:.0f}" + (f" (datasheet, {v['card']})" if "card" in v else "")
    rows = [("model parameters N", f"{v['params']:.3g}"), ("training tokens D", f"{v['tokens']:.3g}"),
            ("peak per GPU (TFLOP/s)", peak), ("MFU (of the datasheet peak)", f"{v['mfu']:.1%}"),
            ("goodput", f"{v['goodput']:.1%}"), None,
            ("training FLOPs (6ND + attention)", f"{r['flops']:.3g}"),
            (f"attention's share at s = {v['seq_len']:,}", f"{r['attention_share']:.1%}"),
            ("sustained per GPU (TFLOP/s)", f"{r['sustained_tflops_per_gpu']:.0f}"),
            ("GPU-hours", f"{r['gpu_hours'] / 1e6:.2f} M" if r["gpu_hours"] >= 1e6 else f"{r['gpu_hours']:,.0f}"),
            (f"GPUs{' to finish in ' + format(v['days'], 'g') + ' days' if v['days'] else ''}",
             f"{r['gpus']:,} = TP {v['tp']} × PP {v['pp']} × DP {r['data_parallel']:,}"),
            ("wall-clock days", f"{r['days']:.1f}"), None,
            (f"memory per GPU ({v['sharding']}, recompute {v['recompute']})", "GB"),
            ("  weights", f"{m['weights'] / 1e9:.1f}"), ("  gradients", f"{m['grads'] / 1e9:.1f}"),
            ("  optimizer states", f"{m['optimizer'] / 1e9:.1f}"),
            (f"  activations (micro-batch {v['micro_batch']} × {v['seq_len']:,})", f"{m['activations'] / 1e9:.1f}"),
            ("  total", f"{m['total'] / 1e9:.1f} of {v['gpu_mem_gb']:g}: "
                        + ("fits" if m["fits"] else "does NOT fit (shard more, recompute, or raise TP/PP)"))]
    print(f"{'training sizing':<46}value")
    for row in rows:
        print("-" * 60 if row is None else f"{row[0]:<46}{row[1]}")
    if v["recompute"] == "full":
        print("full recomputation runs the forward pass twice (8·N per token of hardware FLOPs): expect a lower MFU")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps({"inputs": v, "results": r, "memory": m}, indent=2))
        except OSError as err:
            say(f"--json {args.json}: cannot write ({err.strerror or err})")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
