#!/usr/bin/env python3
"""Goodput and GPU-hours lost of a game day, from the fleet's event log: the numbers of your incident report.

    python 01_goodput.py fleet-run/events.jsonl                  # one game day
    python 01_goodput.py a.jsonl b.jsonl --json goodput.json     # several, side by side, and a chart's data

Work is counted in GPU-seconds at full speed: while the job runs it adds (its GPUs x its speed) per second, a
crash throws away the work since the last checkpoint, and what the job holds when the game ends is kept.
Goodput = work kept / (the fleet's GPUs x the game's length); GPU-hours lost = the rest.

Each loss is charged to the incidents whose impact window covers it: from the fault until the job next runs on
the whole fleet at full speed after the incident is over (its fault cleared, or the job restarted for the
application's own faults). Losses no window covers are the operator's own: an unneeded drain, a restart at the
wrong moment. Standard library only.
"""
import argparse
import json
import sys
from pathlib import Path


def read(path: Path) -> list:
    events = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SystemExit(f"{path}: cannot read it ({err.strerror})")
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except ValueError:
                raise SystemExit(f"{path}:{number}: not a JSON line: is this a fleet's events.jsonl?")
    if not events or events[0].get("type") != "fleet_started":
        raise SystemExit(f"{path}:1: the first event is not fleet_started: is this a fleet's events.jsonl?")
    return events


def account(events: list) -> dict:
    game = events[0]["game"]
    gpus = game["nodes"] * game["gpus_per_node"]
    capacity = gpus * game["duration_s"]
    segments, drops, kept_curve = [], [], [(0.0, 0.0)]
    rate, since, work, restarts = 0.0, 0.0, 0.0, 0
    for e in events:
        if e["type"] not in ("job", "game_over"):
            continue
        t = min(e["t"], game["duration_s"])
        if t > since:
            segments.append((since, t, gpus - rate))
            work += rate * (t - since)
            kept_curve.append((t, work))
        since = t
        if e["type"] == "job":
            if e.get("lost"):
                drops.append((t, e["lost"]))
                work -= e["lost"]
                kept_curve.append((t, work))
            if e["state"] == "starting":
                restarts += 1
            rate = e["rate"]
    end = max(e["t"] for e in events)
    if end > since:  # a log that stops before the game's end: count up to its last event
        segments.append((since, end, gpus - rate))
        work += rate * (end - since)
        kept_curve.append((end, work))
    faults = {e["incident"]: e for e in events if e["type"] == "fault"}
    resolved = {e["incident"]: e["t"] for e in events if e["type"] == "resolved"}
    full = [e["t"] for e in events if e["type"] == "job" and e["state"] == "running" and e["rate"] >= gpus - 1e-9]
    windows = {}
    for iid, fault in faults.items():
        over = resolved.get(iid, game["duration_s"])
        windows[iid] = (fault["t"], next((t for t in full if t >= over), game["duration_s"]))
    lost = dict.fromkeys(windows, 0.0) | {"none": 0.0}
    for a, b, loss_rate in segments:
        cuts = sorted({a, b} | {x for w in windows.values() for x in w if a < x < b})
        for lo, hi in zip(cuts, cuts[1:]):
            owners = [i for i, (s, e) in windows.items() if s <= lo and hi <= e] or ["none"]
            for owner in owners:
                lost[owner] += loss_rate * (hi - lo) / len(owners)
    for t, amount in drops:
        owners = [i for i, (s, e) in windows.items() if s <= t <= e] or ["none"]
        for owner in owners:
            lost[owner] += amount / len(owners)
    return {"goodput": work / capacity, "gpu_hours_lost": (capacity - work) / 3600, "gpu_hours": capacity / 3600,
            "restarts": restarts, "incidents": {i: {**faults[i], "gpu_hours_lost": v / 3600} if i in faults else
                                                 {"gpu_hours_lost": v / 3600} for i, v in lost.items()},
            "kept_curve": kept_curve}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Goodput and GPU-hours lost, from fleet event logs")
    parser.add_argument("logs", nargs="+", type=Path, help="events.jsonl files")
    parser.add_argument("--json", metavar="PATH", help="also write the results and a chart of the work kept")
    args = parser.parse_args(argv)
    runs = {}
    for path in args.logs:
        events = read(path)
        name = events[0].get("policy") or path.parent.name if path.name == "events.jsonl" else path.stem
        runs[events[0].get("policy") or name] = account(events)
    width = max(12, *(len(n) for n in runs))
    print(f"{'run':<{width}}  goodput  GPU-hours lost (of)  restarts")
    for name, r in runs.items():
        print(f"{name:<{width}}  {r['goodput']:6.1%}   {r['gpu_hours_lost']:6.2f} ({r['gpu_hours']:.1f})      "
              f"{r['restarts']:>4}")
    for name, r in runs.items():
        print(f"\nGPU-hours lost by incident ({name}):")
        for iid, i in r["incidents"].items():
            if iid == "none":
                label = "no incident (the operator's own actions)"
                print(f"  {label:<44} {i['gpu_hours_lost']:6.2f}")
            else:
                where = "whole job" if i["kind"] == "hang" else i["node"] + ("" if i.get("gpu") is None else f" GPU {i['gpu']}")
                print(f"  {iid:<3} {i['kind']:<17} {where:<13} at {i['t']:6.0f} s {i['gpu_hours_lost']:6.2f}")
    if args.json:
        chart = {"title": "Work kept during the game day", "x": {"label": "time", "unit": "min"},
                 "y": {"label": "work kept", "unit": "GPU-hours"},
                 "series": {name: [[round(t / 60, 2), round(w / 3600, 3)] for t, w in r["kept_curve"]]
                            for name, r in runs.items()}}
        results = {name: {k: v for k, v in r.items() if k != "kept_curve"} for name, r in runs.items()}
        Path(args.json).write_text(json.dumps({"results": results, "chart": chart}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
