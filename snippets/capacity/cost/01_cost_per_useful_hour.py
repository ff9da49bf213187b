"""What a *useful* GPU-hour costs on-demand, reserved, on spot and on-premises, and where owning breaks even.

Prices come from prices.toml beside this file (each with its source and date; --prices PATH for your own).
The file's [assumptions] are example inputs; each is also a flag: --utilization 0.5 --capex-per-gpu 30000.
Useful GPU-hours are the hours you pay for × utilization (for capacity paid whether used or not) × goodput;
on-demand and spot are paid only while they run. --json writes the chart of cost against utilization.
"""
import argparse
import json
import datetime as dt
import math
import re
import sys
import tomllib
from pathlib import Path

PRICES = Path(__file__).with_name("prices.toml")
HOURS_PER_YEAR = 8760


# --8<-- [start:schema]
def percent(v):
    return 1 <= v <= 100 and f"{v:g} looks like a percentage: write {v / 100:g}"


# The price file's schema. Each price the calculator needs, its unit and the values that unit can take; a value
# outside the range that is one unit slip away from a plausible one gets the slip named.
#   name: (unit, low, high, slip)   — the value must satisfy low < value <= high (low <= value for "ratio" units)
PRICE_SCHEMA = {
    "aws_p5_on_demand_launch": ("USD per instance-hour", 0, 2000, None),
    "aws_p5_price_cut": ("fraction off", -1e-12, 0.99, percent),
    "aws_capacity_block_p5": ("USD per instance-hour", 0, 2000, None),
    "neocloud_h100_on_demand": ("USD per GPU-hour", 0, 200, None),
    "spot_discount": ("fraction off", -1e-12, 0.99, percent),
    "gpu_power": ("kW per GPU", 0, 5, lambda v: v > 5 and f"{v:g} looks like watts: write {v / 1000:g}"),
    "pue": ("facility power / IT power", 0.999, 5, None),
    "electricity": ("USD per kWh", 0, 2, lambda v: v > 2 and f"{v:g} looks like USD per MWh or cents: write "
                                                               f"{v / 1000:g} or {v / 100:g}"),
    "colocation": ("USD per kW-month", 0, 10_000, None),
}
ASSUMPTION_SCHEMA = {  # every assumption is also a flag; the same ranges apply to both
    "capex_per_gpu": ("USD", 0, 10_000_000, None),
    "depreciation_years": ("years", 0, 50, None),
    "server_power_factor": ("ratio", 0.999, 10, None),
    "staff_per_gpu_year": ("USD per GPU-year", -1e-12, 10_000_000, None),
    "utilization": ("fraction", 0, 1, percent),
    "goodput": ("fraction", 0, 1, percent),
    "spot_preemptions_per_hour": ("per hour", -1e-12, 100, None),
    "spot_lost_hours": ("hours", -1e-12, 10_000, None),
}
PRICE_FIELDS = {"label", "value", "unit", "source", "as_of", "gpus", "note"}  # gpus: per instance-hour prices only
ASSUMPTION_FIELDS = {"label", "value", "unit", "note"}
# --8<-- [end:schema]


class InputError(Exception):
    """A bad input: one line naming the input, the accepted range and what to fix."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors, as one line too
        raise InputError(message)


def say(message: str) -> None:
    """One line on stderr: control characters and line breaks from the input shown escaped, as Python writes them."""
    print("error: " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in message), file=sys.stderr)


def in_range(where: str, value, schema: tuple) -> float:
    """The value, or InputError naming where it is, its unit and accepted range, and any likely unit slip."""
    unit, low, high, slip = schema
    rule = f"from {max(low, 0):g} to {high:g}" if low < 0 or low == 0.999 else f"more than {low:g} and at most {high:g}"
    if low == 0.999:
        rule = f"from 1 to {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where} = {value!r}: must be a number {rule} ({unit})")
    if not (math.isfinite(value) and low < value <= high):
        hint = slip(value) if slip and math.isfinite(value) else False
        raise InputError(f"{where} = {value:g}: must be {rule} ({unit})" + (f"; {hint}" if hint else ""))
    return float(value)


def as_of(where: str, value) -> dt.date:
    """An ISO date (TOML date or "YYYY-MM-DD"), not in the future and not before 2000."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise InputError(f"{where} as_of = {value!r}: must be an ISO date, YYYY-MM-DD (the day the price was "
                         "published or read)")
    if not dt.date(2000, 1, 1) <= value <= dt.date.today():
        raise InputError(f"{where} as_of = {value}: must be a date from 2000-01-01 to today")
    return value


def load_prices(path: Path) -> tuple[dict, dict]:
    """Prices and assumptions from the price file, each row checked against the schema above."""
    try:
        data = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except IsADirectoryError:
        raise InputError(f"--prices {path}: is a directory; give a TOML file") from None
    except OSError as err:
        raise InputError(f"--prices {path}: cannot read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise InputError(f"--prices {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"--prices {path}: not valid TOML ({err})") from None
    for table in data:
        if table not in ("prices", "assumptions"):
            raise InputError(f"{path}: unknown table [{table}]; the file has [prices.NAME] and [assumptions.NAME]")
    for table, schema, fields in (("prices", PRICE_SCHEMA, PRICE_FIELDS),
                                  ("assumptions", ASSUMPTION_SCHEMA, ASSUMPTION_FIELDS)):
        rows = data.get(table)
        if not isinstance(rows, dict) or not rows:
            raise InputError(f"{path}: no [{table}] section; the calculator needs [{table}.NAME] for "
                             f"{', '.join(schema)}")
        for name in schema:
            if name not in rows:
                raise InputError(f"{path}: no [{table}.{name}]; the calculator needs {', '.join(schema)}")
        for name, row in rows.items():
            where = f"{path}: [{table}.{name}]"
            if name not in schema:
                raise InputError(f"{where}: not a {table[:-1]} the calculator uses ({', '.join(schema)})")
            if not isinstance(row, dict):
                raise InputError(f"{where}: must be a table with {', '.join(sorted(fields - {'gpus', 'note'}))}")
            missing = sorted(fields - {"gpus", "note"} - set(row))
            if missing:
                raise InputError(f"{where} has no {missing[0]}; add {missing[0]} = ...")
            unknown = sorted(set(row) - fields)
            if unknown:
                raise InputError(f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(sorted(fields))}")
            for text in ("label", "unit", "source", "note"):
                if text in row and not (isinstance(row[text], str) and row[text].strip()):
                    raise InputError(f"{where} {text} = {row[text]!r}: must be non-empty text")
            if row["unit"] != schema[name][0]:
                raise InputError(f"{where} unit = {row['unit']!r}: must be {schema[name][0]!r} (convert the value)")
            row["value"] = in_range(f"{where} value", row["value"], schema[name])
            if table == "prices":
                if not re.fullmatch(r"https?://[^\s/$.?#][^\s]*", row["source"]):
                    raise InputError(f"{where} source = {row['source']!r}: must be the URL the price comes from")
                row["as_of"] = as_of(where, row["as_of"])
                per_instance = row["unit"] == "USD per instance-hour"
                gpus = row.get("gpus")
                if per_instance and (isinstance(gpus, bool) or not isinstance(gpus, int) or not 1 <= gpus <= 64):
                    raise InputError(f"{where} gpus = {gpus!r}: a price per instance-hour needs gpus = the whole "
                                     "number of GPUs in the instance, from 1 to 64")
                if not per_instance and gpus is not None:
                    raise InputError(f"{where} gpus = {gpus!r}: only a price per instance-hour names its GPUs")
    return data["prices"], data["assumptions"]


def per_gpu(entry: dict) -> float:
    return entry["value"] / entry.get("gpus", 1)


def inputs(argv: list[str]) -> tuple[dict, dict, argparse.Namespace]:
    pre = Parser(add_help=False)
    pre.add_argument("--prices", default=str(PRICES))
    known, _ = pre.parse_known_args(argv)
    prices, assumptions = load_prices(known.prices)
    parser = Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--prices", default=str(PRICES), help="the price file (default: prices.toml here)")
    for name, entry in assumptions.items():
        parser.add_argument("--" + name.replace("_", "-"), metavar="N",
                            help=f"{entry['label']}, {entry['unit']} (default {entry['value']:g})")
    parser.add_argument("--json", metavar="PATH", help="also write results and the chart as JSON")
    args = parser.parse_args(argv)
    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json {args.json}: is a directory; give a file name")
    a = {}
    for name, entry in assumptions.items():
        flag = getattr(args, name)
        if flag is None:
            a[name] = entry["value"]
            continue
        try:
            number = float(flag)
        except ValueError:
            number = flag
        a[name] = in_range("--" + name.replace("_", "-"), number, ASSUMPTION_SCHEMA[name])
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
        say(str(err))
        return 2
    rows = options(p, a)
    dates = sorted(entry["as_of"] for entry in p.values())
    print(f"prices from {Path(args.prices).name}, as of {dates[0]} to {dates[-1]}; utilization "
          f"{a['utilization']:.0%}, goodput {a['goodput']:.0%}")
    print(f"{'option':<40}{'paid $/GPU-h':>13}{'useful share':>14}{'$/useful GPU-h':>16}")
    for r in rows:
        cost = f"{r['per_useful_gpu_hour']:>16.2f}" if r["useful_share"] else f"{'never useful':>16}"
        print(f"{r['option']:<40}{r['paid_per_gpu_hour']:>13.2f}{r['useful_share']:>14.1%}{cost}")
    parts = on_prem_hourly(p, a)
    print("on-prem $/GPU-h by part: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    owned = sum(parts.values())
    # owned / (u · goodput) = paid / useful share, solved for u
    breakeven = {r["option"]: owned * r["useful_share"] / (r["paid_per_gpu_hour"] * a["goodput"])
                 for r in rows if not r["pays_when_idle"] and r["useful_share"]}
    for name, u in breakeven.items():
        verdict = f"{u:.0%}" if u <= 1 else "never (owning costs more even when always busy)"
        print(f"on-prem breaks even with {name} at utilization {verdict}")
    if args.json:
        grid = [round(0.05 * i, 2) for i in range(4, 21)]
        series = {r["option"]: [[u, r["paid_per_gpu_hour"] / (u * a["goodput"] if r["pays_when_idle"] else r["useful_share"])]
                                for u in grid] for r in rows if r["useful_share"]}
        chart = {"title": f"Cost per useful GPU-hour against utilization (goodput {a['goodput']:.0%}, "
                          f"prices as of {dates[0].isoformat()[:7]} to {dates[-1].isoformat()[:7]})",
                 "x": {"label": "utilization of capacity paid whether used or not", "unit": ""},
                 "y": {"label": "cost per useful GPU-hour", "unit": "USD"}, "series": series}
        try:
            Path(args.json).write_text(json.dumps({"assumptions": a, "options": rows, "on_prem_parts": parts,
                                                   "breakeven_utilization": breakeven, "chart": chart}, indent=2))
        except OSError as err:
            say(f"--json {args.json}: cannot write ({err.strerror or err})")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
