#!/usr/bin/env python3
"""The project's reference responder: docs/troubleshooting/decision.md automated, driven by Prometheus's alerts.

    python responder.py --prometheus http://127.0.0.1:9090 --fleet fleet-run            # the reference
    python responder.py --policy drain-on-alert ...                                     # the trigger-happy baseline

Every --poll seconds it reads the firing alerts (GET /api/v1/alerts), groups them by node and GPU, and gives each
group the most drastic action its alerts call for ("when two rows apply, the more drastic one wins"):

    drain (+ replace-node)  Xid 79 or a lost GPU, a failed row remap (Xid 64), HW thermal slowdown that slows the
                            GPU, HW slowdown or power brake, an exporter that stopped answering (the host is down)
    reset-gpu               uncorrectable ECC with a remap pending, Xid 48, 74, 95, 119, 120
    restart-job             the application's Xids (13, 31, 43), a contained ECC error (94), a stalled job

then restarts the job once nothing is being reset and every group is handled, and, after a replacement, once
right after a checkpoint when the rest of the game is worth a restart. It acts through the fleet's control API
(what `python -m handbook.fleet drain ...` posts), as actor "reference" (or the policy's name).

The baseline policy drains and replaces every node any alert names, and restarts the job whenever it is down:
the checks prove it scores below the pass mark, as doing nothing does.
"""
import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

DRAIN, RESET, RESTART = 3, 2, 1
HARDWARE_XIDS = {48: RESET, 63: RESET, 64: DRAIN, 74: RESET, 79: DRAIN, 94: RESTART, 95: RESET, 119: RESET,
                 120: RESET}


def get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


class Fleet:
    def __init__(self, folder: Path, actor: str):
        state = json.loads((folder / "state.json").read_text())
        self.url = f"http://127.0.0.1:{state['control_port']}"
        self.actor = actor

    def status(self) -> dict:
        return get(self.url + "/status")

    def act(self, action: str, node: str | None = None, gpu: int | None = None) -> dict:
        body = {"action": action, "actor": self.actor}
        if node is not None:
            body["node"] = node
        if gpu is not None:
            body["gpu"] = gpu
        request = urllib.request.Request(self.url + "/control", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as err:
            answer = json.loads(err.read())
        print(f"{time.strftime('%H:%M:%S')} {action} {node or ''} {'' if gpu is None else gpu}: "
              f"{answer.get('message') or answer.get('error')}", flush=True)
        return answer


def severity(alert: dict, prometheus: str) -> int:
    """What one alert calls for (0: nothing)."""
    labels = alert["labels"]
    name = labels["alertname"]
    if name in ("GpuLost", "GpuRowRemapFailed", "GpuHardwareSlowdown", "GpuExporterDown"):
        return DRAIN
    if name == "GpuThermalSlowdown":  # drain only when the GPU is slowed (HW slowdown), not at SW slowdown
        query = (f'gpu_sm_clock_hertz{{node="{labels.get("node", "")}",gpu="{labels.get("gpu", "")}"}}'
                 f' / gpu_sm_clock_max_hertz < 0.9')
        found = get(f"{prometheus}/api/v1/query?query={urllib.request.quote(query)}")["data"]["result"]
        return DRAIN if found else 0
    if name in ("GpuUncorrectableEccErrors", "GpuRowRemapPending"):
        return RESET
    if name == "GpuXidError":
        return HARDWARE_XIDS.get(int(labels.get("xid", "0")), 0)
    if name in ("GpuXidApplicationError", "TrainingJobStalled", "GpuHungCollective"):
        return RESTART
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--fleet", type=Path, default=Path("fleet-run"), help="the fleet's folder")
    parser.add_argument("--policy", choices=["decision-table", "drain-on-alert"], default="decision-table")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the alerts")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds a new group of alerts is left to "
                        "gather (its other alerts arrive within a scrape or two) before acting")
    args = parser.parse_args()
    fleet = Fleet(args.fleet, "reference" if args.policy == "decision-table" else args.policy)
    handled: dict = {}  # (node, gpu) -> the most drastic action taken for that group
    first_seen: dict = {}
    grow = False
    last_checkpoint_step = None
    last_try = 0.0
    while True:
        try:
            status = fleet.status()
        except OSError:
            return 0  # the fleet stopped: the game day is over
        if status.get("ended"):
            return 0
        try:
            alerts = [a for a in get(f"{args.prometheus}/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]
        except OSError as err:
            print(f"prometheus: {err}", file=sys.stderr)
            alerts = []
        now = time.monotonic()
        nodes = {n["node"]: n for n in status["nodes"]}
        groups: dict = {}
        for alert in alerts:
            node = alert["labels"].get("node") or ""
            if node and nodes.get(node, {}).get("state") in ("drained", "replacing"):
                continue  # that node is out already
            gpu = alert["labels"].get("gpu")
            key = (node, None if gpu is None or node == "" else int(gpu))
            if args.policy == "drain-on-alert":
                level = DRAIN if node else RESTART
            else:
                level = severity(alert, args.prometheus)
            groups[key] = max(groups.get(key, 0), level)
            first_seen.setdefault(key, now)
        busy = False
        for (node, gpu), level in sorted(groups.items(), key=lambda g: -g[1]):
            if level <= handled.get((node, gpu), 0) or now - first_seen[(node, gpu)] < args.settle:
                busy = busy or now - first_seen[(node, gpu)] < args.settle
                continue
            if level == DRAIN and node:
                fleet.act("drain", node)
                fleet.act("replace-node", node)
                handled[(node, gpu)] = DRAIN
            elif level == RESET and node and gpu is not None:
                if fleet.act("reset-gpu", node, gpu).get("result") == "refused" and status["job"]["state"] != "failed":
                    continue  # in use: wait for the job to fail (it does, on these faults) and try again
                handled[(node, gpu)] = RESET
            elif level == RESTART:
                handled[(node, gpu)] = RESTART
                fleet.act("restart-job")
        for key in list(handled):  # a group whose alerts are gone may raise again later
            if key not in groups:
                handled.pop(key)
                first_seen.pop(key, None)
        status = fleet.status()
        resetting = any(n["resetting"] for n in status["nodes"])
        job = status["job"]
        failed_for = status["t"] - job["since"] if job["state"] == "failed" else 0
        if failed_for > 2 * args.settle and not resetting and not busy and now - last_try > 5 * args.poll:
            last_try = now  # its alerts had time to arrive; a refused restart is tried again a little later
            fleet.act("restart-job")
        if any(n["back_at"] is not None for n in status["nodes"]):
            grow = True
        if args.policy == "decision-table" and grow and job["state"] == "running":
            ready = [n for n in status["nodes"] if n["state"] == "ready" and n["ready"]]
            left = status["duration_s"] - status["t"]
            worth = status["costs"]["restart_job_s"] * (len(job["world"]) + 1)  # idle GPUs now, a node gained
            if len(ready) > len(job["world"]) and job["last_checkpoint_step"] != last_checkpoint_step \
                    and last_checkpoint_step is not None and left > worth:
                grow = False
                fleet.act("restart-job")  # right after a checkpoint: the job runs on every node again
            last_checkpoint_step = job["last_checkpoint_step"]
        time.sleep(args.poll)


if __name__ == "__main__":
    sys.exit(main())
