"""Failures a job should expect, the spare nodes to hold, and the checkpoint interval that wastes least time.

Run it with no arguments and it takes the failure rate from Llama 3's 54-day snapshot (419 unexpected
interruptions on 16,384 GPUs) and plans a job of the same size; pass your own fleet data and job as flags
(--job-gpus 1024 --job-days 30 --checkpoint-minutes 2) or in a TOML file (--config). The interval is Young's
first-order sqrt(2·δ·M) and Daly's higher-order estimate, where δ is the checkpoint write time and M the job's
mean time between failures; the goodput is Daly's expected share of wall-clock time that is kept work.
"""
import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

# name: (default, rule, meaning). Fleet defaults: Llama 3 (arXiv 2407.21783, section 3.3.4); checkpoint and
# restart defaults: the case Daly (2006) simulates. repair_hours is an example input: use your provider's figure.
FIELDS = {
    "fleet_interruptions": (419, "positive", "unexpected interruptions seen in the fleet data"),
    "fleet_days": (54, "positive", "days the fleet data covers"),
    "fleet_gpus": (16384, "positive", "GPUs in the fleet data"),
    "job_gpus": (16384, "positive", "GPUs in your job"),
    "job_days": (54, "positive", "wall-clock days of your job"),
    "gpus_per_node": (8, "positive", "GPUs per node (a failure takes its node out)"),
    "repair_hours": (24, "positive", "hours until a failed node is repaired or replaced"),
    "spare_confidence": (0.99, "fraction", "chance that the spares cover every node down at once"),
    "checkpoint_minutes": (5, "positive", "minutes to write one checkpoint (δ)"),
    "restart_minutes": (10, "positive", "minutes from a failure until training runs again (R)"),
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
    if math.isnan(value) or value <= 0 or (rule == "fraction" and value >= 1):
        allowed = "more than 0 and less than 1" if rule == "fraction" else "more than 0"
        raise InputError(f"{origin}{name.replace('_', '-')} = {value:g}: must be {allowed} ({meaning})")


def inputs(argv: list[str]) -> tuple[dict, argparse.Namespace]:
    parser = Parser(description=__doc__.split("\n")[0])
    for name, (default, _, meaning) in FIELDS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=float, help=f"{meaning} (default {default})")
    parser.add_argument("--config", help="TOML file with every field above (flags override it)")
    parser.add_argument("--json", metavar="PATH", help="also write inputs and results as JSON")
    args = parser.parse_args(argv)
    values = read_config(args.config) if args.config else {n: d for n, (d, _, _) in FIELDS.items()}
    for name in FIELDS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    for name, value in values.items():
        check(name, float(value), f"{args.config}: " if args.config and getattr(args, name) is None else "--")
    return values, args


def young(delta: float, mtbf: float) -> float:
    """Young (1974): the interval between checkpoints that minimises lost time, to first order."""
    return math.sqrt(2 * delta * mtbf)


def daly(delta: float, mtbf: float) -> float:
    """Daly (2006), eq. 37: the higher-order estimate; checkpointing is pointless once δ ≥ 2M."""
    if delta >= 2 * mtbf:
        return mtbf
    x = delta / (2 * mtbf)
    return math.sqrt(2 * delta * mtbf) * (1 + math.sqrt(x) / 3 + x / 9) - delta


def goodput(tau: float, delta: float, restart: float, mtbf: float) -> float:
    """Daly's complete model: expected wall time per τ of work is M·e^(R/M)·(e^((τ+δ)/M) − 1)."""
    return tau / (mtbf * math.exp(restart / mtbf) * math.expm1((tau + delta) / mtbf))


def poisson_quantile(mean: float, confidence: float) -> int:
    """The smallest k with P(X ≤ k) ≥ confidence for X ~ Poisson(mean)."""
    k, term = 0, math.exp(-mean)
    total = term
    while total < confidence:
        k += 1
        term *= mean / k
        total += term
    return k


def plan(v: dict) -> dict:
    rate = v["fleet_interruptions"] / (v["fleet_days"] * 24 * v["fleet_gpus"])  # per GPU-hour
    job_rate = rate * v["job_gpus"]  # per hour: any one GPU failing stops a synchronous job
    mtbf_h = 1 / job_rate
    nodes_down = job_rate * v["repair_hours"]  # Little's law: arrivals × time each stays out
    spares = poisson_quantile(nodes_down, v["spare_confidence"])
    delta, restart, mtbf = v["checkpoint_minutes"], v["restart_minutes"], mtbf_h * 60
    t_young, t_daly = young(delta, mtbf), daly(delta, mtbf)
    return {"per_gpu_hour": rate, "expected_failures": job_rate * v["job_days"] * 24, "job_mtbf_hours": mtbf_h,
            "nodes_down_mean": nodes_down, "spare_nodes": spares,
            "spare_share": spares / math.ceil(v["job_gpus"] / v["gpus_per_node"]),
            "young_minutes": t_young, "daly_minutes": t_daly, "goodput_at_daly": goodput(t_daly, delta, restart, mtbf)}


def main(argv: list[str]) -> int:
    try:
        v, args = inputs(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    r = plan(v)
    rows = [("interruptions per GPU-hour (fleet data)", f"{r['per_gpu_hour']:.2e}"),
            (f"expected failures in {v['job_days']:g} days on {v['job_gpus']:,.0f} GPUs", f"{r['expected_failures']:,.0f}"),
            ("job mean time between failures (h)", f"{r['job_mtbf_hours']:.2f}"),
            (f"nodes down at once, on average ({v['repair_hours']:g} h repairs)", f"{r['nodes_down_mean']:.1f}"),
            (f"spare nodes for {v['spare_confidence']:.0%} cover", f"{r['spare_nodes']} ({r['spare_share']:.1%} of the job's nodes)"),
            (f"checkpoint interval, Young (min, δ = {v['checkpoint_minutes']:g} min)", f"{r['young_minutes']:.1f}"),
            ("checkpoint interval, Daly (min)", f"{r['daly_minutes']:.1f}"),
            (f"goodput at Daly's interval (R = {v['restart_minutes']:g} min)", f"{r['goodput_at_daly']:.1%}")]
    print(f"{'failures, spares and checkpoints':<58}value")
    for name, value in rows:
        print(f"{name:<58}{value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"inputs": v, "results": r}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
