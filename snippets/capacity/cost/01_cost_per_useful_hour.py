"""What a *useful* GPU-hour costs on-demand, reserved, on spot and on-premises, and where owning breaks even.

Prices come from prices.toml beside this file (each with its source and date; --prices PATH for your own).
The file's [assumptions] are example inputs; each is also a flag: --utilization 0.5 --capex-per-gpu 30000.
Useful GPU-hours are the hours you pay for × utilization (for capacity paid whether used or not) × goodput;
on-demand and spot are paid only while they run. --json writes the chart of cost against utilization.
"""
import argparse
import json
import math
import re
import sys
import tomllib
from pathlib import Path

PRICES = Path(__file__).with_name("prices.toml")
HOURS_PER_YEAR = 8760
FRACTIONS = {"utilization", "goodput"}


class InputError(Exception):
    """A bad input: one line naming the input and what to fix."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors, as one line too
        raise InputError(message)


def load_prices(path: Path) -> tuple[dict, dict]:
    """Values by name from [prices] and [assumptions]; a price without its source and date is refused."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err})") from None
    for table, needed in (("prices", ("value", "unit", "source", "as_of")), ("assumptions", ("value", "unit", "note"))):
        for name, entry in data.get(table, {}).items():
            missing = [k for k in needed if k not in entry]
            if missing:
                raise InputError(f"{path}: [{table}.{name}] has no {missing[0]}; add {missing[0]} = \"...\"")
            if not isinstance(entry["value"], (int, float)) or isinstance(entry["value"], bool) or entry["value"] < 0:
                raise InputError(f"{path}: [{table}.{name}] value must be a number of at least 0")
            if table == "prices" and not re.fullmatch(r"https?://\S+", entry["source"]):
                raise InputError(f"{path}: [prices.{name}] source must be a URL, got {entry['source']!r}")
            if table == "prices" and not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", entry["as_of"]):
                raise InputError(f"{path}: [prices.{name}] as_of must be YYYY-MM or YYYY-MM-DD, got {entry['as_of']!r}")
    needed = {"aws_p5_on_demand_launch", "aws_p5_price_cut", "aws_capacity_block_p5", "neocloud_h100_on_demand",
              "spot_discount", "gpu_power", "pue", "electricity", "colocation"}
    absent = sorted(needed - set(data.get("prices", {})))
    if absent:
        raise InputError(f"{path}: no [prices.{absent[0]}]; the calculator needs {', '.join(sorted(needed))}")
    return data["prices"], data.get("assumptions", {})


def per_gpu(entry: dict) -> float:
    return entry["value"] / entry.get("gpus", 1)


def inputs(argv: list[str]) -> tuple[dict, dict, argparse.Namespace]:
    pre = Parser(add_help=False)
    pre.add_argument("--prices", type=Path, default=PRICES)
    known, _ = pre.parse_known_args(argv)
    prices, assumptions = load_prices(known.prices)
    parser = Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--prices", type=Path, default=PRICES, help="the price file (default: prices.toml here)")
    for name, entry in assumptions.items():
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=entry["value"],
                            help=f"{entry['label']}, {entry['unit']} (default {entry['value']:g})")
    parser.add_argument("--json", metavar="PATH", help="also write results and the chart as JSON")
    args = parser.parse_args(argv)
    a = {name: getattr(args, name) for name in assumptions}
    for name, value in a.items():
        if math.isnan(value) or value < 0 or (name in FRACTIONS and not 0 < value <= 1):
            rule = "more than 0 and at most 1" if name in FRACTIONS else "at least 0"
            raise InputError(f"--{name.replace('_', '-')} = {value:g}: must be {rule} ({assumptions[name]['label']})")
    if a["depreciation_years"] == 0:
        raise InputError("--depreciation-years = 0: must be more than 0 (years the hardware is written off over)")
    return prices, a, args


def on_prem_hourly(p: dict, a: dict) -> dict:
    """Cost of owning one GPU for an hour, whether it works or not, by part."""
    it_kw = p["gpu_power"]["value"] * a["server_power_factor"]
    return {"capex": a["capex_per_gpu"] / (a["depreciation_years"] * HOURS_PER_YEAR),
            "power": it_kw * p["pue"]["value"] * p["electricity"]["value"],
            "hosting": it_kw * p["colocation"]["value"] * 12 / HOURS_PER_YEAR,
            "staff": a["staff_per_gpu_year"] / HOURS_PER_YEAR}


def options(p: dict, a: dict) -> list[dict]:
    on_demand = per_gpu(p["aws_p5_on_demand_launch"]) * (1 - p["aws_p5_price_cut"]["value"])
    spot_kept = max(0.0, 1 - a["spot_preemptions_per_hour"] * a["spot_lost_hours"])
    owned = sum(on_prem_hourly(p, a).values())
    rows = [("AWS P5 on-demand, after the 2025 cut", on_demand, a["goodput"], False),
            ("neocloud on-demand", per_gpu(p["neocloud_h100_on_demand"]), a["goodput"], False),
            ("AWS P5 spot (restarts included)", on_demand * (1 - p["spot_discount"]["value"]), a["goodput"] * spot_kept, False),
            ("AWS Capacity Block (reserved)", per_gpu(p["aws_capacity_block_p5"]), a["utilization"] * a["goodput"], True),
            ("on-prem, owned", owned, a["utilization"] * a["goodput"], True)]
    return [{"option": name, "paid_per_gpu_hour": paid, "useful_share": useful, "pays_when_idle": idle,
             "per_useful_gpu_hour": paid / useful if useful else math.inf} for name, paid, useful, idle in rows]


def main(argv: list[str]) -> int:
    try:
        p, a, args = inputs(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = options(p, a)
    dates = sorted(entry["as_of"] for entry in p.values())
    print(f"prices from {args.prices.name}, as of {dates[0]} to {dates[-1]}; utilization {a['utilization']:.0%}, "
          f"goodput {a['goodput']:.0%}")
    print(f"{'option':<40}{'paid $/GPU-h':>13}{'useful share':>14}{'$/useful GPU-h':>16}")
    for r in rows:
        print(f"{r['option']:<40}{r['paid_per_gpu_hour']:>13.2f}{r['useful_share']:>14.1%}{r['per_useful_gpu_hour']:>16.2f}")
    parts = on_prem_hourly(p, a)
    print("on-prem $/GPU-h by part: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    owned = sum(parts.values())
    # owned / (u · goodput) = paid / useful share, solved for u
    breakeven = {r["option"]: owned * r["useful_share"] / (r["paid_per_gpu_hour"] * a["goodput"])
                 for r in rows if not r["pays_when_idle"]}
    for name, u in breakeven.items():
        verdict = f"{u:.0%}" if u <= 1 else "never (owning costs more even when always busy)"
        print(f"on-prem breaks even with {name} at utilization {verdict}")
    if args.json:
        grid = [round(0.05 * i, 2) for i in range(4, 21)]
        series = {r["option"]: [[u, r["paid_per_gpu_hour"] / (u * a["goodput"] if r["pays_when_idle"] else r["useful_share"])]
                                for u in grid] for r in rows}
        chart = {"title": f"Cost per useful GPU-hour against utilization (goodput {a['goodput']:.0%}, "
                          f"prices as of {dates[0][:7]} to {dates[-1][:7]})",
                 "x": {"label": "utilization of capacity paid whether used or not", "unit": ""},
                 "y": {"label": "cost per useful GPU-hour", "unit": "USD"}, "series": series}
        Path(args.json).write_text(json.dumps({"assumptions": a, "options": rows, "on_prem_parts": parts,
                                               "breakeven_utilization": breakeven, "chart": chart}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
