"""Benchmark of the fleet at scale: 64 nodes x 8 GPUs, each node's Lab 1 exporter scraped by a real Prometheus
every 5 s for 5 minutes, on this machine.

    .venv/bin/python checks/bench/bench_fleet.py [--nodes 64] [--window 300] [--json out.json]

Reports (printed, never asserted; targets from issue 30): missed scrapes (target: none: every node answers every
scrape of the window), the simulator's CPU share (the fleet daemon and its exporters, as a share of the machine's
cores), Prometheus's share, and the exporters' scrape latency as Prometheus measured it (scrape_duration_seconds,
p50 and p99 over every scrape of the window). The timeline (handbook/fleet/timelines/scale.toml) has four
incidents, so node files are rewritten and followed while the scrapes go on; none takes a host down.
Memory: about 30 MB per exporter (64 exporters: about 2 GB with Prometheus).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from handbook.fleet import harness, timeline  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--window", type=float, default=300.0, help="seconds of scraping measured")
    parser.add_argument("--interval", type=float, default=5.0, help="scrape and exporter poll interval")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    prometheus = shutil.which("prometheus")
    if not prometheus:
        print("prometheus is not installed (apt install prometheus)", file=sys.stderr)
        return 2
    game = timeline.load("scale")
    data = game.to_dict()
    data["nodes"] = args.nodes
    data["min_nodes"] = min(data["min_nodes"], args.nodes)
    data["duration_s"] = args.window + 180
    data["incidents"] = [i for i in data["incidents"] if i["node"] < args.nodes]
    game = timeline.Game.from_dict(data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folder = Path(tmp)
        timeline.write_game(game, folder / "scale.game")
        base = harness.free_base(args.nodes + 1)
        started = time.monotonic()
        fleet = subprocess.Popen([sys.executable, "-m", "handbook.fleet", "start", "--game", str(folder / "scale.game"),
                                  "--dir", str(folder / "fleet-run"), "--base-port", str(base), "--interval",
                                  f"{args.interval:g}"], cwd=folder, env=env, stdout=open(folder / "fleet.log", "w"),
                                 stderr=subprocess.STDOUT)
        prom = None
        try:
            deadline = time.monotonic() + 300
            up = set()
            while len(up) < args.nodes and time.monotonic() < deadline:
                for i in range(args.nodes):
                    if i not in up:
                        try:
                            urllib.request.urlopen(f"http://127.0.0.1:{base + 1 + i}/metrics", timeout=2).read()
                            up.add(i)
                        except OSError:
                            pass
                time.sleep(1)
            startup = time.monotonic() - started
            if len(up) < args.nodes:
                print(f"only {len(up)} of {args.nodes} exporters came up in 300 s: see {folder}/fleet.log", file=sys.stderr)
                return 1
            config = harness.prometheus_config(folder, base, args.interval,
                                               [harness.LAB1_RULES, harness.FLEET_RULES], 1.0)
            prom_port = base + args.nodes + 1
            prom = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                    cwd=folder, stdout=open(folder / "prometheus.log", "w"), stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{prom_port}"
            harness.wait_for(f"{url}/-/ready", time.monotonic() + 60)
            time.sleep(2 * args.interval)  # the first scrape of every target
            sim = [fleet.pid] + children(fleet.pid)
            cpu0, prom0, wall0 = cpu_seconds(sim), cpu_seconds([prom.pid]), time.monotonic()
            load0 = os.getloadavg()[0]
            time.sleep(args.window)
            cpu1, prom1, wall1 = cpu_seconds(sim + children(fleet.pid)), cpu_seconds([prom.pid]), time.monotonic()
            window = f"{int(args.window)}s"
            ups = harness.query(url, f'up{{job="gpu"}}[{window}]')
            durations = harness.query(url, f'scrape_duration_seconds{{job="gpu"}}[{window}]')
        finally:
            for proc in (prom, fleet):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (prom, fleet):
                if proc is not None:
                    try:
                        proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
        expected = int(args.window // args.interval)
        # A missed scrape: one that failed (up 0), or one that never happened (a gap between two samples longer
        # than 1.5 intervals); the window's edges are not gaps. A target never seen misses every scrape.
        failed, gaps, seen = 0, 0, set()
        for series in ups:
            seen.add(series["metric"]["node"])
            stamps = [float(t) for t, _ in series["values"]]
            failed += sum(1 for _, v in series["values"] if float(v) == 0)
            gaps += sum(round((b - a) / args.interval) - 1 for a, b in zip(stamps, stamps[1:])
                        if b - a > 1.5 * args.interval)
        missed = failed + gaps + expected * (args.nodes - len(seen))
        scraped = seen
        latencies = sorted(float(v) for r in durations for _, v in r["values"])
        cores = os.cpu_count() or 1
        result = {
            "nodes": args.nodes, "gpus": args.nodes * 8, "interval_s": args.interval, "window_s": round(wall1 - wall0, 1),
            "startup_s": round(startup, 1), "targets_seen": len(scraped), "scrapes_expected_per_target": expected,
            "missed_scrapes": missed, "failed_scrapes": failed, "gaps": gaps, "scrapes": len(latencies),
            "simulator_cpu_share": round((cpu1 - cpu0) / ((wall1 - wall0) * cores), 4),
            "prometheus_cpu_share": round((prom1 - prom0) / ((wall1 - wall0) * cores), 4),
            "cores": cores, "load_average_at_start": round(load0, 2),
            "scrape_p50_ms": round(1000 * statistics.median(latencies), 2) if latencies else None,
            "scrape_p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2)
            if latencies else None,
        }
    print(f"{result['nodes']} nodes x 8 GPUs, scraped every {args.interval:g} s for {result['window_s']:g} s "
          f"(exporters up after {result['startup_s']:g} s)")
    print(f"  missed scrapes: {result['missed_scrapes']} of about {expected * args.nodes} "
          f"({result['failed_scrapes']} failed, {result['gaps']} never made, {result['targets_seen']} targets seen)")
    print(f"  simulator CPU: {result['simulator_cpu_share']:.1%} of {cores} cores; Prometheus: "
          f"{result['prometheus_cpu_share']:.1%} (load average {result['load_average_at_start']:g} at the start)")
    print(f"  scrape latency: p50 {result['scrape_p50_ms']} ms, p99 {result['scrape_p99_ms']} ms "
          f"over {result['scrapes']} scrapes")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
