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


class InputError(Exception):
    """A bad input: one line naming the input and what to fix."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors, as one line too
        raise InputError(message)


def inputs(argv: list[str]) -> argparse.Namespace:
    parser = Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--mtbf-hours", type=float, nargs="+", default=[24, 6, 3.1],
                        help="job mean times between failures to compare, hours (default 24 6 3.1)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5, help="δ: minutes per checkpoint (default 5)")
    parser.add_argument("--restart-minutes", type=float, default=10, help="R: minutes per restart (default 10)")
    parser.add_argument("--work-hours", type=float, default=500, help="Ts: hours of training work (default 500)")
    parser.add_argument("--runs", type=int, default=20, help="seeded runs per point (default 20)")
    parser.add_argument("--json", metavar="PATH", help="also write results and the chart as JSON")
    args = parser.parse_args(argv)
    for name in ("checkpoint_minutes", "restart_minutes", "work_hours", "runs"):
        if not getattr(args, name) > 0:
            raise InputError(f"--{name.replace('_', '-')} = {getattr(args, name):g}: must be more than 0")
    bad = [m for m in args.mtbf_hours if not m > 0]
    if bad:
        raise InputError(f"--mtbf-hours {bad[0]:g}: every mean time between failures must be more than 0")
    return args


def daly(delta: float, mtbf: float) -> float:
    """Daly (2006), eq. 37: the higher-order estimate of the best interval (all in the same unit)."""
    if delta >= 2 * mtbf:
        return mtbf
    x = delta / (2 * mtbf)
    return math.sqrt(2 * delta * mtbf) * (1 + math.sqrt(x) / 3 + x / 9) - delta


def segments(work: float, tau: float) -> list[float]:
    full, rest = divmod(work, tau)
    return [tau] * int(full) + ([rest] if rest > 1e-9 else [])


def simulate(work: float, tau: float, delta: float, restart: float, mtbf: float, rng: random.Random) -> float:
    """Wall-clock time to finish `work` (minutes): segments of τ + δ, each retried until no failure hits it."""
    wall = 0.0
    for seg in segments(work, tau):
        while True:
            t = rng.expovariate(1 / mtbf)
            if t >= seg + delta:
                wall += seg + delta
                break
            wall += t  # the unsaved work is lost
            while (t := rng.expovariate(1 / mtbf)) < restart:
                wall += t  # a failure during the restart: restart again
            wall += restart
    return wall


def expected_wall(work: float, tau: float, delta: float, restart: float, mtbf: float) -> float:
    """Daly's complete model for the same segments: M·e^(R/M)·(e^((τ+δ)/M) − 1) per segment."""
    return sum(mtbf * math.exp(restart / mtbf) * math.expm1((seg + delta) / mtbf) for seg in segments(work, tau))


def sweep(args: argparse.Namespace) -> dict:
    work, delta, restart = args.work_hours * 60, args.checkpoint_minutes, args.restart_minutes
    intervals = [round(5 * 2 ** (i / 2), 1) for i in range(0, 13)]  # 5 min .. 320 min, two points per doubling
    results = {}
    for mtbf_h in args.mtbf_hours:
        mtbf = mtbf_h * 60
        rng = random.Random(f"{mtbf_h}")  # seeded: the same inputs give the same table and chart
        points = []
        for tau in intervals:
            walls = [simulate(work, tau, delta, restart, mtbf, rng) for _ in range(args.runs)]
            points.append({"interval_min": tau, "goodput_sim": work * len(walls) / sum(walls),
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
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = sweep(args)
    print(f"δ = {args.checkpoint_minutes:g} min, R = {args.restart_minutes:g} min, "
          f"Ts = {args.work_hours:g} h, {args.runs} runs per point")
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
        Path(args.json).write_text(json.dumps({"results": results, "chart": chart}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
