"""python -m handbook.fleet: run a simulated GPU fleet game day, act on it, and score it.

The learner's side:
  start [--timeline practice | --game FILE] [--dir fleet-run] [--base-port 9500] [--interval 5]
                                  the fleet in the foreground (Ctrl-C stops it; start again to resume)
  status                          the job and the nodes, as the scheduler sees them
  exec NODE -- COMMAND ...        run a command on a node: its NVML, nvidia-smi and dmesg (e.g. 01_gpu_health.py)
  cordon NODE | uncordon NODE | drain NODE | replace-node NODE | reset-gpu NODE GPU | restart-job
  stop                            stop the fleet (the game day can be resumed)
  compress-rules RULES.yml --factor 20 [--out FILE]   a rule file with every duration divided, for short games
  list                            the timelines and the fault kinds

The instructor's side (the key and the course secret are instructors' material):
  issue --learner LOGIN --out FILE [--timeline instructor/project/gameday.toml]    a learner's game file
  grade FOLDER|events.jsonl [--learner LOGIN] [--out results.json]                 the score, from the event log
  simulate --timeline NAME --policy do-nothing|drain-on-alert|key --out events.jsonl   a game day in virtual time

Every command exits 0 when it did what it says, 1 when a control command was refused or failed (the message
says why), 2 on bad input (one line naming what is wrong).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from handbook.gpusim import split_command
from handbook.fleet import FleetError, journal, timeline

DEFAULT_DIR = Path("fleet-run")


def request(folder: Path, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    state = journal.read_state(folder)
    if state.get("ended"):
        raise FleetError(f"the game day in {folder} ended at {state.get('duration_s', 0):g} s and the job with it: "
                         "no command changes anything now")
    url = f"http://127.0.0.1:{state['control_port']}{path}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers={
                "Content-Type": "application/json"}), timeout=timeout) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as err:
        try:
            return json.loads(err.read())
        except ValueError:
            raise FleetError(f"the fleet answered HTTP {err.code} on {path}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        raise FleetError(f"the fleet in {folder} is not running (nothing answers on 127.0.0.1:"
                         f"{state['control_port']}): `python -m handbook.fleet start --dir {folder}` resumes it") from None


def cmd_start(args) -> int:
    from handbook.fleet.daemon import EXPORTER, Fleet

    if args.game and args.timeline:
        raise FleetError("give --timeline or --game, not both")
    game = None
    if args.game:
        game = timeline.read_game(Path(args.game))
    elif args.timeline or not (args.dir / journal.EVENTS).exists():
        game = timeline.load(args.timeline or "practice", seed=args.seed or "")
    if args.interval <= 0:
        raise FleetError(f"--interval {args.interval:g}: use a number of seconds above 0")
    exporter = Path(args.exporter) if args.exporter else EXPORTER
    if not exporter.is_file():
        raise FleetError(f"--exporter {exporter}: no such file")
    fleet = Fleet(args.dir, game, base_port=args.base_port, interval=args.interval, exporter=exporter.resolve())
    return fleet.run()


def cmd_status(args) -> int:
    state = request(args.dir, "/status") if not args.offline else journal.read_state(args.dir)
    if args.json:
        print(json.dumps(state, indent=1))
        return 0
    job = state["job"]
    step = "" if job["step_s"] is None else f", {job['step_s']:.2f} s/step"
    print(f"t = {state['t']:.0f} s of {state['duration_s']:.0f} s   job: {job['state']} on {len(job['world'])} node(s)"
          f"{step}, step {job['step']} (checkpoint at step {job['last_checkpoint_step']})"
          + (f"   last exit: {job['reason']}" if job["state"] == "failed" else ""))
    print(f"{'NODE':<8} {'STATUS':<20} {'JOB':<4} {'PORT':<6} NOTE")
    for n in state["nodes"]:
        status = ("Ready" if n["ready"] else "NotReady") + {"ready": "", "cordoned": ",SchedulingDisabled",
                                                             "drained": ",Drained", "replacing": ",Replacing"}[n["state"]]
        note = (f"GPU {','.join(map(str, n['resetting']))} resetting" if n["resetting"] else "") + \
               (f"back at {n['back_at']:.0f} s" if n["back_at"] is not None else "")
        print(f"{n['node']:<8} {status:<20} {'yes' if n['in_job'] else '-':<4} {n['port']:<6} {note}")
    return 0


def cmd_control(args) -> int:
    body = {"action": args.command, "actor": args.actor}
    if getattr(args, "node", None) is not None:
        body["node"] = args.node
    if getattr(args, "gpu", None) is not None:
        try:
            body["gpu"] = int(args.gpu)
        except ValueError:
            raise FleetError(f"GPU {args.gpu!r}: give the GPU's index, 0..7 (as nvidia-smi numbers them)") from None
    reply = request(args.dir, "/control", body)
    if "error" in reply:
        raise FleetError(reply["error"])
    print(f"{args.command}: {reply['result']} at {reply['t']:.0f} s: {reply['message']}")
    return 0 if reply["ok"] else 1


def cmd_exec(args) -> int:
    from handbook.fleet.daemon import node_env

    if not args.command:
        raise FleetError("give the command after --, e.g. exec node01 -- nvidia-smi")
    state = journal.read_state(args.dir)
    entry = next((n for n in state["nodes"] if n["node"] == args.node), None)
    if entry is None:
        raise FleetError(f"unknown node {args.node!r}: this fleet has {', '.join(n['node'] for n in state['nodes'])}")
    if not entry["ready"]:
        raise FleetError(f"ssh: connect to host {args.node}: No route to host ({args.node} is NotReady)")
    if entry["state"] == "replacing":
        raise FleetError(f"{args.node} is being replaced: its hardware is on the bench until {entry['back_at']:.0f} s")
    env = node_env(Path(entry["file"]), state["epoch"])
    program = shutil.which(args.command[0], path=env["PATH"]) or args.command[0]
    if Path(program).name in ("python", "python3") or program == sys.executable:
        program = sys.executable
    try:
        os.execve(program, [program, *args.command[1:]] if program == sys.executable else args.command, env)
    except OSError as err:
        raise FleetError(f"cannot run {args.command[0]!r} on {args.node}: {err.strerror}") from None
    return 127


def cmd_stop(args) -> int:
    state = journal.read_state(args.dir)
    pid = state.get("pid")
    try:
        request(args.dir, "/status", timeout=5)
    except FleetError as err:
        raise FleetError(str(err).replace(": `python -m handbook.fleet start", "; to resume it: `python -m handbook.fleet start")) from None
    import signal

    os.kill(int(pid), signal.SIGTERM)
    print(f"fleet: asked the fleet (pid {pid}) to stop; `python -m handbook.fleet start --dir {args.dir}` resumes it")
    return 0


def cmd_list(args) -> int:
    from handbook.fleet.faults import KINDS, mix_weights

    for path in sorted(timeline.TIMELINES.glob("*.toml")):
        game = timeline.load(str(path))
        print(f"timeline {path.stem:<10} {game.description}")
    weights = mix_weights()
    for kind in KINDS.values():
        share = f"{weights[kind.name]:5.1%} of drawn" if kind.name in weights else "scripted only"
        print(f"kind {kind.name:<17} {share}  {kind.summary}")
    return 0


def cmd_compress(args) -> int:
    from handbook.fleet.rules import compress

    text = compress(Path(args.rules), args.factor)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_issue(args) -> int:
    game = timeline.for_learner(args.timeline, args.learner)
    timeline.write_game(game, Path(args.out))
    print(f"{args.out}: {args.learner}'s game day ({game.name}, digest {game.digest()}): "
          f"`python -m handbook.fleet start --game {args.out}`")
    return 0


def cmd_simulate(args) -> int:
    from handbook.fleet.policies import simulate

    game = timeline.read_game(Path(args.game)) if args.game else timeline.load(args.timeline, seed=args.seed or "")
    events = simulate(game, args.policy)
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
    Path(args.out).write_text(text) if args.out else sys.stdout.write(text)
    over = events[-1]
    print(f"{args.policy}: goodput {over['goodput']:.1%}, {over['gpu_hours_lost']:.2f} GPU-hours lost",
          file=sys.stderr)
    return 0


def cmd_grade(args) -> int:
    from handbook.fleet.grade import grade_log, results, summary

    log = args.log / journal.EVENTS if args.log.is_dir() else args.log
    graded = grade_log(log, key_path=args.key, learner=args.learner)
    print(summary(graded))
    if args.out:
        results(graded, args.out)
    return 0 if graded["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    argv, command = split_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m handbook.fleet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, run, help, folder=True):
        p = sub.add_parser(name, help=help)
        if folder:
            p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the fleet's folder (default ./fleet-run)")
        p.set_defaults(run=run)
        return p

    p = add("start", cmd_start, "start (or resume) the fleet, in the foreground")
    p.add_argument("--timeline", help="a timeline name (list shows them) or a .toml file; default practice")
    p.add_argument("--game", help="a game file your instructor issued")
    p.add_argument("--seed", help="another draw of the timeline's incidents (practice)")
    p.add_argument("--base-port", type=int, default=9500, help="job metrics and control; exporters on the next ports")
    p.add_argument("--interval", type=float, default=5.0, help="exporter poll interval in seconds (default 5)")
    p.add_argument("--exporter", help="your exporter (default: snippets/labs/lab1/02_gpu_exporter.py)")
    p = add("status", cmd_status, "the job and the nodes")
    p.add_argument("--json", action="store_true")
    p.add_argument("--offline", action="store_true", help="read state.json only (the fleet may be stopped)")
    for name, help in (("cordon", "keep new work off a node"), ("uncordon", "make a node schedulable again"),
                       ("drain", "take a node out of service (stops the job if it runs there)"),
                       ("replace-node", "swap a drained node for a spare"), ("reset-gpu", "reset one GPU")):
        p = add(name, cmd_control, help)
        p.add_argument("node")
        if name == "reset-gpu":
            p.add_argument("gpu")
        p.add_argument("--actor", default="cli", help="who acts (shown in the event log)")
    p = add("restart-job", cmd_control, "relaunch the job from its last checkpoint on every schedulable node")
    p.add_argument("--actor", default="cli")
    p = add("exec", cmd_exec, "run a command on a node (after --)")
    p.add_argument("node")
    add("stop", cmd_stop, "stop the fleet (resume it with start)")
    add("list", cmd_list, "timelines and fault kinds", folder=False)
    p = add("compress-rules", cmd_compress, "divide every duration of a Prometheus rule file", folder=False)
    p.add_argument("rules")
    p.add_argument("--factor", type=float, required=True)
    p.add_argument("--out")
    p = add("issue", cmd_issue, "instructors: a learner's game file", folder=False)
    p.add_argument("--learner", required=True)
    p.add_argument("--timeline", default=str(Path(__file__).resolve().parents[2] / "instructor" / "project" / "gameday.toml"))
    p.add_argument("--out", required=True)
    p = add("simulate", cmd_simulate, "a game day in virtual time, with a scripted policy", folder=False)
    p.add_argument("--timeline", default="practice")
    p.add_argument("--game")
    p.add_argument("--seed")
    p.add_argument("--policy", required=True)
    p.add_argument("--out")
    p = add("grade", cmd_grade, "instructors: score a game day's event log", folder=False)
    p.add_argument("log", type=Path, help="a fleet folder or its events.jsonl")
    p.add_argument("--learner", help="whose game day it is (checked against the game)")
    p.add_argument("--key", type=Path, help="the key (default instructor/project/key.toml)")
    p.add_argument("--out", type=Path, help="write the results file here")
    args = parser.parse_args(argv)
    args.command_line = command
    if args.run is cmd_exec:
        args.command = command
    elif command:
        parser.error(f"{args.command} takes nothing after --")
    try:
        return args.run(args)
    except FleetError as err:
        print(f"fleet: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
