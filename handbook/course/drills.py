"""Incident drills: a hidden fault scenario, diagnosed with the runbooks and 01_gpu_health.py.

Practice drills (handbook/course/practice_drills.toml: public scenarios, public answers) give feedback:

    python -m handbook.drills list                          # drill ids, runbooks and what the pager said
    python -m handbook.drills list --words                  # the verdicts and actions an answer uses
    python -m handbook.drills start ID | --random           # prints a session TOKEN and the commands to run
    python -m handbook.drills run TOKEN -- python 01_gpu_health.py      # any command, against the hidden scenario
    python -m handbook.drills run TOKEN -- nvidia-smi -q                # nvidia-smi and dmesg play it too
    python -m handbook.drills answer TOKEN --verdict VERDICT --action ACTION    # feedback; exit 0 if right

Graded drills come with a learner's quiz paper, as a pack (drills/ beside the paper: the hidden scenarios and
pack.json). The runner records the diagnosis into the answer file and prints no verdict, answer or explanation;
the instructors grade it from the key:

    python -m handbook.drills start --pack drills/ page-1
    python -m handbook.drills answer TOKEN --verdict V --action A --evidence "what decided it" --into answers.yaml

A session is a copy of the scenario under an opaque name, in $HANDBOOK_DRILLS_DIR (default
~/.cache/handbook-drills), re-written without its description and comments: the simulator's banner names the
copy, not the scenario.
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

from handbook import gpusim
from handbook.gpusim import split_command
from handbook.gpusim import nvidia_smi

from handbook.course.vocabulary import ACTIONS, PRACTICE, VERDICTS  # noqa: F401 - the runner's words

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


def load(path: Path = PRACTICE) -> dict[str, Drill]:
    """The practice drills (public answers)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise DrillError(f"{path}: cannot read the practice drills: {err}") from None
    drills = {}
    for n, raw in enumerate(data.get("drill", []), 1):
        where = f"{path.name} drill #{n}"
        missing = {"id", "runbook", "scenario", "page", "verdict", "action", "why"} - set(raw)
        if missing:
            raise DrillError(f"{where}: add {', '.join(sorted(missing))}")
        if not ID.match(raw["id"]) or raw["id"] in drills:
            raise DrillError(f"{where}: id {raw['id']!r} must be unique and look like drill-some-name")
        bad = [v for v in raw["verdict"] if v not in VERDICTS] + [a for a in raw["action"] if a not in ACTIONS]
        if bad or not raw["action"]:
            raise DrillError(f"{where}: verdicts/actions {bad} are not in the vocabularies of handbook/course/drills.py")
        if len(raw["verdict"]) != 1:
            raise DrillError(f"{where}: give exactly one verdict: a second accepted verdict lets a wrong diagnosis pass")
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


def _open_session(source: Path, at, meta: dict) -> str:
    from handbook.course.quiz.papers import hidden_copy

    token = secrets.token_hex(6)
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{token}.toml").write_text(hidden_copy(source, 0), encoding="utf-8")
    (folder / f"{token}.json").write_text(json.dumps({**meta, "at": at}), encoding="utf-8")
    return token


def start(drill_id: str | None, rng=secrets.SystemRandom()) -> tuple[str, Drill]:
    """A new practice session: the scenario copied under an opaque token; returns (token, drill)."""
    drills = load()
    if drill_id is None:
        drill_id = rng.choice(sorted(drills))
    if drill_id not in drills:
        raise DrillError(f"unknown drill {drill_id!r}: use one of {', '.join(drills)}")
    drill = drills[drill_id]
    name, at = gpusim.split_spec(drill.scenario)
    token = _open_session(gpusim.scenario.find(name), at, {"drill": drill_id, "graded": False})
    return token, drill


def start_graded(pack: Path, slot: str) -> tuple[str, dict]:
    """A new graded session from a learner's pack (drills/ beside the paper); returns (token, the slot's entry)."""
    try:
        data = json.loads((pack / "pack.json").read_text(encoding="utf-8"))
        entry = data["drills"][slot]
        source = pack / entry["scenario"]
    except FileNotFoundError:
        raise DrillError(f"{pack}: no pack.json; give the drills/ folder that came with your paper") from None
    except (OSError, ValueError, TypeError):
        raise DrillError(f"{pack / 'pack.json'}: not a drill pack (re-copy it from your paper)") from None
    except KeyError:
        raise DrillError(f"{pack}: no drill {slot!r} in this pack (your paper names it)") from None
    if not source.is_file() or source.parent.resolve() != pack.resolve():
        raise DrillError(f"{pack}: the pack's scenario {entry.get('scenario')!r} is missing; re-copy the pack")
    token = _open_session(source, entry.get("at"), {"graded": True, "slot": slot, "question": entry["question"],
                                                   "learner": data.get("learner"), "variant": data.get("variant")})
    return token, entry


def load_session(token: str) -> dict:
    if not re.fullmatch(r"[0-9a-f]{12}", token):
        raise DrillError(f"token {token!r}: paste the 12-character token `start` printed")
    try:
        return json.loads((state_dir() / f"{token}.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise DrillError(f"no drill session {token} in {state_dir()}: start one with `start ID` or `start --random`") from None


def record(path: Path, question: str, learner: str | None, verdict: str, action: str, evidence: list[str]) -> None:
    """Write a graded drill's diagnosis into the answer file PATH (its QUESTION's line), checked before it is kept."""
    from handbook.course.quiz import QuizError, answers, bank as bank_module, yamlines

    verdict, action = verdict.strip().lower(), action.strip().lower()
    if verdict not in VERDICTS:
        raise DrillError(f"--verdict {verdict!r} is not one of: {', '.join(VERDICTS)}")
    if action not in ACTIONS:
        raise DrillError(f"--action {action!r} is not one of: {', '.join(ACTIONS)}")
    try:
        text = yamlines.read_bytes(path, str(path), yamlines.ANSWERS.max_bytes).decode("utf-8")
    except QuizError as err:
        raise DrillError(f"--into: {err}") from None
    except UnicodeDecodeError:
        raise DrillError(f"--into {path}: not UTF-8 text") from None
    value = {"verdict": verdict, "action": action, "evidence": [e.strip() for e in evidence if e.strip()]}
    line = f"  {question}: {json.dumps(value)}"
    lines = text.splitlines()
    at = next((i for i, ln in enumerate(lines) if re.match(rf"^\s+{re.escape(question)}\s*:", ln)), None)
    if at is None:
        top = next((i for i, ln in enumerate(lines) if re.match(r"^answers\s*:", ln)), None)
        if top is None:
            raise DrillError(f"--into {path}: no answers: section; use the answer file that came with your paper")
        lines.insert(top + 1, line)
    else:
        indent = len(lines[at]) - len(lines[at].lstrip())
        end = at + 1
        while end < len(lines) and lines[end].strip() and len(lines[end]) - len(lines[end].lstrip()) > indent:
            end += 1
        lines[at:end] = [line]
    new = "\n".join(lines) + "\n"
    try:
        bank = bank_module.load()
        found = answers.check_tree(yamlines.loads(new, path.name), path, bank, path.name)
    except QuizError as err:
        raise DrillError(f"--into {path}: {err}; the file is unchanged") from None
    if isinstance(found, list):
        raise DrillError(f"--into {path}: {found[0]}; the file is unchanged (fix it, then record again)")
    if learner and found.learner != learner:
        raise DrillError(f"--into {path}: it is {found.learner}'s answer file, and this drill is {learner}'s pack")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)


def session(token: str) -> tuple[str, str]:
    """(drill id or graded question, scenario spec of the hidden copy) for a token."""
    data = load_session(token)
    spec = str(state_dir() / f"{token}.toml") + ("" if data["at"] is None else f"@{data['at']:g}")
    return data.get("drill") or data.get("question"), spec


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
    listing = sub.add_parser("list", help="the practice drills")
    listing.add_argument("--words", action="store_true", help="the verdicts and actions instead")
    begin = sub.add_parser("start", help="start a drill: start ID, start --random, or start --pack DIR SLOT")
    begin.add_argument("id", nargs="?")
    begin.add_argument("--random", action="store_true")
    begin.add_argument("--pack", type=Path, help="a graded drill: the drills/ folder that came with your paper")
    run = sub.add_parser("run", help="run a command against the hidden scenario: run TOKEN -- COMMAND ...")
    run.add_argument("token")
    answer = sub.add_parser("answer", help="practice: feedback on your answer; graded: record it")
    answer.add_argument("token")
    answer.add_argument("--verdict", required=True, help=", ".join(VERDICTS))
    answer.add_argument("--action", required=True, help=", ".join(ACTIONS))
    answer.add_argument("--evidence", action="append", default=[], help="a reading that decided it (repeatable)")
    answer.add_argument("--into", type=Path, default=Path("answers.yaml"),
                        help="graded drills: the answer file to record into (default: answers.yaml)")
    args = parser.parse_args(argv)
    try:
        if args.what == "list":
            if args.words:
                for title, words in (("verdicts", VERDICTS), ("actions", ACTIONS)):
                    print(f"{title}:")
                    for word, meaning in words.items():
                        print(f"  {word:<24} {meaning}")
                return 0
            for drill in load().values():
                print(f"{drill.id:<26} {drill.runbook:<22} {drill.page}")
            return 0
        if args.what == "start":
            if args.pack is not None:
                if not args.id or args.random:
                    parser.error("--pack needs the drill your paper names, e.g. start --pack drills/ page-1")
                token, entry = start_graded(args.pack, args.id)
                print(f"token {token}")
                print(f"pager: {entry['pager']}")
                print(f"  python -m handbook.drills run {token} -- python 01_gpu_health.py")
                print(f"  python -m handbook.drills run {token} -- nvidia-smi -q")
                print(f"  python -m handbook.drills answer {token} --verdict VERDICT --action ACTION "
                      "--evidence \"...\" --into answers.yaml")
                return 0
            if bool(args.id) == bool(args.random):
                parser.error("give a drill id or --random (python -m handbook.drills list)")
            token, drill = start(None if args.random else args.id)
            print(f"token {token}")
            print(f"pager: {drill.page}" if args.id else "pager: (a random drill: diagnose it from scratch)")
            print(f"  python -m handbook.drills run {token} -- python 01_gpu_health.py")
            print(f"  python -m handbook.drills run {token} -- nvidia-smi -q")
            print(f"  python -m handbook.drills answer {token} --verdict VERDICT --action ACTION")
            return 0
        data = load_session(args.token)
        _, spec = session(args.token)
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
        if data.get("graded"):
            record(args.into, data["question"], data.get("learner"), args.verdict, args.action, args.evidence)
            print(f"drills: recorded your diagnosis of {data['slot']} in {args.into} ({data['question']}); "
                  "it is graded with your paper. Record again to change it.")
            return 0
        ok, feedback = grade(data["drill"], args.verdict, args.action)
        print(feedback)
        return 0 if ok else 1
    except (DrillError, gpusim.ScenarioError) as err:
        print(f"drills: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
