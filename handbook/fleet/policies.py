"""Game days played in virtual time by a scripted operator: the figures of the project page and the grader's
yardsticks come from these runs, which take milliseconds and repeat exactly.

    do-nothing       watches and never acts
    drain-on-alert   drains and replaces every node an alert names, then restarts the job (trigger-happy)
    decision-table   acts as docs/troubleshooting/decision.md says for each fault, once it is detected

An operator here sees a fault `detect_s` after it starts (120 s on a game day, scaled by the timeline's
time_scale): about what Lab 1's rules take (a `for:` of one or two minutes). The live fleet checks that real
alerts come about that fast.
"""
from __future__ import annotations

from handbook.fleet import FleetError
from handbook.fleet.engine import ACTIVE, Engine
from handbook.fleet.faults import KINDS
from handbook.fleet.timeline import Game

DETECT_S = 120.0
RETRY_S = 30.0


def alerted_nodes(engine: Engine, fault: dict) -> list[str]:
    """The nodes whose alerts a fault raises: its own, or every node of the job for a hung collective."""
    if fault["kind"] == "hang":
        return [engine.nodes[n].name for n in engine.job["world"]]
    return [fault["node"]]


class Operator:
    def __init__(self, game: Game, detect_s: float):
        self.game, self.delay = game, detect_s

    def observe(self, event: dict, engine: Engine) -> list[tuple]:
        return []


class DrainOnAlert(Operator):
    def observe(self, event, engine):
        t, due = event["t"], event["t"] + self.delay
        if event["type"] == "fault":
            plan = []
            for node in alerted_nodes(engine, event):
                plan += [(due, "drain", node, None), (due, "replace-node", node, None)]
            return plan + [(due, "restart-job", None, None)]
        if event["type"] == "job" and event["state"] == "failed":
            return [(due, "restart-job", None, None)]
        if event["type"] == "node" and event.get("reason", "").startswith("replaced"):
            return [(t, "restart-job", None, None)] if engine.job["state"] not in ACTIVE else []
        if event["type"] == "action" and event["action"] == "restart-job" and event["result"] == "refused" \
                and "already" not in event["message"]:
            return [(t + RETRY_S * self.game.time_scale, "restart-job", None, None)]
        return []


class DecisionTable(Operator):
    def observe(self, event, engine):
        t, due = event["t"], event["t"] + self.delay
        kind = KINDS.get(event.get("kind", ""))
        if event["type"] == "fault":
            node, gpu = event["node"], event.get("gpu")
            if kind.cleared_by == "restart":
                return [(due, "restart-job", None, None)]
            if kind.cleared_by == "reset":
                return [(due, "reset-gpu", node, gpu)]  # the restart follows when the GPU is back
            return [(due, "drain", node, None), (due, "restart-job", None, None), (due, "replace-node", node, None)]
        if event["type"] == "gpu" and event["state"] == "ready" and engine.job["state"] not in ACTIVE:
            return [(t, "restart-job", None, None)]
        if event["type"] == "node" and event.get("reason", "").startswith("replaced"):
            if engine.job["state"] not in ACTIVE:
                return [(t, "restart-job", None, None)]
            self.grow = True  # restart on every node again, right after the next checkpoint (nothing lost)
        if event["type"] == "checkpoint" and getattr(self, "grow", False):
            self.grow = False
            world = len(engine.job["world"])  # a restart idles the job's GPUs; the job gains a node's for the rest
            if world < self.game.nodes and self.game.duration_s - t > self.game.restart_job_s * (world + 1):
                return [(t, "restart-job", None, None)]
        if event["type"] == "action" and event["action"] == "restart-job" and event["result"] == "refused" \
                and "is being reset" not in event["message"] and "already" not in event["message"]:
            return [(t + RETRY_S * self.game.time_scale, "restart-job", None, None)]
        return []


POLICIES = {"do-nothing": Operator, "drain-on-alert": DrainOnAlert, "decision-table": DecisionTable}


def play(game: Game, policy: str, detect_s: float | None = None) -> Engine:
    if policy not in POLICIES:
        raise FleetError(f"unknown policy {policy!r}: use one of {', '.join(POLICIES)}")
    operator = POLICIES[policy](game, DETECT_S * game.time_scale if detect_s is None else detect_s)
    engine = Engine(game)
    plan: list = []
    seen, order = 0, 0
    while not engine.ended:
        for event in engine.events[seen:]:
            for t, action, node, gpu in operator.observe(event, engine):
                order += 1
                plan.append((round(t, 3), order, action, node, gpu))
        seen = len(engine.events)
        nxt = engine._next()
        when = min([p[0] for p in plan] + ([nxt[0]] if nxt else []))
        due = sorted(p for p in plan if p[0] <= when)
        if not due:
            engine.advance(when)
            continue
        plan = [p for p in plan if p[0] > when]
        for t, _, action, node, gpu in due:
            try:
                engine.act(t, action, node, gpu, actor=policy)
            except FleetError:
                pass  # the game ended
    return engine


def simulate(game: Game, policy: str, detect_s: float | None = None) -> list[dict]:
    """The event log of `game` played by `policy`, as the live fleet writes it (without alerts)."""
    engine = play(game, policy, detect_s)
    started = {"t": 0.0, "type": "fleet_started", "format": "handbook-fleet-events/1", "version": 1, "epoch": 0.0,
               "ports": {}, "interval": 0, "game": game.to_dict(), "digest": game.digest(), "policy": policy}
    return [started] + engine.events
