"""Run a whole game day unattended: the fleet, a real Prometheus pointed at it, and a responder (or nobody).

The checks (checks/test_fleet_live.py) and the scale benchmark (checks/bench/bench_fleet.py) use it; instructors
can use it to try a timeline: `python -m handbook.fleet.harness --timeline ci --responder reference`.
Prometheus gets the project's configuration (snippets/labs/project/prometheus.yml) with the scrape and evaluation
interval, the fleet's port and the rule files of the run, each rule file compressed by 1/time_scale.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from handbook import ROOT
from handbook.fleet import FleetError, journal, rules, timeline

PROJECT = ROOT / "snippets" / "labs" / "project"
LAB1_RULES = ROOT / "snippets" / "labs" / "lab1" / "gpu-rules.yml"
FLEET_RULES = PROJECT / "fleet-rules.yml"
REFERENCE_RULES = ROOT / "instructor" / "project" / "reference-rules.yml"
RESPONDER = ROOT / "instructor" / "project" / "responder.py"


def free_base(count: int, tries: int = 50) -> int:
    """A base port with `count` consecutive free ports after it (and one for Prometheus)."""
    from handbook.fleet.daemon import port_free

    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 60000)
        if all(port_free(base + i) for i in range(count + 1)):
            return base
    raise FleetError(f"no {count + 1} consecutive free ports found on 127.0.0.1")


def prometheus_config(folder: Path, control_port: int, scrape_s: float, rule_files: list[Path],
                      factor: float) -> Path:
    """The project's prometheus.yml for this run, with its rule files compressed by `factor`."""
    text = (PROJECT / "prometheus.yml").read_text()
    names = []
    for path in rule_files:
        out = folder / path.name
        out.write_text(rules.compress(path, factor) if factor != 1 else path.read_text())
        names.append(path.name)
    text = re.sub(r"(scrape_interval|evaluation_interval): \S+", lambda m: f"{m[1]}: {scrape_s:g}s", text)
    text = text.replace("127.0.0.1:9500", f"127.0.0.1:{control_port}")
    text = re.sub(r"rule_files:\n(?:  - .*\n)+", "rule_files:\n" + "".join(f"  - {n}\n" for n in names), text)
    config = folder / "prometheus.yml"
    config.write_text(text)
    return config


def query(url: str, promql: str) -> list:
    from urllib.parse import quote

    return json.loads(urllib.request.urlopen(f"{url}/api/v1/query?query={quote(promql)}", timeout=10).read())[
        "data"]["result"]


def scrape_counts(url: str, seconds: float) -> dict:
    """{instance: {"node": ..., "up": successful scrapes, "scrapes": scrapes}} over the last `seconds`."""
    window = f"{max(1, int(seconds) + 1)}s"
    out = {}
    for kind, promql in (("up", f"sum_over_time(up[{window}])"), ("scrapes", f"count_over_time(up[{window}])")):
        for row in query(url, promql):
            entry = out.setdefault(row["metric"]["instance"], {"node": row["metric"].get("node", ""),
                                                               "job": row["metric"].get("job", "")})
            entry[kind] = int(float(row["value"][1]))
    return out


def wait_for(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def run(folder: Path, timeline_name: str = "ci", responder: str | None = "decision-table",
        scrape_s: float = 1.0, rule_files: list[Path] | None = None, prometheus: str | None = None,
        nodes: int | None = None, duration_s: float | None = None, extra_wait_s: float = 20.0) -> dict:
    """Play a game day to its end. Returns {"events": path, "prometheus": url, "cpu": {...}, "wall_s": ...}."""
    prometheus = prometheus or shutil.which("prometheus")
    if not prometheus:
        raise FleetError("prometheus is not installed (Debian/Ubuntu: apt install prometheus)")
    game = timeline.load(timeline_name)
    if nodes is not None or duration_s is not None:
        data = game.to_dict()
        data.update({k: v for k, v in (("nodes", nodes), ("duration_s", duration_s)) if v is not None})
        data["incidents"] = [i for i in data["incidents"] if i["node"] < data["nodes"] and i["at"] < data["duration_s"]]
        game = timeline.Game.from_dict(data)
    folder.mkdir(parents=True, exist_ok=True)
    base = free_base(game.nodes + 1)
    game_file = folder / "game.json"
    timeline.write_game(game, game_file)
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    fleet = subprocess.Popen([sys.executable, "-m", "handbook.fleet", "start", "--game", str(game_file), "--dir",
                              str(folder / "fleet-run"), "--base-port", str(base), "--interval", f"{scrape_s:g}"],
                             cwd=folder, env=env, stdout=open(folder / "fleet.log", "w"), stderr=subprocess.STDOUT)
    procs = [fleet]
    if not wait_for(f"http://127.0.0.1:{base}/status", time.monotonic() + 30):  # its target files exist then
        fleet.kill()
        raise FleetError(f"the fleet did not come up: see {folder}/fleet.log")
    factor = 1 / game.time_scale
    config = prometheus_config(folder, base, scrape_s, rule_files or [LAB1_RULES, FLEET_RULES, REFERENCE_RULES], factor)
    prom_port = base + game.nodes + 1
    prom = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            cwd=folder, stdout=open(folder / "prometheus.log", "w"), stderr=subprocess.STDOUT)
    procs.append(prom)
    url = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 30
        if not wait_for(f"{url}/-/ready", deadline):
            raise FleetError(f"Prometheus did not come up: see {folder}/prometheus.log")
        if responder:
            procs.append(subprocess.Popen([sys.executable, str(RESPONDER), "--prometheus", url, "--fleet",
                                           str(folder / "fleet-run"), "--policy", responder, "--poll", "0.5",
                                           "--settle", f"{max(0.5, 40 * game.time_scale):g}"],
                                          cwd=folder, env=env, stdout=open(folder / "responder.log", "w"),
                                          stderr=subprocess.STDOUT))
        limit = time.monotonic() + game.duration_s + extra_wait_s
        while fleet.poll() is None and time.monotonic() < limit:
            time.sleep(0.5)
        if fleet.poll() is None:
            raise FleetError(f"the fleet did not end its game in time: see {folder}/fleet.log")
        targets = json.loads(urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5).read())["data"]
        scrapes = scrape_counts(url, time.monotonic() - started)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {"events": folder / "fleet-run" / journal.EVENTS, "game": game, "wall_s": time.monotonic() - started,
            "targets": targets, "scrapes": scrapes, "prometheus": url}


def main(argv=None) -> int:
    from handbook.fleet.grade import grade_log, summary

    parser = argparse.ArgumentParser(prog="python -m handbook.fleet.harness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeline", default="ci")
    parser.add_argument("--responder", choices=["decision-table", "drain-on-alert", "none"], default="decision-table")
    parser.add_argument("--dir", type=Path, default=Path("fleet-harness"))
    parser.add_argument("--scrape", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        out = run(args.dir, args.timeline, None if args.responder == "none" else args.responder, args.scrape)
        print(summary(grade_log(out["events"])))
    except FleetError as err:
        print(f"fleet: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
