"""Incident drills: a hidden fault scenario, diagnosed with the runbooks and 01_gpu_health.py, graded by its key.

    python -m handbook.drills list                          # drill ids, runbooks and what the pager said
    python -m handbook.drills start ID | --random           # prints a session TOKEN and the commands to run
    python -m handbook.drills run TOKEN -- python 01_gpu_health.py      # any command, against the hidden scenario
    python -m handbook.drills run TOKEN -- nvidia-smi -q                # nvidia-smi and dmesg play it too
    python -m handbook.drills answer TOKEN --verdict VERDICT --action ACTION    # graded; exit 0 if right

For graders (the assessment's scenario items cite drill ids): `grade(drill_id, verdict, action) -> (ok, feedback)`.
VERDICTS and ACTIONS are the vocabularies. The key is handbook/drills/drills.toml, outside docs/ and snippets/.
A session is a copy of the drill's scenario under an opaque name, in $HANDBOOK_DRILLS_DIR (default
~/.cache/handbook-drills): the simulator's banner names the copy, not the scenario.
"""
import argparse
import json
import os
import re
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import gpusim
from .gpusim import split_command
from .gpusim import nvidia_smi

KEY = Path(__file__).resolve().parent / "drills" / "drills.toml"
VERDICTS = {
    "healthy": "nothing is wrong",
    "oom": "the application ran out of GPU memory (or fragmented it)",
    "driver-mismatch": "driver/library version mismatch after an upgrade",
    "driver-not-loaded": "the kernel module is not loaded",
    "nvml-lost-in-container": "a container lost its GPU device nodes (NVML Unknown Error)",
    "thermal-throttle": "thermal slowdown: cooling",
    "power-brake": "HW slowdown / power brake: power delivery",
    "app-clocks": "clocks locked by application-clock settings",
    "power-cap": "a lowered power limit",
    "xid-application": "application-class Xid (13/31/43)",
    "ecc-uncorrectable": "uncorrectable ECC errors",
    "remap-pending": "a row remap pending",
    "remap-failed": "row remapping failed",
    "fell-off-bus": "a GPU fell off the bus",
    "hung-collective": "a hung collective",
    "stuck-memory": "GPU memory held by a process that no longer exists",
    "straggler": "one slow rank holds the job back",
    "pcie-downtrained": "a degraded PCIe link",
    "nvlink-down": "an NVLink link is down",
    "driver-vulnerable": "the driver lacks a fix from a published NVIDIA security bulletin",
}
ACTIONS = {
    "none": "do nothing to the node",
    "restart-app": "restart the application",
    "fix-app": "change the application or its configuration, then restart it",
    "restart-container": "restart the container",
    "fix-node-config": "restore the node's GPU settings",
    "reset-gpu": "drain the GPU, capture evidence, reset it",
    "drain-node": "drain the node, capture evidence, repair or RMA",
    "patch-node": "cordon and drain the node, upgrade the vulnerable component, verify, uncordon",
}
ID = re.compile(r"^drill-[a-z0-9-]+$")


class DrillError(ValueError):
    """A drill, token or answer that cannot be used; str() is one line saying what to fix."""


@dataclass(frozen=True)
class Drill:
    id: str
    runbook: str
    scenario: str
    page: str
    verdict: tuple
    action: tuple
    why: str


def load(path: Path = KEY) -> dict[str, Drill]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise DrillError(f"{path}: cannot read the drill key: {err}") from None
    drills = {}
    for n, raw in enumerate(data.get("drill", []), 1):
        where = f"{path.name} drill #{n}"
        missing = {"id", "runbook", "scenario", "page", "verdict", "action", "why"} - set(raw)
        if missing:
            raise DrillError(f"{where}: add {', '.join(sorted(missing))}")
        if not ID.match(raw["id"]) or raw["id"] in drills:
            raise DrillError(f"{where}: id {raw['id']!r} must be unique and look like drill-some-name")
        bad = [v for v in raw["verdict"] if v not in VERDICTS] + [a for a in raw["action"] if a not in ACTIONS]
        if bad or not raw["verdict"] or not raw["action"]:
            raise DrillError(f"{where}: verdicts/actions {bad} are not in the vocabularies of handbook/drills.py")
        drills[raw["id"]] = Drill(raw["id"], raw["runbook"], raw["scenario"], raw["page"], tuple(raw["verdict"]),
                                  tuple(raw["action"]), raw["why"])
    return drills


def grade(drill_id: str, verdict: str, action: str) -> tuple[bool, str]:
    """(passed, feedback) for an answer to a drill; unknown words are a failed answer that says what is known."""
    drills = load()
    if drill_id not in drills:
        raise DrillError(f"unknown drill {drill_id!r}: use one of {', '.join(drills)}")
    drill = drills[drill_id]
    verdict, action = verdict.strip().lower(), action.strip().lower()
    notes = []
    if verdict not in VERDICTS:
        notes.append(f"verdict {verdict!r} is not one of: {', '.join(VERDICTS)}")
    if action not in ACTIONS:
        notes.append(f"action {action!r} is not one of: {', '.join(ACTIONS)}")
    right_verdict, right_action = verdict in drill.verdict, action in drill.action
    if not right_verdict and verdict in VERDICTS:
        notes.append(f"verdict: not {verdict} ({VERDICTS[verdict]})")
    if not right_action and action in ACTIONS:
        notes.append(f"action: {action} ({ACTIONS[action]}) is not what this fault calls for")
    ok = right_verdict and right_action
    if ok and (verdict != drill.verdict[0] or action != drill.action[0]):
        notes.append(f"passes; the best answer is {drill.verdict[0]} / {drill.action[0]}")
    head = "PASS" if ok else "FAIL"
    return ok, f"{head}: " + "; ".join(notes + [f"{drill.why} (runbook: {drill.runbook})"])


def state_dir() -> Path:
    return Path(os.environ.get("HANDBOOK_DRILLS_DIR") or Path.home() / ".cache" / "handbook-drills")


def start(drill_id: str | None, rng=secrets.SystemRandom()) -> tuple[str, Drill]:
    """A new session: the hidden scenario copied under an opaque token; returns (token, drill)."""
    drills = load()
    if drill_id is None:
        drill_id = rng.choice(sorted(drills))
    if drill_id not in drills:
        raise DrillError(f"unknown drill {drill_id!r}: use one of {', '.join(drills)}")
    drill = drills[drill_id]
    name, at = gpusim.split_spec(drill.scenario)
    source = gpusim.scenario.find(name).read_text(encoding="utf-8")
    token = secrets.token_hex(6)
    hidden = re.sub(r'^description = .*$', 'description = "a hidden drill scenario"', source, count=1, flags=re.M)
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{token}.toml").write_text(hidden, encoding="utf-8")
    (folder / f"{token}.json").write_text(json.dumps({"drill": drill_id, "at": at}), encoding="utf-8")
    return token, drill


def session(token: str) -> tuple[str, str]:
    """(drill id, scenario spec of the hidden copy) for a token."""
    if not re.fullmatch(r"[0-9a-f]{12}", token):
        raise DrillError(f"token {token!r}: paste the 12-character token `start` printed")
    meta = state_dir() / f"{token}.json"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise DrillError(f"no drill session {token} in {state_dir()}: start one with `start ID` or `start --random`") from None
    spec = str(state_dir() / f"{token}.toml") + ("" if data["at"] is None else f"@{data['at']:g}")
    return data["drill"], spec


def environment(spec: str) -> dict:
    """What a command sees in a session: pynvml, nvidia-smi and dmesg all play the hidden scenario."""
    env = gpusim.child_env(spec)
    env["PATH"] = f"{nvidia_smi.BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("HANDBOOK_GPUSIM_PYTHON", sys.executable)
    return env


def main(argv=None) -> int:
    argv, command = split_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m handbook.drills", description="GPU incident drills")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("list", help="the drills")
    begin = sub.add_parser("start", help="start a drill: start ID or start --random")
    begin.add_argument("id", nargs="?")
    begin.add_argument("--random", action="store_true")
    run = sub.add_parser("run", help="run a command against the hidden scenario: run TOKEN -- COMMAND ...")
    run.add_argument("token")
    answer = sub.add_parser("answer", help="grade your answer")
    answer.add_argument("token")
    answer.add_argument("--verdict", required=True, help=", ".join(VERDICTS))
    answer.add_argument("--action", required=True, help=", ".join(ACTIONS))
    args = parser.parse_args(argv)
    try:
        if args.what == "list":
            for drill in load().values():
                print(f"{drill.id:<26} {drill.runbook:<22} {drill.page}")
            return 0
        if args.what == "start":
            if bool(args.id) == bool(args.random):
                parser.error("give a drill id or --random (python -m handbook.drills list)")
            token, drill = start(None if args.random else args.id)
            print(f"token {token}")
            print(f"pager: {drill.page}" if args.id else "pager: (a random drill: diagnose it from scratch)")
            print(f"  python -m handbook.drills run {token} -- python 01_gpu_health.py")
            print(f"  python -m handbook.drills run {token} -- nvidia-smi -q")
            print(f"  python -m handbook.drills answer {token} --verdict VERDICT --action ACTION")
            return 0
        drill_id, spec = session(args.token)
        if args.what == "run":
            if not command:
                parser.error("give the command after --, e.g. run TOKEN -- python 01_gpu_health.py")
            env = environment(spec)
            import shutil

            program = shutil.which(command[0], path=env["PATH"]) or command[0]
            try:
                os.execve(program, command, env)
            except OSError as err:
                print(f"drills: cannot run {command[0]!r}: {err.strerror}", file=sys.stderr)
                return 127
        ok, feedback = grade(drill_id, args.verdict, args.action)
        print(feedback)
        return 0 if ok else 1
    except (DrillError, gpusim.ScenarioError) as err:
        print(f"drills: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
