"""python -m handbook.gpusim list | run SCENARIO[@SECONDS] [--speed N] -- COMMAND [ARGS...]

`run` starts COMMAND with HANDBOOK_GPUSIM=SCENARIO and a shim directory first on PYTHONPATH, so every Python
program it starts (and their children) imports the simulator as `pynvml`.
"""
import argparse
import os
import shutil
import sys

from handbook.gpusim import ENV_SPEED, ScenarioError, _number, child_env, load, scenarios, split_command, split_spec


def main(argv=None) -> int:
    argv, command = split_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m handbook.gpusim", description="Simulated NVML for pynvml programs.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the scenarios, one line each")
    run = sub.add_parser("run", help="run a program with the simulator: run SCENARIO -- python prog.py ...")
    run.add_argument("scenario", help="a scenario name (see list), NAME@SECONDS to start later, or a .toml path")
    run.add_argument("--speed", help=f"play N times faster than the wall clock (sets {ENV_SPEED})")
    args = parser.parse_args(argv)
    try:
        if args.action == "list":
            if command:
                parser.error("list takes no command")
            rows = scenarios()
            width = max(len(name) for name, _ in rows)
            for name, description in rows:
                print(f"{name:<{width}}  {description}")
            return 0
        if not command:
            parser.error("give the program after --, e.g. run healthy-idle -- python exporter.py")
        name, _ = split_spec(args.scenario)
        load(name)  # a bad name or file stops here, with its one-line reason
        speed = None if args.speed is None else _number(args.speed, "--speed", 0)
        env = child_env(args.scenario, speed)
    except ScenarioError as err:
        print(f"gpusim: {err}", file=sys.stderr)
        return 2
    program = shutil.which(command[0], path=env.get("PATH")) or command[0]
    print(f"gpusim: running {' '.join(command)} with SIMULATED GPUs (scenario {args.scenario}); "
          "pynvml is the simulator for it and its children", file=sys.stderr, flush=True)
    try:
        os.execve(program, command, env)  # the program replaces this process: signals reach it directly
    except OSError as err:
        print(f"gpusim: cannot run {command[0]!r}: {err.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
