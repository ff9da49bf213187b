"""Game timelines: the fleet, the job, what actions cost, and the incidents, scripted or drawn from the mix.

A timeline is a TOML file (handbook/fleet/timelines/*.toml, or the instructors' instructor/project/gameday.toml):

    description = "one line"
    nodes = 4                  # 8 GPUs each
    spares = 2                 # spare nodes ready to swap in; a replaced node's hardware becomes one after repair
    duration_s = 5400          # the game day: 90 minutes of wall clock
    time_scale = 1.0           # 1 for a game day; the CI timeline is the same game 20x faster (0.05)

    [job]                      # a data-parallel job over every schedulable node
    step_s = 2.0               # step time at full speed on the whole fleet
    checkpoint_every_s = 600
    min_nodes = 2              # fewer schedulable nodes than this and the job cannot start
    watchdog_s = 600           # a hung collective becomes a crash after this (NCCL's default timeout is 10 min)

    [costs]                    # what each action costs (docs/troubleshooting/decision.md), in seconds
    restart_job_s = 180        # relaunch and load the last checkpoint
    reset_gpu_s = 150          # nvidia-smi -r, then dcgmi diag -r 2 (about 2 min) before the GPU is used again
    replace_node_s = 600       # swap a drained node for a spare
    repair_node_s = 14400      # a node with no spare to replace it waits this long for repair (RMA: hours)

    [draw]                     # incidents drawn from the published failure mix (faults.py), from the seed
    count = 6
    first_s = 300
    gap_s = [420, 840]

    [[incident]]               # a scripted incident; node (1-based) and gpu are drawn when left out
    at_s = 1200
    kind = "thermal"

Every mistake is one line naming the file and what to fix. The drawn incidents depend only on the seed:
`seed_for(secret, learner)` is HMAC-SHA256(course secret, learner, "project"), as the quiz seeds its variants.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import tomllib
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from handbook.fleet import FleetError
from handbook.fleet.faults import KINDS, MIX

TIMELINES = Path(__file__).resolve().parent / "timelines"
GPUS_PER_NODE = 8
GAME_FORMAT = "handbook-fleet-game/1"
TOP_KEYS = {"description", "nodes", "spares", "duration_s", "time_scale", "job", "costs", "draw", "incident"}
JOB_KEYS = {"step_s": 2.0, "checkpoint_every_s": 600.0, "min_nodes": 2, "watchdog_s": 600.0}
COST_KEYS = {"restart_job_s": 180.0, "reset_gpu_s": 150.0, "replace_node_s": 600.0, "repair_node_s": 14400.0}
DRAW_KEYS = {"count", "first_s", "gap_s"}
INCIDENT_KEYS = {"at_s", "kind", "node", "gpu"}


@dataclass(frozen=True)
class Incident:
    id: str
    at: float
    kind: str
    node: int  # 0-based
    gpu: int | None
    cause: str  # the published cause it was drawn from, or "scripted"


@dataclass(frozen=True)
class Game:
    name: str
    description: str
    nodes: int
    duration_s: float
    time_scale: float
    step_s: float
    checkpoint_every_s: float
    min_nodes: int
    watchdog_s: float
    restart_job_s: float
    reset_gpu_s: float
    replace_node_s: float
    repair_node_s: float
    spares: int = 0
    incidents: tuple = ()
    seed: str = ""
    learner: str = ""
    gpus_per_node: int = GPUS_PER_NODE

    def node_name(self, index: int) -> str:
        return f"node{index + 1:02d}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["incidents"] = [asdict(i) for i in self.incidents]
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "game") -> "Game":
        try:
            incidents = tuple(Incident(**i) for i in data["incidents"])
            game = cls(**{**data, "incidents": incidents})
        except (KeyError, TypeError, ValueError) as err:
            raise FleetError(f"{where}: not a fleet game ({err})") from None
        for i in game.incidents:
            if i.kind not in KINDS or not 0 <= i.node < game.nodes:
                raise FleetError(f"{where}: incident {i.id} has kind {i.kind!r} on node {i.node}: not playable")
        return game

    def digest(self) -> str:
        """A fingerprint of everything that decides what happens, so a grader can tell its timeline from another."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def node_index(self, name: str) -> int:
        for i in range(self.nodes):
            if self.node_name(i) == name:
                return i
        raise FleetError(f"unknown node {name!r}: this fleet has {self.node_name(0)}..{self.node_name(self.nodes - 1)}")


def seed_for(secret: str, learner: str) -> str:
    """The learner's project seed: HMAC-SHA256(course secret, learner | "project"), hex."""
    return hmac.new(secret.encode(), f"{learner}\x00project".encode(), hashlib.sha256).hexdigest()


def course_secret() -> str:
    """The quiz's course secret ($HANDBOOK_QUIZ_SECRET, else instructor/quiz/course-secret): one per cohort."""
    from handbook.course.quiz import QuizError, variants

    try:
        return variants.load_secret().decode("utf-8")
    except QuizError as err:
        raise FleetError(f"per-learner timelines need the course secret, the quiz's: {err}") from None


def find(name: str) -> Path:
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise FleetError(f"{name}: no such timeline file")
        return path
    path = TIMELINES / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TIMELINES.glob("*.toml")))
        raise FleetError(f"unknown timeline {name!r}: use one of {known} or a path to a .toml file")
    return path


def _number(table: dict, key: str, default, where: str, minimum: float = 0.0, integer: bool = False):
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise FleetError(f"{where}: {key} = {value!r}: use a {'whole ' if integer else ''}number")
    if value < minimum or (minimum == 0 and key.endswith("_s") and value <= 0 and key != "first_s"):
        raise FleetError(f"{where}: {key} = {value!r}: use a number above {minimum:g}")
    return value


def load(name: str, seed: str = "", learner: str = "") -> Game:
    """A timeline file played with `seed` (its drawn incidents; the file name when no seed is given)."""
    path = find(name)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise FleetError(f"{where}: not valid TOML: {err}") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise FleetError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(TOP_KEYS))})")
    if not isinstance(data.get("description"), str) or not data["description"].strip():
        raise FleetError(f'{where}: add a one-line description = "..."')
    nodes = _number(data, "nodes", 4, where, 1, integer=True)
    spares = _number(data, "spares", 0, where, 0, integer=True)
    duration = _number(data, "duration_s", 5400, where)
    scale = _number(data, "time_scale", 1.0, where)
    if scale <= 0:
        raise FleetError(f"{where}: time_scale must be above 0")
    tables = {}
    for table, keys in (("job", JOB_KEYS), ("costs", COST_KEYS)):
        raw = data.get(table, {})
        if not isinstance(raw, dict) or set(raw) - set(keys):
            raise FleetError(f"{where}: [{table}] takes {', '.join(keys)}")
        for key, default in keys.items():
            tables[key] = _number(raw, key, default, f"{where} [{table}]", 1 if key == "min_nodes" else 0,
                                  integer=key == "min_nodes")
    if tables["min_nodes"] > nodes:
        raise FleetError(f"{where}: [job] min_nodes = {tables['min_nodes']} is more than the {nodes} nodes")
    seed = seed or path.stem
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest(), 16))
    planned = []
    for number, raw in enumerate(data.get("incident", []), 1):
        label = f"{where} [[incident]] #{number}"
        if not isinstance(raw, dict) or set(raw) - INCIDENT_KEYS or not {"at_s", "kind"} <= set(raw):
            raise FleetError(f"{label}: write at_s = SECONDS, kind = \"...\" and optionally node = N (1-based), gpu = G")
        if raw["kind"] not in KINDS:
            raise FleetError(f"{label}: kind {raw['kind']!r} is not a fault kind (known: {', '.join(KINDS)})")
        at = _number(raw, "at_s", None, label)
        node = raw.get("node")
        if node is not None and (not isinstance(node, int) or isinstance(node, bool) or not 1 <= node <= nodes):
            raise FleetError(f"{label}: node = {node!r}: use 1..{nodes}")
        gpu = raw.get("gpu")
        if gpu is not None and (not isinstance(gpu, int) or isinstance(gpu, bool) or not 0 <= gpu < GPUS_PER_NODE):
            raise FleetError(f"{label}: gpu = {gpu!r}: use 0..{GPUS_PER_NODE - 1}")
        planned.append((at, raw["kind"], None if node is None else node - 1, gpu, "scripted"))
    draw = data.get("draw", {})
    if not isinstance(draw, dict) or set(draw) - DRAW_KEYS:
        raise FleetError(f"{where}: [draw] takes count, first_s and gap_s = [LOW, HIGH]")
    if draw:
        count = _number(draw, "count", 0, f"{where} [draw]", 0, integer=True)
        first = _number(draw, "first_s", 300, f"{where} [draw]")
        gap = draw.get("gap_s", [600, 900])
        if (not isinstance(gap, list) or len(gap) != 2 or any(isinstance(g, bool) or not isinstance(g, (int, float))
                                                               for g in gap) or not 0 < gap[0] <= gap[1]):
            raise FleetError(f"{where} [draw]: gap_s = {gap!r}: write [LOW, HIGH] seconds, 0 < LOW <= HIGH")
        causes = list(MIX)
        weights = [MIX[c][0] for c in causes]
        at = first
        for _ in range(count):
            cause = rng.choices(causes, weights)[0]
            split = MIX[cause][1]
            kind = rng.choices(list(split), list(split.values()))[0]
            planned.append((round(at, 1), kind, None, None, cause))
            at += rng.uniform(*gap)
    incidents = []
    for number, (at, kind, node, gpu, cause) in enumerate(sorted(planned, key=lambda p: p[0]), 1):
        if at >= duration:
            raise FleetError(f"{where}: an incident at {at:g} s is not before the end of the game ({duration:g} s)")
        node = rng.randrange(nodes) if node is None else node
        gpu = (rng.randrange(GPUS_PER_NODE) if gpu is None else gpu) if KINDS[kind].scope != "node" else None
        incidents.append(Incident(f"i{number}", float(at), kind, node, gpu, cause))
    return Game(name=path.stem, description=data["description"].strip(), nodes=nodes, spares=spares,
                duration_s=float(duration),
                time_scale=float(scale), incidents=tuple(incidents), seed=seed, learner=learner,
                **{k: (v if k == "min_nodes" else float(v)) for k, v in tables.items()})


def for_learner(name: str, learner: str, secret: str | None = None) -> Game:
    """The learner's own game day: the timeline with the seed HMAC(course secret, learner, "project")."""
    if not learner.strip():
        raise FleetError("--learner is empty: give the learner's login, as the quiz's answer files name it")
    return load(name, seed_for(secret if secret is not None else course_secret(), learner), learner)


def write_game(game: Game, path: Path) -> None:
    """A game file for the learner to play: the game, compressed, so that its incidents do not read at a glance
    (it is not a secret from a determined learner: the grader regenerates the timeline from the course secret)."""
    payload = base64.b64encode(zlib.compress(json.dumps(game.to_dict(), sort_keys=True).encode())).decode()
    text = json.dumps({"format": GAME_FORMAT, "learner": game.learner, "digest": game.digest(), "game": payload})
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as err:
        raise FleetError(f"{path}: cannot write the game file ({err.strerror})") from None


def read_game(path: Path) -> Game:
    try:
        outer = json.loads(path.read_text(encoding="utf-8"))
        if outer.get("format") != GAME_FORMAT:
            raise ValueError(f"format is {outer.get('format')!r}, not {GAME_FORMAT}")
        game = Game.from_dict(json.loads(zlib.decompress(base64.b64decode(outer["game"]))), str(path))
    except FileNotFoundError:
        raise FleetError(f"{path}: no such game file") from None
    except (ValueError, KeyError, zlib.error, AttributeError) as err:
        raise FleetError(f"{path}: not a game file issued by `python -m handbook.fleet issue` ({err})") from None
    if game.digest() != outer.get("digest"):
        raise FleetError(f"{path}: the game file was edited (its digest does not match): ask for a fresh one")
    return game
