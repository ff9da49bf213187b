"""The fleet's state machine: nodes, GPUs, one data-parallel job, faults, actions, and the work they cost.

It is a pure function of the game (timeline.Game) and the actions taken at their times: the live fleet drives it
with the wall clock, `simulate` drives it with a policy in virtual time, and the grader replays an event log
through it. Times are seconds since the game started.

The job (docs/distributed/data-parallel.md): every rank waits for the slowest at each all-reduce, so the job runs
at the speed of its slowest GPU; a crash on any rank stops every rank, and the job loses the work since its last
checkpoint. Work is counted in GPU-seconds at full speed: a running job adds (its GPUs x its speed) per second.
Goodput is the work kept at the end over what the whole fleet could have done in the game.

What each action costs follows docs/troubleshooting/decision.md: restarting the job loses the work since the
checkpoint and the relaunch time; a GPU reset needs no process on the GPU and takes the GPU out until its
diagnostics pass; a drain takes the node out of the job (and kills the job if it runs there) until it is
replaced or uncordoned.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from handbook.fleet import FleetError
from handbook.fleet.faults import HUNG, IDLE, KINDS, TRAIN
from handbook.fleet.timeline import Game, Incident

RUNNING, HUNG_STATE, FAILED, STARTING, ENDED = "running", "hung", "failed", "starting", "ended"
ACTIVE = (RUNNING, HUNG_STATE, STARTING)
ACTIONS = ("cordon", "uncordon", "drain", "reset-gpu", "restart-job", "replace-node")
NODE_ACTIONS = {"cordon", "uncordon", "drain", "reset-gpu", "replace-node"}
# Values a slow fault shows before its slowdown sets in (SW thermal slowdown first, as thermal-throttle.toml).
PRE_ONSET = {"thermal": {"temperature_c": 84, "clocks_event_reasons": 0x20}}


@dataclass
class Gpu:
    index: int
    faults: list = field(default_factory=list)  # ids of the incidents active on this GPU
    ecc_unc: int = 0  # volatile: reset by a GPU reset
    ecc_unc_aggregate: int = 0
    remapped_unc: int = 0
    remap_pending: int = 0
    remap_failure: int = 0
    recovery: int = 0
    nvlink_down: tuple = ()
    lost_at: float | None = None
    resetting_until: float | None = None


@dataclass
class Node:
    index: int
    name: str
    gpus: list
    state: str = "ready"  # ready | cordoned | drained | replacing
    down: bool = False  # a host fault: NotReady, its exporter gone
    generation: int = 0  # +1 at each replacement: new hardware, new UUIDs, an empty kernel log
    born: float = 0.0
    replacing_until: float | None = None
    xids: list = field(default_factory=list)  # (time, gpu, code): the kernel log since boot
    faults: list = field(default_factory=list)  # node-scope incidents


@dataclass
class Open:
    """An incident as it plays out."""

    incident: Incident
    node: int
    gpu: int | None
    fired: bool = False
    fired_at: float | None = None
    void: str = ""
    onset_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str = ""


class Engine:
    def __init__(self, game: Game, listener=None):
        self.game = game
        self.listener = listener  # called with each event as it is made
        self.events: list[dict] = []
        self.t = 0.0
        self.nodes = [Node(i, game.node_name(i), [Gpu(g) for g in range(game.gpus_per_node)])
                      for i in range(game.nodes)]
        self.incidents = {i.id: Open(i, i.node, i.gpu) for i in game.incidents}
        self.pending = sorted(game.incidents, key=lambda i: (i.at, i.id))
        self.timers: list = []  # [time, seq, name, data]
        self.seq = 0
        self.ended = False
        self.job = {"state": STARTING, "world": list(range(game.nodes)), "run": 0, "since": 0.0, "reason": "",
                    "speed": 1.0}
        self.work = self.saved = 0.0
        self.rate = 0.0
        self.checkpoints = 0
        self.spares = game.spares  # spare nodes ready to swap in
        self.deferred: list = []  # job faults waiting for the job to run again
        self.display: dict = {}  # (node, gpu) -> [(time, values)]
        self.dirty: set = set(range(game.nodes))  # nodes whose scenario must be written again
        self._schedule(game.duration_s, "game_over", {})
        self._start_job(0.0, initial=True)
        self._refresh()

    # ---- plumbing -------------------------------------------------------------------------------------------
    @property
    def capacity(self) -> float:
        """GPU-seconds the whole fleet could do in the game."""
        return self.game.nodes * self.game.gpus_per_node * self.game.duration_s

    def emit(self, type_: str, **fields) -> dict:
        event = {"t": round(self.t, 3), "type": type_, **fields}
        self.events.append(event)
        if self.listener:
            self.listener(event)
        return event

    def _schedule(self, when: float, name: str, data: dict):
        self.seq += 1
        self.timers.append([when, self.seq, name, data])

    def _next(self):
        candidates = []
        if self.pending:
            candidates.append((self.pending[0].at, 0, "fault", {"incident": self.pending[0].id}))
        if self.timers:
            first = min(self.timers, key=lambda x: (x[0], x[1]))
            candidates.append((first[0], first[1], first[2], first[3]))
        return min(candidates, key=lambda c: (c[0], c[1])) if candidates else None

    def _accrue(self, t: float):
        if t > self.t:
            if self.job["state"] == RUNNING:
                self.work += self.rate * (t - self.t)
            self.t = t

    def advance(self, t: float):
        """Play everything scheduled up to time t."""
        while not self.ended:
            nxt = self._next()
            if nxt is None or nxt[0] > t:
                break
            when, seq, name, data = nxt
            if name == "fault":
                self.pending.pop(0)
            else:
                self.timers = [x for x in self.timers if x[1] != seq]
            self._accrue(when)
            getattr(self, "_on_" + name)(data)
            self._refresh()
        if not self.ended:
            self._accrue(t)

    def node(self, name: str) -> Node:
        return self.nodes[self.game.node_index(name)]

    # ---- the job --------------------------------------------------------------------------------------------
    def _gpu_speed(self, node: Node, gpu: Gpu) -> float:
        speed = 1.0
        for iid in gpu.faults:
            o = self.incidents[iid]
            kind = KINDS[o.incident.kind]
            if kind.job == "slow" and o.onset_at is not None and o.onset_at <= self.t:
                speed = min(speed, kind.speed)
        return speed

    def _speed(self) -> float:
        return min((self._gpu_speed(self.nodes[n], g) for n in self.job["world"] for g in self.nodes[n].gpus),
                   default=1.0)

    def step_seconds(self) -> float | None:
        """The job's step time now (None when it does not run): step_s on the whole fleet at full speed."""
        if self.job["state"] != RUNNING:
            return None
        return self.game.step_s * self.game.nodes / (len(self.job["world"]) * self.job["speed"])

    def steps(self) -> int:
        return int(self.work / (self.game.nodes * self.game.gpus_per_node * self.game.step_s))

    def _set_job(self, state: str, reason: str = "", **extra):
        self.job.update(state=state, reason=reason, since=self.t)
        self.job["speed"] = self._speed() if state == RUNNING else 1.0
        gpus = len(self.job["world"]) * self.game.gpus_per_node
        self.rate = gpus * self.job["speed"] if state == RUNNING else 0.0
        self.emit("job", state=state, run=self.job["run"], world=[self.nodes[n].name for n in self.job["world"]],
                  speed=round(self.job["speed"], 4), rate=round(self.rate, 4), work=round(self.work, 3),
                  reason=reason, **extra)
        for n in self.job["world"]:
            self.dirty.add(n)

    def _update_speed(self):
        if self.job["state"] == RUNNING and abs(self._speed() - self.job["speed"]) > 1e-9:
            self._set_job(RUNNING, "slowest rank " + ("back at full speed" if self._speed() >= 1 else "slowed"))

    def _start_job(self, t: float, initial: bool = False):
        self.job["run"] += 1
        if initial:
            self.job["world"] = list(range(self.game.nodes))
            self._set_job(RUNNING, "started")
            self._schedule(t + self.game.checkpoint_every_s, "checkpoint", {"run": self.job["run"]})
            return
        self.job["world"] = [n.index for n in self.nodes if self._schedulable(n)]
        self._set_job(STARTING, "relaunching from the last checkpoint")
        self._schedule(t + self.game.restart_job_s, "job_ready", {"run": self.job["run"]})

    def _crash(self, reason: str):
        """Every rank stops: the work since the last checkpoint is lost."""
        if self.job["state"] not in ACTIVE:
            return
        lost = self.work - self.saved
        self.work = self.saved
        self._set_job(FAILED, reason, lost=round(lost, 3))

    def _broken(self, node: Node) -> str:
        """Why a job cannot start on this node ('' when it can)."""
        if node.down:
            return f"{node.name} does not answer (NotReady)"
        for gpu in node.gpus:
            if gpu.resetting_until is not None:
                return f"{node.name} GPU {gpu.index} is being reset"
            if gpu.lost_at is not None:
                return f"{node.name} GPU {gpu.index}: CUDA error: GPU has fallen off the bus"
            for iid in gpu.faults:
                kind = KINDS[self.incidents[iid].incident.kind]
                if kind.job == "crash" and kind.cleared_by in ("reset", "replace"):
                    return f"{node.name} GPU {gpu.index}: {kind.reason}"
        return ""

    def _schedulable(self, node: Node) -> bool:
        return node.state == "ready" and not node.down

    # ---- scheduled events -----------------------------------------------------------------------------------
    def _on_game_over(self, data):
        self.t = self.game.duration_s
        work = self.work  # the job goes on after the game: what it did so far is kept (a final checkpoint)
        if self.job["state"] in ACTIVE or self.job["state"] == FAILED:
            self.job.update(state=ENDED)
        self.ended = True
        self.emit("game_over", work=round(work, 3), capacity=self.capacity, goodput=round(work / self.capacity, 6),
                  gpu_hours_lost=round((self.capacity - work) / 3600, 4), steps=self.steps())

    def _on_checkpoint(self, data):
        if self.job["state"] == RUNNING and data["run"] == self.job["run"]:
            self.saved = self.work
            self.checkpoints += 1
            self.emit("checkpoint", run=self.job["run"], work=round(self.work, 3), step=self.steps())
            self._schedule(self.t + self.game.checkpoint_every_s, "checkpoint", {"run": self.job["run"]})

    def _on_job_ready(self, data):
        if self.job["state"] != STARTING or data["run"] != self.job["run"]:
            return
        for n in self.job["world"]:
            why = self._broken(self.nodes[n])
            if why:
                self._set_job(FAILED, f"failed at start: {why}", lost=0.0)
                return
        self.work = self.saved
        self._set_job(RUNNING, "resumed from the last checkpoint", step=self.steps())
        self._schedule(self.t + self.game.checkpoint_every_s, "checkpoint", {"run": self.job["run"]})
        for o in self.incidents.values():  # a restart is what clears the job's own faults
            if o.fired and not o.void and o.resolved_at is None and KINDS[o.incident.kind].cleared_by == "restart":
                self._resolve(o, "restart-job")
        while self.deferred and self.job["state"] == RUNNING:
            self._on_fault({"incident": self.deferred.pop(0)})

    def _on_watchdog(self, data):
        if self.job["state"] == HUNG_STATE and data["run"] == self.job["run"]:
            self._crash(KINDS["hang"].reason)

    def _on_onset(self, data):
        o = self.incidents[data["incident"]]
        if o.resolved_at is None:
            self.dirty.add(o.node)
            self._update_speed()

    def _on_reset_done(self, data):
        node = self.nodes[data["node"]]
        if node.generation != data["generation"]:
            return
        gpu = node.gpus[data["gpu"]]
        gpu.resetting_until = None
        self.dirty.add(node.index)
        self.emit("gpu", node=node.name, gpu=gpu.index, state="ready", reason="reset and diagnostics done")

    def _on_replace_done(self, data):
        node = self.nodes[data["node"]]
        node.generation += 1
        node.born = self.t
        node.state, node.down, node.replacing_until = "ready", False, None
        node.gpus = [Gpu(g) for g in range(self.game.gpus_per_node)]
        node.xids, node.faults = [], []
        for g in range(self.game.gpus_per_node):
            self.display.pop((node.index, g), None)
        self.dirty.add(node.index)
        self.emit("node", node=node.name, state="ready", generation=node.generation, reason="replaced: new hardware")
        for o in self.incidents.values():
            if o.node == node.index and o.fired and not o.void and o.resolved_at is None \
                    and KINDS[o.incident.kind].scope != "job":
                self._resolve(o, "replace-node")

    def _resolve(self, o: Open, by: str):
        o.resolved_at, o.resolved_by = self.t, by
        self.emit("resolved", incident=o.incident.id, by=by)

    def _on_fault(self, data):
        o = self.incidents[data["incident"]]
        inc, kind = o.incident, KINDS[o.incident.kind]
        node = self.nodes[o.node]
        if kind.scope == "job" and self.job["state"] != RUNNING:
            self.deferred.append(o.incident.id)  # a program's fault needs the program: it comes once the job runs
            return
        o.fired, o.fired_at = True, self.t
        if kind.job == "hang":
            o.gpu = None  # every rank waits in the collective: no one GPU shows it
        if kind.scope == "job":
            if o.node not in self.job["world"]:  # the fault shows on a GPU of the job
                o.node = self.job["world"][o.node % len(self.job["world"])]
                node = self.nodes[o.node]
        elif node.state in ("drained", "replacing") or node.down:
            # the hardware of the node the draw named is out: the fault strikes the next node in service
            others = [self.nodes[(o.node + k) % len(self.nodes)] for k in range(1, len(self.nodes))]
            serving = [n for n in others if n.state in ("ready", "cordoned") and not n.down]
            if not serving:
                return self._void(o, "no node was in service")
            o.node, node = serving[0].index, serving[0]
        where = {"node": node.name, "gpu": o.gpu} if o.gpu is not None else {"node": node.name}
        self.emit("fault", incident=inc.id, kind=inc.kind, cause=inc.cause, summary=kind.summary, **where)
        gpu = node.gpus[o.gpu] if o.gpu is not None else None
        for code in kind.xid:
            node.xids.append((self.t, o.gpu if o.gpu is not None else 0, code))
        if gpu is not None:
            if kind.scope == "gpu":
                gpu.faults.append(inc.id)
            v = kind.values
            gpu.ecc_unc += v.get("ecc_uncorrected", 0)
            gpu.ecc_unc_aggregate += v.get("ecc_uncorrected", 0)
            gpu.remapped_unc += v.get("remapped_rows_uncorrectable", 0)
            gpu.remap_pending = max(gpu.remap_pending, v.get("row_remap_pending", 0))
            gpu.remap_failure = max(gpu.remap_failure, v.get("row_remap_failure", 0))
            gpu.recovery = max(gpu.recovery, v.get("recovery_action", 0))
            if kind.nvlink_down:
                gpu.nvlink_down = tuple(sorted(set(gpu.nvlink_down) | set(kind.nvlink_down)))
            if kind.lost:
                gpu.lost_at = self.t
        if kind.down:
            node.down = True
            node.faults.append(inc.id)
            self.emit("node", node=node.name, state=node.state, down=True, reason="NotReady: the host stopped answering")
        self.dirty.add(node.index)
        in_job = self.job["state"] in ACTIVE and o.node in self.job["world"]
        if kind.job == "crash" and in_job:
            self._crash(kind.reason + (f" (rank {self.job['world'].index(o.node) * self.game.gpus_per_node + o.gpu},"
                                       f" {node.name} GPU {o.gpu})" if o.gpu is not None else f" ({node.name})"))
        elif kind.job == "hang" and self.job["state"] == RUNNING:
            self._set_job(HUNG_STATE, "")  # nothing says so: the steps just stop
            self._schedule(self.t + self.game.watchdog_s, "watchdog", {"run": self.job["run"]})
        elif kind.job == "slow":
            o.onset_at = self.t + kind.onset_s * self.game.time_scale
            if o.onset_at > self.t:
                self._schedule(o.onset_at, "onset", {"incident": inc.id})
            self._update_speed()

    def _void(self, o: Open, why: str):
        o.void = why
        self.emit("incident_void", incident=o.incident.id, kind=o.incident.kind, reason=why)

    # ---- actions --------------------------------------------------------------------------------------------
    def act(self, t: float, action: str, node: str | None = None, gpu: int | None = None, actor: str = "cli") -> dict:
        """Apply a control command at time t. Returns the action event ({..., "result": done|failed|refused,
        "message": ...}); a command naming no such node or GPU raises FleetError and changes nothing."""
        if action not in ACTIONS:
            raise FleetError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        target = None
        if action in NODE_ACTIONS:
            if node is None:
                raise FleetError(f"{action} needs a node, e.g. {action} {self.game.node_name(0)}"
                                 + (" 3" if action == "reset-gpu" else ""))
            target = self.node(node)
        if action == "reset-gpu":
            if gpu is None or isinstance(gpu, bool) or not isinstance(gpu, int) \
                    or not 0 <= gpu < self.game.gpus_per_node:
                raise FleetError(f"unknown GPU {gpu!r} on {node}: a node has GPUs 0..{self.game.gpus_per_node - 1}")
        elif gpu is not None:
            raise FleetError(f"{action} takes no GPU (only reset-gpu does)")
        if action == "restart-job" and node is not None:
            raise FleetError("restart-job takes no node: the job runs on every schedulable node")
        t = round(t, 3)  # as the event log stores it, so that a replay of the log is exact
        self.advance(t)
        if self.ended:
            raise FleetError(f"the game day ended at {self.game.duration_s:g} s and the job with it: "
                             "no command changes anything now; `python -m handbook.fleet report` scores it")
        handler = getattr(self, "_act_" + action.replace("-", "_"))
        result, message = handler(target, gpu) if action != "restart-job" else handler()
        where = {}
        if target is not None:
            where["node"] = target.name
        if gpu is not None:
            where["gpu"] = gpu
        event = self.emit("action", action=action, actor=actor, result=result, message=message, **where)
        self._refresh()
        return event

    def _act_cordon(self, node: Node, _):
        if node.state != "ready":
            return "refused", f"{node.name} is already {node.state}"
        node.state = "cordoned"
        self.emit("node", node=node.name, state="cordoned", down=node.down, reason="cordoned")
        return "done", f"{node.name} cordoned: the job keeps running there; its next restart leaves it out"

    def _act_uncordon(self, node: Node, _):
        if node.state == "replacing":
            return "refused", f"{node.name} is being replaced: it comes back ready by itself"
        if node.state == "ready":
            return "refused", f"{node.name} is not cordoned"
        node.state = "ready"
        self.emit("node", node=node.name, state="ready", down=node.down, reason="uncordoned")
        return "done", f"{node.name} schedulable again: the job's next restart uses it"

    def _act_drain(self, node: Node, _):
        if node.state in ("drained", "replacing"):
            return "refused", f"{node.name} is already {node.state}"
        node.state = "drained"
        self.emit("node", node=node.name, state="drained", down=node.down, reason="drained")
        if self.job["state"] in ACTIVE and node.index in self.job["world"]:
            self._crash(f"evicted: {node.name} was drained")
            return "done", f"{node.name} drained: the job ran there and was stopped; restart it (restart-job)"
        return "done", f"{node.name} drained"

    def _act_reset_gpu(self, node: Node, index: int):
        gpu = node.gpus[index]
        if node.state == "replacing":
            return "refused", f"{node.name} is being replaced"
        if gpu.resetting_until is not None:
            return "refused", f"{node.name} GPU {index} is already being reset"
        if node.down:
            return "failed", f"{node.name} does not answer (NotReady): nvidia-smi -r cannot run there"
        if self.job["state"] in ACTIVE and node.index in self.job["world"]:
            rank = self.job["world"].index(node.index) * self.game.gpus_per_node + index
            return "refused", (f"{node.name} GPU {index} is in use by the job (rank {rank}): a reset needs no process "
                               "on the GPU (cordon the node and restart the job without it, or drain it)")
        if gpu.lost_at is not None:
            return "failed", (f"{node.name} GPU {index}: Unable to reset: the GPU is lost (not on the bus); "
                              "only a reboot or a repair brings it back")
        gpu.resetting_until = self.t + self.game.reset_gpu_s
        gpu.ecc_unc, gpu.remap_pending, gpu.nvlink_down = 0, 0, ()
        gpu.remapped_unc = gpu.remapped_unc  # the pending remap is applied: the row stays remapped
        gpu.recovery = 4 if gpu.remap_failure else 0
        self._schedule(gpu.resetting_until, "reset_done",
                       {"node": node.index, "gpu": index, "generation": node.generation})
        self.emit("gpu", node=node.name, gpu=index, state="resetting", reason="nvidia-smi -r, then dcgmi diag -r 2")
        for iid in list(gpu.faults):
            o = self.incidents[iid]
            if KINDS[o.incident.kind].cleared_by == "reset":
                gpu.faults.remove(iid)
                self._resolve(o, "reset-gpu")
        self.dirty.add(node.index)
        self._update_speed()
        return "done", f"{node.name} GPU {index} reset; back in service after its diagnostics " \
                       f"(+{self.game.reset_gpu_s:g} s)"

    def _act_restart_job(self):
        if self.job["state"] == STARTING:
            return "refused", "the job is already starting"
        world = [n for n in self.nodes if self._schedulable(n)]
        if len(world) < self.game.min_nodes:
            return "refused", (f"{len(world)} schedulable node(s): the job needs {self.game.min_nodes}; "
                               "uncordon or replace nodes first")
        resetting = [f"{n.name} GPU {g.index}" for n in world for g in n.gpus if g.resetting_until is not None]
        if resetting:
            return "refused", f"{resetting[0]} is being reset: restart after it, or cordon {resetting[0].split()[0]}"
        self._crash("stopped for a restart")
        self._start_job(self.t)
        return "done", (f"the job relaunches on {len(world)} node(s) from its last checkpoint "
                        f"(+{self.game.restart_job_s:g} s)")

    def _act_replace_node(self, node: Node, _):
        if node.state == "replacing":
            return "refused", f"{node.name} is already being replaced"
        if node.state != "drained":
            return "refused", f"drain {node.name} first: a node is replaced once it is drained"
        node.state = "replacing"
        if self.spares > 0:
            self.spares -= 1
            node.replacing_until = self.t + self.game.replace_node_s
            how = f"a spare takes its place in {self.game.replace_node_s:g} s ({self.spares} spare(s) left)"
            self._schedule(self.t + self.game.repair_node_s, "repaired", {"node": node.name})
        else:
            node.replacing_until = self.t + self.game.repair_node_s
            how = f"no spare is left: it is back when repaired, in {self.game.repair_node_s:g} s"
        self._schedule(node.replacing_until, "replace_done", {"node": node.index})
        self.emit("node", node=node.name, state="replacing", down=node.down, reason=how)
        return "done", f"{node.name} goes for repair; {how}"

    def _on_repaired(self, data):
        """The hardware taken out of a node that a spare replaced comes back from repair, as a spare."""
        self.spares += 1
        self.emit("spare", spares=self.spares, reason=f"the hardware taken out of {data['node']} is repaired")

    # ---- what each GPU shows --------------------------------------------------------------------------------
    def values(self, node: Node, gpu: Gpu) -> dict:
        """The scenario values this GPU shows now (see nodes.py)."""
        here = self.job["state"] in ACTIVE and node.index in self.job["world"]
        state = self.job["state"]
        if here and state == RUNNING:
            v = dict(TRAIN)
            mine, job = self._gpu_speed(node, gpu), self.job["speed"]
            if job < 1 and mine > job:  # a peer waiting for the slow rank at every all-reduce
                for key in ("gpm_sm_util_pct", "gpm_tensor_util_pct", "gpm_dram_bw_util_pct", "mem_util_pct"):
                    v[key] = round(v[key] * job, 1)
                v["power_w"] = round(IDLE["power_w"] + (TRAIN["power_w"] - IDLE["power_w"]) * job)
                v["temperature_c"] = 55
        elif here and state == HUNG_STATE:
            v = dict(HUNG)
        elif here and state == STARTING:
            v = {**IDLE, "processes": True, "memory_used_mib": 20480, "clocks_event_reasons": 0, "gpu_util_pct": 3}
        else:
            v = dict(IDLE)
        if gpu.resetting_until is not None:
            v = dict(IDLE)
        for iid in gpu.faults:
            o = self.incidents[iid]
            kind = KINDS[o.incident.kind]
            if kind.job == "slow":
                onset = o.onset_at is not None and o.onset_at <= self.t
                v.update(kind.values if onset else PRE_ONSET.get(kind.name, kind.values))
        v.update(ecc_uncorrected_volatile=gpu.ecc_unc, ecc_uncorrected_aggregate=gpu.ecc_unc_aggregate,
                 remapped_rows_uncorrectable=gpu.remapped_unc, row_remap_pending=gpu.remap_pending,
                 row_remap_failure=gpu.remap_failure, recovery_action=gpu.recovery,
                 pid=4000 + self.job["run"] if v.get("processes") else 0)
        return v

    def _refresh(self):
        """Record what changed on every GPU since the last event (the history the scenario files are made of)."""
        for node in self.nodes:
            for gpu in node.gpus:
                v = self.values(node, gpu)
                history = self.display.setdefault((node.index, gpu.index), [])
                if history and history[-1][1] == v:
                    continue
                if history and abs(history[-1][0] - self.t) < 1e-9:
                    history[-1] = (self.t, v)
                else:
                    history.append((self.t, v))
                self.dirty.add(node.index)

    # ---- reading it -----------------------------------------------------------------------------------------
    def status(self) -> dict:
        """What an operator sees: the scheduler's view of the job and the nodes (no fault is named)."""
        job = {"state": self.job["state"], "run": self.job["run"],
               "world": [self.nodes[n].name for n in self.job["world"]], "reason": self.job["reason"],
               "since": round(self.job["since"], 1), "step": self.steps(),
               "step_s": None if self.step_seconds() is None else round(self.step_seconds(), 3),
               "last_checkpoint_step": int(self.saved / (self.game.nodes * self.game.gpus_per_node * self.game.step_s))}
        nodes = []
        for n in self.nodes:
            nodes.append({"node": n.name, "state": n.state, "ready": not n.down,
                          "in_job": n.index in self.job["world"] and self.job["state"] in ACTIVE,
                          "resetting": [g.index for g in n.gpus if g.resetting_until is not None],
                          "back_at": None if n.replacing_until is None else round(n.replacing_until, 1)})
        costs = {k: getattr(self.game, k) for k in ("restart_job_s", "reset_gpu_s", "replace_node_s", "repair_node_s")}
        return {"t": round(self.t, 3), "duration_s": self.game.duration_s, "ended": self.ended, "job": job,
                "costs": costs, "time_scale": self.game.time_scale, "spares": self.spares,
                "nodes": nodes, "goodput_so_far": round(self.work / max(self.game.nodes * self.game.gpus_per_node
                                                                          * max(self.t, 1e-9), 1e-9), 4)}


def replay(game: Game, actions: list[dict], until: float | None = None) -> Engine:
    """An engine that played `game` with these action events (their t, action, node, gpu, actor) up to `until`
    (the end of the game by default). Refused and erroneous commands replay as they were."""
    engine = Engine(game)
    for a in sorted(actions, key=lambda a: a["t"]):
        try:
            engine.act(a["t"], a["action"], a.get("node"), a.get("gpu"), a.get("actor", "cli"))
        except FleetError:
            continue
    engine.advance(game.duration_s if until is None else until)
    return engine
