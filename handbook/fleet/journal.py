"""The fleet's files: the append-only event log (the truth), the state snapshot, and reading them back.

    fleet-run/events.jsonl   one JSON object per line: the game (first line), then every event as it happened
    fleet-run/state.json     what `status` and the control CLI read: ports, the daemon's pid, the scheduler's view
    fleet-run/nodes/*.toml   each node's GPUs as a GPU-simulator scenario (nodes.py)
    fleet-run/targets/*.json Prometheus file_sd target lists: the node exporters and the job's metrics
    fleet-run/logs/*.log     each exporter's output

Every event is written and flushed to the disk before the next is made, and state.json is replaced atomically
after every batch of events, so a crash loses neither; the state can always be rebuilt by replaying the log.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from handbook.fleet import FleetError
from handbook.fleet.engine import ACTIONS, Engine, replay
from handbook.fleet.timeline import Game

EVENTS, STATE = "events.jsonl", "state.json"
FORMAT = "handbook-fleet-events/1"
ENGINE_TYPES = {"job", "checkpoint", "fault", "incident_void", "action", "node", "gpu", "resolved", "spare", "game_over"}


class Journal:
    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / EVENTS
        self._file = None

    def open(self):
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, event: dict):
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        if self._file:
            self._file.close()
            self._file = None


def read_events(path: Path) -> list[dict]:
    """The event log; a torn last line (the writer died mid-line) is dropped, anything else damaged is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FleetError(f"{path}: no event log here (is this a fleet folder? start one with "
                         "`python -m handbook.fleet start`)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise FleetError(f"{path}: cannot read the event log ({err})") from None
    lines = text.split("\n")
    torn = not text.endswith("\n")  # the last line was being written when the writer died
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict) or "type" not in event or "t" not in event:
                raise ValueError("not an event object")
        except ValueError as err:
            if torn and number == len(lines):
                break
            raise FleetError(f"{path}:{number}: not a valid event ({err}): the log is damaged there; "
                             "remove or repair that line") from None
        events.append(event)
    if not events or events[0]["type"] != "fleet_started":
        raise FleetError(f"{path}:1: the first event must be fleet_started (the game): not a fleet event log")
    return events


def game_of(events: list[dict], where: str) -> Game:
    return Game.from_dict(events[0]["game"], where)


def actions_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "action" and e.get("action") in ACTIONS]


def rebuild(events: list[dict], where: str) -> Engine:
    """Replay a log: the engine at the log's last event. Raises FleetError if the replay disagrees with the log
    (an edited log, or one from another version of the engine)."""
    game = game_of(events, where)
    last = max(e["t"] for e in events)
    engine = replay(game, actions_of(events), until=last)
    logged = [e for e in events if e["type"] in ENGINE_TYPES]
    mine = [e for e in engine.events if e["t"] <= last]
    for number, (a, b) in enumerate(zip(logged, mine), 1):
        if not same(a, b):
            raise FleetError(f"{where}: event {number} of the log ({a['type']} at {a['t']} s) is not what the fleet "
                             f"does with these actions ({b['type']} at {b['t']} s): the log was edited or comes "
                             "from another version")
    if len(mine) < len(logged):
        raise FleetError(f"{where}: the log has {len(logged) - len(mine)} event(s) the replay does not make")
    return engine


def same(a, b) -> bool:
    """Equal events, numbers to within what the live fleet's many small steps of the clock add up to."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 0.01 + 1e-6 * abs(a)
    return a == b


def replay_full(events: list[dict], where: str) -> Engine:
    """The log's game played to its end with the log's actions (a fleet stopped early: nothing more was done)."""
    return replay(game_of(events, where), actions_of(events))


def write_state(folder: Path, state: dict) -> None:
    path = folder / STATE
    tmp = path.with_name(STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_state(folder: Path) -> dict:
    path = folder / STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict) or "control_port" not in state:
            raise ValueError("it has no control_port")
        return state
    except FileNotFoundError:
        raise FleetError(f"{folder}: no fleet here (no {STATE}): start one with `python -m handbook.fleet start "
                         f"--dir {folder}`") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise FleetError(f"{path}: corrupt state file ({err}); nothing is lost: `python -m handbook.fleet start "
                         f"--dir {folder}` rebuilds it from {EVENTS}") from None
