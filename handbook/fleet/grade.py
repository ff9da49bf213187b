"""Score a game day from its event log, against the key (instructor/project/key.toml).

Per incident: the time to detect it (the first alert or action that names it), the action taken against the key
(the fix, a more drastic action than needed, or a wrong one, which costs points), and the GPU-hours it cost. For
the day: the job's goodput, scored between what doing nothing and what the decision table would have kept on the
same timeline, and a penalty for every drain, reset or replacement that no open incident called for.

The log is replayed through the engine first (journal.rebuild): a log edited by hand, or one whose game is not
the learner's, is refused with one line saying so.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from handbook import ROOT
from handbook.fleet import FleetError, journal, policies, timeline
from handbook.fleet.engine import Engine
from handbook.fleet.faults import KINDS

KEY = ROOT / "instructor" / "project" / "key.toml"
GAMEDAY = ROOT / "instructor" / "project" / "gameday.toml"
CLASSES = ("fix", "drastic", "wrong")
TARGETED = ("cordon", "uncordon", "drain", "reset-gpu", "replace-node")
COSTLY = ("drain", "reset-gpu", "replace-node")


def load_key(path: Path | None = None) -> dict:
    path = path or KEY
    try:
        key = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetError(f"{path}: no key here (the key is instructors' material: instructor/project/key.toml)") from None
    except tomllib.TOMLDecodeError as err:
        raise FleetError(f"{path}: not valid TOML: {err}") from None
    for section in ("points", "detect", "penalties", "classes"):
        if not isinstance(key.get(section), dict):
            raise FleetError(f"{path}: the key needs a [{section}] table")
    if sum(key["points"].values()) != 100:
        raise FleetError(f"{path}: [points] must add up to 100, not {sum(key['points'].values())}")
    for kind, classes in key["classes"].items():
        if kind not in KINDS:
            raise FleetError(f"{path}: [classes.{kind}]: no such fault kind (known: {', '.join(KINDS)})")
        for action, cls in classes.items():
            if cls not in CLASSES:
                raise FleetError(f"{path}: [classes.{kind}] {action} = {cls!r}: use one of {', '.join(CLASSES)}")
    missing = [k for k in KINDS if k not in key["classes"]]
    if missing:
        raise FleetError(f"{path}: no [classes.{missing[0]}]: the key must class the actions of every fault kind")
    return key


def loss_segments(events: list[dict], game) -> tuple[list, list]:
    """([(start, end, GPU-seconds lost per second)], [(time, GPU-seconds lost at once)]) from the job events:
    the fleet's GPUs not doing kept work, and the work a crash threw away."""
    full = game.nodes * game.gpus_per_node
    segments, drops = [], []
    rate, since = 0.0, 0.0
    for e in events:
        if e["type"] in ("job", "game_over"):
            if e["t"] > since:
                segments.append((since, e["t"], full - rate))
            since = e["t"]
            if e["type"] == "job":
                rate = e["rate"]
                if e.get("lost"):
                    drops.append((e["t"], e["lost"]))
    return segments, drops


def attribute(engine: Engine, events: list[dict]) -> dict:
    """GPU-hours lost per incident: each loss goes to the incidents whose impact window covers it (from the fault
    until the job next runs on the whole fleet at full speed after the incident is over), split equally; what
    no window covers is the operator's own ("none")."""
    game = engine.game
    full = game.nodes * game.gpus_per_node
    back = [e["t"] for e in events if e["type"] == "job" and e["state"] == "running" and e["rate"] >= full - 1e-9]
    windows = {}
    for o in engine.incidents.values():
        if not o.fired or o.void:
            continue
        over = o.resolved_at if o.resolved_at is not None else game.duration_s
        end = next((t for t in back if t >= over), game.duration_s)
        windows[o.incident.id] = (o.fired_at, end)
    lost = {i: 0.0 for i in windows} | {"none": 0.0}
    segments, drops = loss_segments(events, game)
    for a, b, rate in segments:
        cuts = sorted({a, b} | {x for w in windows.values() for x in w if a < x < b})
        for lo, hi in zip(cuts, cuts[1:]):
            owners = [i for i, (s, e) in windows.items() if s <= lo and hi <= e]
            for owner in owners or ["none"]:
                lost[owner] += rate * (hi - lo) / max(len(owners), 1)
    for t, amount in drops:
        owners = [i for i, (s, e) in windows.items() if s <= t <= e]
        for owner in owners or ["none"]:
            lost[owner] += amount / max(len(owners), 1)
    return {i: round(v / 3600, 4) for i, v in lost.items()}


def _names(o, item: dict, engine: Engine, busy) -> bool:
    """Does an alert or action name this incident? busy(t) is the set of nodes where a GPU or node incident is
    open at time t: an alert or action there is about that incident, not about a job-wide one."""
    kind = KINDS[o.incident.kind]
    node = engine.nodes[o.node].name
    if item["type"] == "action":
        if kind.scope == "job":
            return item["action"] == "restart-job"
        if item.get("node") != node:
            return False
        return kind.scope == "node" or item.get("gpu") is None or item.get("gpu") == o.gpu
    if kind.scope == "job":  # the job's own alerts, or any GPU alert not about another incident's node
        return not item.get("node") or item["node"] not in busy(item["t"], o)
    if item.get("node") != node:
        return False
    return kind.scope == "node" or item.get("gpu") is None or o.gpu is None or item.get("gpu") == o.gpu


def grade_events(events: list[dict], key: dict, where: str = "events.jsonl", learner: str | None = None,
                 check_game=None) -> dict:
    game = journal.game_of(events, where)
    if check_game is not None and check_game.digest() != game.digest():
        raise FleetError(f"{where}: this is not {learner}'s game day (its timeline differs from the one drawn "
                         "from the course secret for them)")
    journal.rebuild(events, where)  # refuses an edited log
    engine = journal.replay_full(events, where)
    scale = game.time_scale
    full_s, zero_s = key["detect"]["full_s"] * scale, key["detect"]["zero_s"] * scale
    alerts = [e for e in events if e["type"] == "alert" and e.get("state") == "firing"]
    actions = [e for e in engine.events if e["type"] == "action" and e["result"] in ("done", "failed")]
    incidents = [o for o in engine.incidents.values() if o.fired and not o.void]
    ends = {o.incident.id: (o.resolved_at if o.resolved_at is not None else game.duration_s) for o in incidents}
    lost = attribute(engine, engine.events)
    attributed: set = set()
    rows = {}
    def busy(t: float, o) -> set:
        return {engine.nodes[p.node].name for p in incidents if p is not o and KINDS[p.incident.kind].scope != "job"
                and p.fired_at <= t <= ends[p.incident.id]}

    for o in incidents:
        start = o.fired_at
        named = sorted((item["t"], item.get("name") or item["action"]) for item in alerts + actions
                       if item["t"] >= start - 1e-6 and _names(o, item, engine, busy))
        detected = named[0][0] - start if named else None
        if detected is None:
            detect_credit = 0.0
        elif detected <= full_s:
            detect_credit = 1.0
        else:
            detect_credit = max(0.0, (zero_s - detected) / (zero_s - full_s))
        classes = key["classes"][o.incident.kind]
        credit, wrong, taken = 0.0, [], []
        node = engine.nodes[o.node].name
        for i, a in enumerate(actions):
            if not start - 1e-6 <= a["t"] <= ends[o.incident.id] + 1e-6:
                continue
            if KINDS[o.incident.kind].scope == "job":
                mine = a["action"] == "restart-job" or (a["action"] in COSTLY and a.get("node") not in busy(a["t"], o))
            else:
                mine = a.get("node") == node and (a["action"] != "reset-gpu" or a.get("gpu") == o.gpu
                                                  or KINDS[o.incident.kind].scope == "node")
            if not mine:
                continue
            cls = classes.get(a["action"])
            if a["action"] in COSTLY:
                attributed.add(i)
            taken.append(f"{a['action']}{' ' + a['node'] if a.get('node') else ''}"
                         f"{' ' + str(a['gpu']) if a.get('gpu') is not None else ''} ({cls or 'neutral'})")
            if cls == "fix":
                credit = max(credit, 1.0)
            elif cls == "drastic":
                credit = max(credit, key["penalties"].get("drastic_credit", 0.5))
            elif cls == "wrong":
                wrong.append(a["action"])
        rows[o.incident.id] = {
            "kind": o.incident.kind, "cause": o.incident.cause, "summary": KINDS[o.incident.kind].summary,
            "node": node, "gpu": o.gpu, "start_s": start,
            "detected_after_s": None if detected is None else round(detected, 1),
            "detected_by": named[0][1] if named else None, "detect_credit": round(detect_credit, 3),
            "actions": taken, "remedy_credit": credit, "wrong_actions": len(wrong),
            "resolved_after_s": None if o.resolved_at is None else round(o.resolved_at - start, 1),
            "gpu_hours_lost": lost.get(o.incident.id, 0.0),
        }
    unwarranted = [f"{a['action']} {a.get('node', '')}{' GPU ' + str(a['gpu']) if a.get('gpu') is not None else ''}"
                   f" at {a['t']:.0f} s" for i, a in enumerate(actions) if a["action"] in COSTLY and i not in attributed]
    goodput = engine.work / engine.capacity
    floor = policies.play(game, "do-nothing").work / engine.capacity
    table = policies.play(game, "decision-table", detect_s=full_s).work / engine.capacity
    goodput_credit = 1.0 if table - floor < 1e-9 else min(1.0, max(0.0, (goodput - floor) / (table - floor)))
    points = key["points"]
    n = len(rows)
    parts = {
        "detect": {"points": points["detect"] * (sum(r["detect_credit"] for r in rows.values()) / n if n else 1.0),
                   "of": points["detect"]},
        "remedy": {"points": points["remedy"] * (sum(r["remedy_credit"] for r in rows.values()) / n if n else 1.0),
                   "of": points["remedy"]},
        "goodput": {"points": points["goodput"] * goodput_credit, "of": points["goodput"]},
    }
    wrong_incidents = sum(1 for r in rows.values() if r["wrong_actions"])
    penalty = key["penalties"]["wrong"] * wrong_incidents + key["penalties"]["unwarranted"] * len(unwarranted)
    total = max(0.0, sum(p["points"] for p in parts.values()) - penalty)
    for p in parts.values():
        p["points"] = round(p["points"], 2)
    return {
        "project": key.get("title", "fleet game day"), "file": where, "learner": learner or game.learner or "",
        "game": game.name, "digest": game.digest(), "points": round(total, 2), "of": 100,
        "percent": round(total, 1), "pass_mark": key["pass_mark"], "passed": total >= key["pass_mark"],
        "parts": {**parts, "penalties": {"points": -round(penalty, 2), "wrong": wrong_incidents,
                                         "unwarranted": len(unwarranted)}},
        "job": {"goodput": round(goodput, 4), "gpu_hours_lost": round((engine.capacity - engine.work) / 3600, 3),
                "goodput_do_nothing": round(floor, 4), "goodput_decision_table": round(table, 4),
                "gpu_hours_lost_to_no_incident": lost["none"]},
        "incidents": rows, "unwarranted_actions": unwarranted,
    }


def grade_log(path: Path, key_path: Path | None = None, learner: str | None = None) -> dict:
    key = load_key(key_path)
    events = journal.read_events(path)
    expected = None
    if learner:
        game = journal.game_of(events, str(path))
        expected = timeline.for_learner(str(GAMEDAY) if game.learner else game.name, learner)
    return grade_events(events, key, str(path), learner, expected)


def summary(graded: dict) -> str:
    lines = [f"{graded['file']}: {graded['learner'] or '(no learner)'}: {graded['percent']:g} % "
             f"({graded['points']:g}/{graded['of']} points): {'PASS' if graded['passed'] else 'FAIL'} "
             f"(pass mark {graded['pass_mark']:g} %)",
             f"  goodput {graded['job']['goodput']:.1%} (doing nothing: {graded['job']['goodput_do_nothing']:.1%}, "
             f"the decision table: {graded['job']['goodput_decision_table']:.1%}), "
             f"{graded['job']['gpu_hours_lost']:.2f} GPU-hours lost"]
    for part, p in graded["parts"].items():
        if part == "penalties":
            lines.append(f"  penalties {p['points']:g} ({p['wrong']} incident(s) with a wrong action, "
                         f"{p['unwarranted']} unwarranted action(s))")
        else:
            lines.append(f"  {part:<9} {p['points']:g}/{p['of']}")
    for iid, r in graded["incidents"].items():
        detected = "never detected" if r["detected_after_s"] is None else \
            f"detected after {r['detected_after_s']:g} s by {r['detected_by']}"
        where = "the whole job" if r["kind"] == "hang" else r["node"] + ("" if r["gpu"] is None else f" GPU {r['gpu']}")
        lines.append(f"  {iid} {r['kind']} on {where} at {r['start_s']:g} s: {detected}; remedy credit "
                     f"{r['remedy_credit']:g}, {r['wrong_actions']} wrong; {r['gpu_hours_lost']:.2f} GPU-hours lost")
    for u in graded["unwarranted_actions"]:
        lines.append(f"  unwarranted: {u}")
    return "\n".join(lines)


def results(graded: dict, out: Path) -> None:
    """The results file, in the quiz's result shape (handbook/course/quiz/grade.py): learner, points, of, percent,
    pass_mark, passed, per-part breakdown. The one place that decides the file's shape."""
    data = {
        "quiz": graded["project"], "file": graded["file"], "learner": graded["learner"], "points": graded["points"],
        "of": graded["of"], "percent": graded["percent"], "pass_mark": graded["pass_mark"], "passed": graded["passed"],
        "objectives": {name: {"objective": name, "points": p["points"], "of": p.get("of", 0),
                              "percent": round(100 * p["points"] / p["of"], 1) if p.get("of") else 0.0}
                       for name, p in graded["parts"].items()},
        "questions": {iid: {"objective": "incidents", "points": round(r["detect_credit"] + r["remedy_credit"], 3),
                            "of": 2, "correct": r["remedy_credit"] == 1.0, "answered": bool(r["actions"]), **r}
                      for iid, r in graded["incidents"].items()},
        "game": {"name": graded["game"], "digest": graded["digest"]}, "job": graded["job"],
        "unwarranted_actions": graded["unwarranted_actions"],
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        tmp.replace(out)
    except OSError as err:
        raise FleetError(f"{out}: cannot write the results ({err.strerror})") from None
