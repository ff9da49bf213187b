"""Failures a job should expect, the spare nodes to hold, and the checkpoint interval that wastes least time.

Run it with no arguments and it takes the failure rate from Llama 3's 54-day snapshot (419 unexpected
interruptions on 16,384 GPUs) and plans a job of the same size; pass your own fleet data and job as flags
(--job-gpus 1024 --job-days 30 --checkpoint-minutes 2) or in a TOML file of the same names (--config).
Spares: each failure takes a node out for the repair time, so rate × repair time nodes are out on average
(Little's law); the spares cover that count with the confidence asked for (Poisson), and the table shows what
repair times the usual 5 % and 10 % of spare nodes cover. The interval is Young's first-order sqrt(2·δ·M) and
Daly's higher-order estimate, where δ is the checkpoint write time and M the job's mean time between failures;
the goodput is Daly's expected share of wall-clock time that is kept work.
"""
import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

# name: (default, kind, low, high, meaning); kind "int": a whole number in [low, high], "num": in (low, high].
# Fleet defaults: Llama 3 (arXiv 2407.21783, section 3.3.4); checkpoint and restart: the case Daly (2006)
# simulates. repair_hours is an example input: use your provider's or your own repair times.
FIELDS = {
    "fleet_interruptions": (419, "int", 1, 10**9, "unexpected interruptions seen in the fleet data"),
    "fleet_days": (54.0, "num", 0.01, 36_500, "days the fleet data covers"),
    "fleet_gpus": (16384, "int", 1, 10**7, "GPUs in the fleet data"),
    "job_gpus": (16384, "int", 1, 10**7, "GPUs in your job"),
    "job_days": (54.0, "num", 0.01, 36_500, "wall-clock days of your job"),
    "gpus_per_node": (8, "int", 1, 1024, "GPUs per node (a failure takes its node out)"),
    "repair_hours": (24.0, "num", 0.01, 100_000, "hours until a failed node is repaired or replaced"),
    "spare_confidence": (0.99, "num", 0.5, 0.999999, "chance that the spares cover every node down at once"),
    "checkpoint_minutes": (5.0, "num", 1e-3, 100_000, "minutes to write one checkpoint (δ)"),
    "restart_minutes": (10.0, "num", 1e-3, 100_000, "minutes from a failure until training runs again (R)"),
}
SHARES = (0.05, 0.10)  # spare shares to translate into the repair times they cover (Delta study; ml-engineering)


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
    return f"a whole number from {low:,} to {high:,}" if kind == "int" else f"more than {low:g} and at most {high:g}"


def check(name: str, value, origin: str):
    """The value as a number, or InputError naming the flag (or file and field) and the range."""
    where = f"{origin}{name}" if origin != "--" else "--" + name.replace("_", "-")
    _, kind, low, high, meaning = FIELDS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (isinstance(value, str) and origin != "--"):
        raise InputError(f"{where} = {value!r}: not a number; must be {rule(name)} ({meaning})")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where} = {value!r}: not a number; must be {rule(name)} ({meaning})") from None
    ok = low <= number <= high and number == int(number) if kind == "int" else math.isfinite(number) and low < number <= high
    if not ok:
        percent = name == "spare_confidence" and 1 < number <= 100
        raise InputError(f"{where} = {value}: must be {rule(name)} ({meaning})"
                         + (f"; {number:g} looks like a percentage: write {number / 100:g}" if percent else ""))
    return int(number) if kind == "int" else number


def read_config(path: str) -> dict:
    try:
        data = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
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
    parser.add_argument("--json", metavar="PATH", help="also write inputs and results as JSON")
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
        values[name] = check(name, value, origin.get(name, "--"))
    nodes = math.ceil(values["job_gpus"] / values["gpus_per_node"])
    down = failure_rate(values) * values["job_gpus"] * values["repair_hours"]
    if down >= nodes:
        raise InputError(f"--repair-hours = {values['repair_hours']:g}: at this failure rate {down:,.0f} nodes would "
                         f"be down on average, more than the job's {nodes:,}; check the repair time and fleet data")
    return values, args


def failure_rate(v: dict) -> float:
    return v["fleet_interruptions"] / (v["fleet_days"] * 24 * v["fleet_gpus"])  # per GPU-hour


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
    """Daly's complete model, τ over the expected wall time per τ of work, M·e^(R/M)·(e^((τ+δ)/M) − 1), in logs
    so that a short MTBF gives a goodput near 0 rather than an overflow."""
    x = (tau + delta) / mtbf
    log_expm1 = x + math.log1p(-math.exp(-x)) if x > 30 else math.log(math.expm1(x))
    return math.exp(math.log(tau) - math.log(mtbf) - restart / mtbf - log_expm1)


# --8<-- [start:spares]
def poisson_quantile(mean: float, confidence: float) -> int:
    """The smallest k with P(X ≤ k) ≥ confidence for X ~ Poisson(mean). Terms are summed as exp(log pmf), from
    ten standard deviations below the mean (the mass below is < 1e-20), so a large mean neither underflows nor
    loops long: about 12·sqrt(mean) terms."""
    if mean <= 0:
        return 0
    low = max(0, math.floor(mean - 10 * math.sqrt(mean) - 10))
    high = math.ceil(mean + 40 * math.sqrt(mean) + 40)
    total = 0.0
    for k in range(low, high + 1):
        total += math.exp(k * math.log(mean) - mean - math.lgamma(k + 1))
        if total >= confidence:
            return k
    return high


def repair_hours_covered(spares: int, job_rate: float, confidence: float) -> float:
    """The longest repair time for which `spares` nodes still cover every node down at once: bisection on the
    mean nodes down, μ = rate × repair time, which lies within ten standard deviations below `spares`."""
    low, high = max(0.0, spares - 10 * math.sqrt(spares) - 10), float(spares) + 1
    while high - low > 1e-6 * (spares + 1):
        mid = (low + high) / 2
        low, high = (mid, high) if poisson_quantile(mid, confidence) <= spares else (low, mid)
    return low / job_rate
# --8<-- [end:spares]


def plan(v: dict) -> dict:
    rate = failure_rate(v)
    job_rate = rate * v["job_gpus"]  # per hour: any one GPU failing stops a synchronous job
    nodes = math.ceil(v["job_gpus"] / v["gpus_per_node"])
    nodes_down = job_rate * v["repair_hours"]  # Little's law: arrivals × time each stays out
    spares = poisson_quantile(nodes_down, v["spare_confidence"])
    covered = {share: repair_hours_covered(math.ceil(share * nodes), job_rate, v["spare_confidence"])
               for share in SHARES}
    delta, restart, mtbf = v["checkpoint_minutes"], v["restart_minutes"], 60 / job_rate
    t_young, t_daly = young(delta, mtbf), daly(delta, mtbf)
    return {"per_gpu_hour": rate, "expected_failures": job_rate * v["job_days"] * 24, "job_mtbf_hours": mtbf / 60,
            "nodes": nodes, "nodes_down_mean": nodes_down, "spare_nodes": spares, "spare_share": spares / nodes,
            "repair_hours_covered": {f"{share:.0%}": hours for share, hours in covered.items()},
            "young_minutes": t_young, "daly_minutes": t_daly, "goodput_at_daly": goodput(t_daly, delta, restart, mtbf)}


def main(argv: list[str]) -> int:
    try:
        v, args = inputs(argv)
    except InputError as err:
        say(str(err))
        return 2
    r = plan(v)
    rows = [("interruptions per GPU-hour (fleet data)", f"{r['per_gpu_hour']:.2e}"),
            (f"expected failures in {v['job_days']:g} days on {v['job_gpus']:,} GPUs", f"{r['expected_failures']:,.0f}"),
            ("job mean time between failures (h)", f"{r['job_mtbf_hours']:.3g}"),
            (f"nodes down at once, on average ({v['repair_hours']:g} h repairs)", f"{r['nodes_down_mean']:.1f}"),
            (f"spare nodes for {v['spare_confidence']:.0%} cover", f"{r['spare_nodes']:,} ({r['spare_share']:.1%} of "
                                                                  f"the job's {r['nodes']:,} nodes)"),
            *((f"  {share} spare nodes cover repairs up to (days)", f"{hours / 24:,.1f}")
              for share, hours in r["repair_hours_covered"].items()),
            (f"checkpoint interval, Young (min, δ = {v['checkpoint_minutes']:g} min)", f"{r['young_minutes']:.3g}"),
            ("checkpoint interval, Daly (min)", f"{r['daly_minutes']:.3g}"),
            (f"goodput at Daly's interval (R = {v['restart_minutes']:g} min)", f"{r['goodput_at_daly']:.1%}")]
    print(f"{'failures, spares and checkpoints':<58}value")
    for name, value in rows:
        print(f"{name:<58}{value}")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps({"inputs": v, "results": r}, indent=2))
        except OSError as err:
            say(f"--json {args.json}: cannot write ({err.strerror or err})")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
