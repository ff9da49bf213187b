"""Simulate a checkpointed job under random failures: goodput against checkpoint interval, for several failure rates.

Each run does `--work-hours` of training in segments of τ minutes, each followed by a checkpoint of δ minutes;
failures arrive at random (exponential, mean M per job) and cost the unsaved work plus a restart of R minutes,
which can itself be interrupted. Goodput = work ÷ wall-clock time, averaged over `--runs` seeded runs, beside
Daly's closed form for the same model. The defaults are the case Daly (2006) simulates (Ts = 500 h, R = 10 min,
δ = 5 min, M = 24 h and 6 h) plus the 3.1 h job MTBF of Llama 3's 16,384-GPU run; --json writes the chart.
"""
import argparse
import json
import math
import random
import sys
from pathlib import Path


BUDGET = 4_000_000  # cost units per run of this program (a segment without failure costs 1, with failures ~30)


class InputError(Exception):
    """A bad input: one line naming the input, the accepted range and what to fix."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors, as one line too
        raise InputError(message)


def say(message: str) -> None:
    """One line on stderr: control characters and line breaks from the input shown escaped, as Python writes them."""
    print("error: " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in message), file=sys.stderr)


def number(flag: str, text: str, low: float, high: float, whole: bool = False) -> float:
    """The flag's value, or InputError naming it and the accepted range."""
    rule = f"a whole number from {low:g} to {high:g}" if whole else f"more than {low:g} and at most {high:g}"
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{flag} = {text!r}: not a number; must be {rule}") from None
    ok = low <= value <= high and value == int(value) if whole else math.isfinite(value) and low < value <= high
    if not ok:
        raise InputError(f"{flag} = {text}: must be {rule}")
    return int(value) if whole else value


def inputs(argv: list[str]) -> argparse.Namespace:
    parser = Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--mtbf-hours", nargs="+", default=["24", "6", "3.1"], metavar="H",
                        help="job mean times between failures to compare, hours (default 24 6 3.1; at most 10)")
    parser.add_argument("--checkpoint-minutes", default="5", metavar="N", help="δ: minutes per checkpoint (default 5)")
    parser.add_argument("--restart-minutes", default="10", metavar="N", help="R: minutes per restart (default 10)")
    parser.add_argument("--work-hours", default="500", metavar="N", help="Ts: hours of training work (default 500)")
    parser.add_argument("--runs", default="20", metavar="N", help="seeded runs per point (default 20)")
    parser.add_argument("--json", metavar="PATH", help="also write results and the chart as JSON")
    args = parser.parse_args(argv)
    args.checkpoint_minutes = number("--checkpoint-minutes", args.checkpoint_minutes, 1e-3, 1e5)
    args.restart_minutes = number("--restart-minutes", args.restart_minutes, 0, 1e5)
    args.work_hours = number("--work-hours", args.work_hours, 0.01, 1e7)
    args.runs = number("--runs", args.runs, 1, 200, whole=True)
    if len(args.mtbf_hours) > 10:
        raise InputError(f"--mtbf-hours: {len(args.mtbf_hours)} values; give at most 10")
    args.mtbf_hours = [number("--mtbf-hours", m, 1e-4, 1e6) for m in args.mtbf_hours]
    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json {args.json}: is a directory; give a file name")
    return args


def daly(delta: float, mtbf: float) -> float:
    """Daly (2006), eq. 37: the higher-order estimate of the best interval (all in the same unit)."""
    if delta >= 2 * mtbf:
        return mtbf
    x = delta / (2 * mtbf)
    return math.sqrt(2 * delta * mtbf) * (1 + math.sqrt(x) / 3 + x / 9) - delta


def log_expm1(x: float) -> float:
    return x + math.log1p(-math.exp(-x)) if x > 30 else math.log(math.expm1(x))


def expected_wall(work: float, tau: float, delta: float, restart: float, mtbf: float) -> float:
    """Daly's complete model for the same segments: M·e^(R/M)·(e^((τ+δ)/M) − 1) per segment (inf past a float)."""
    full, rest = divmod(work, tau)
    parts = [(full, tau)] + ([(1, rest)] if rest > 1e-9 else [])
    logs = [math.log(n) + math.log(mtbf) + restart / mtbf + log_expm1((seg + delta) / mtbf) for n, seg in parts if n]
    return sum(math.exp(x) if x < 700 else math.inf for x in logs)


# --8<-- [start:segment]
def lost_before(rng: "random.Random", count: float, mtbf: float, limit: float) -> float:
    """Total time of `count` failed attempts, each ended by a failure before `limit` (an exponential time given
    that it came first): drawn one by one by inverse CDF up to 16, past that as their normal sum, whose mean and
    variance are exact."""
    rate, x = 1 / mtbf, limit / mtbf
    if count <= 16:
        tail = -math.expm1(-x)  # P(failure before limit)
        return sum(-math.log1p(-rng.random() * tail) / rate for _ in range(int(count)))
    mean = mtbf - (limit / math.expm1(x) if x < 700 else 0)
    var = mtbf ** 2 - (limit ** 2 / (math.expm1(x) * -math.expm1(-x)) if x < 700 else 0)
    return max(0.0, rng.gauss(count * mean, math.sqrt(max(var, 0) * count)))


def failures(rng: "random.Random", x: float) -> float:
    """Failed attempts before the first that lasts x mean-times-between-failures: geometric, in one draw."""
    log_fail = math.log1p(-math.exp(-x)) if x < 700 else 0.0  # log P(an attempt fails)
    if log_fail == 0.0:
        return math.inf  # an attempt that long never succeeds in floating point
    return math.floor(math.log(1 - rng.random()) / log_fail)


def segment_wall(rng: "random.Random", seg: float, delta: float, restart: float, mtbf: float,
                 failed: bool = False) -> float:
    """Wall time of one segment of τ work and its δ checkpoint: each failure loses the time since the segment
    began and costs a restart of R, which a failure can interrupt too (then it starts over). `failed`: the caller
    has drawn that at least one failure hits it."""
    need = seg + delta
    if not failed and rng.random() < math.exp(-need / mtbf):
        return need  # no failure
    k = 1 + failures(rng, need / mtbf)  # failed attempts at the segment
    if k == math.inf:
        return math.inf
    restarts_failed = sum(failures(rng, restart / mtbf) for _ in range(k)) if k <= 16 else math.inf
    if restarts_failed == math.inf:  # many failures: the restart failures in total, as a normal sum
        q = math.exp(-restart / mtbf)  # P(a restart completes)
        draw = rng.gauss(k * (1 - q) / q, math.sqrt(k * (1 - q)) / q) if q > 1e-300 else math.inf
        if not math.isfinite(draw):
            return math.inf
        restarts_failed = max(0, round(draw))
    return (need + lost_before(rng, k, mtbf, need) + k * restart
            + lost_before(rng, restarts_failed, mtbf, restart))
# --8<-- [end:segment]


def simulate(work: float, tau: float, delta: float, restart: float, mtbf: float, rng: random.Random,
             sample: int | None = None) -> float:
    """Wall-clock time to finish `work` (minutes). With `sample`, only that many of the (identical, independent)
    full segments are drawn and their sum scaled up: the same expected wall time for a bounded cost."""
    full, rest = divmod(work, tau)
    drawn = int(full) if sample is None else min(int(full), sample)
    need, ok = tau + delta, math.exp(-(tau + delta) / mtbf)  # most segments meet no failure: test that first
    wall = sum(need if rng.random() < ok else segment_wall(rng, tau, delta, restart, mtbf, failed=True)
               for _ in range(drawn))
    return wall * (full / drawn if drawn else 0) + (segment_wall(rng, rest, delta, restart, mtbf) if rest > 1e-9 else 0)


def sweep(args: argparse.Namespace) -> dict:
    work, delta, restart = args.work_hours * 60, args.checkpoint_minutes, args.restart_minutes
    intervals = [round(5 * 2 ** (i / 2), 1) for i in range(0, 13)]  # 5 min .. 320 min, two points per doubling
    # The cost of drawing every segment; past the budget, each point draws a share of its segments and scales up.
    cost = {(m, tau): args.runs * (work // tau + 1) * (1 + 30 * -math.expm1(-(tau + delta) / (m * 60)))
            for m in args.mtbf_hours for tau in intervals}
    scale = min(1.0, BUDGET / sum(cost.values()))
    args.sample = scale < 1
    results = {}
    for mtbf_h in args.mtbf_hours:
        mtbf = mtbf_h * 60
        rng = random.Random(f"{mtbf_h}")  # seeded: the same inputs give the same table and chart
        points = []
        for tau in intervals:
            sample = None if scale == 1 else max(1, int((work // tau) * scale))
            walls = [simulate(work, tau, delta, restart, mtbf, rng, sample) for _ in range(args.runs)]
            mean = sum(walls) / len(walls)
            spread = math.sqrt(sum((w - mean) ** 2 for w in walls) / max(1, len(walls) - 1)) if mean < math.inf else 0
            points.append({"interval_min": tau, "goodput_sim": work / mean,
                           "relative_standard_error": spread / mean / math.sqrt(len(walls)) if mean < math.inf else 0,
                           "goodput_model": work / expected_wall(work, tau, delta, restart, mtbf)})
        best = max(points, key=lambda p: p["goodput_sim"])
        tau_daly = daly(delta, mtbf)
        results[f"{mtbf_h:g}"] = {"daly_minutes": tau_daly, "best_sim_minutes": best["interval_min"],
                                  "best_sim_goodput": best["goodput_sim"],
                                  "model_goodput_at_daly": work / expected_wall(work, tau_daly, delta, restart, mtbf),
                                  "points": points}
    return results


def main(argv: list[str]) -> int:
    try:
        args = inputs(argv)
    except InputError as err:
        say(str(err))
        return 2
    results = sweep(args)
    print(f"δ = {args.checkpoint_minutes:g} min, R = {args.restart_minutes:g} min, "
          f"Ts = {args.work_hours:g} h, {args.runs} runs per point"
          + (" (a sample of each run's segments drawn, then scaled up)" if args.sample else ""))
    print(f"{'MTBF (h)':>9}{'Daly τ (min)':>14}{'best simulated τ':>18}{'simulated goodput':>19}{'model at Daly τ':>17}")
    for mtbf_h, r in results.items():
        print(f"{mtbf_h:>9}{r['daly_minutes']:>14.1f}{r['best_sim_minutes']:>18.1f}"
              f"{r['best_sim_goodput']:>19.1%}{r['model_goodput_at_daly']:>17.1%}")
    if args.json:
        chart = {"title": f"Goodput vs checkpoint interval (δ = {args.checkpoint_minutes:g} min, "
                          f"R = {args.restart_minutes:g} min, simulated)",
                 "x": {"label": "checkpoint interval τ", "unit": "min", "log": True},
                 "y": {"label": "goodput", "unit": "share of wall-clock time"},
                 "series": {f"MTBF {m} h": [[p["interval_min"], p["goodput_sim"]] for p in r["points"]]
                            for m, r in results.items()}}
        try:
            Path(args.json).write_text(json.dumps({"results": results, "chart": chart}, indent=2))
        except OSError as err:
            say(f"--json {args.json}: cannot write ({err.strerror or err})")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
