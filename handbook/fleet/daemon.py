"""The live fleet: the engine on the wall clock, one Lab 1 exporter per node, and one HTTP port for the rest.

    http://127.0.0.1:BASE/metrics          the training job's own metrics (step, step time, world size, checkpoints)
    http://127.0.0.1:BASE/api/v2/alerts    an Alertmanager-compatible receiver: Prometheus sends its alerts here
    http://127.0.0.1:BASE/status           the scheduler's view (JSON); POST /control applies a command
    http://127.0.0.1:BASE+1..BASE+N/metrics   node01..nodeNN's exporter

The daemon mostly sleeps: it wakes for the next scheduled event, a command, a scrape of the job's metrics or an
alert. Exporters are started from the main thread only, with a parent-death signal, so they never outlive it.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from handbook import ROOT, gpusim
from handbook.gpusim import live, nvidia_smi
from handbook.fleet import FleetError, journal, nodes
from handbook.fleet.engine import ACTIVE, RUNNING, Engine
from handbook.fleet.timeline import Game

EXPORTER = ROOT / "snippets" / "labs" / "lab1" / "02_gpu_exporter.py"
VERSION = 1
RESTART_AFTER_S = 10.0  # an exporter that exits is started again, at most this often
STATES = ("running", "starting", "failed")  # what a scheduler can tell: a hung job still says running


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_env(file: Path, epoch: float, base=None) -> dict:
    """What a program run "on" a node gets: the node's scenario followed on the fleet's clock, the simulated
    nvidia-smi and dmesg first on PATH."""
    env = gpusim.child_env(str(file), base=base)
    env[live.ENV_FOLLOW] = repr(epoch)
    env["PATH"] = f"{nvidia_smi.BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable
    return env


def _die_with_parent():  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Fleet:
    def __init__(self, folder: Path, game: Game | None, base_port: int = 9500, interval: float = 5.0,
                 exporter: Path = EXPORTER, quiet: bool = False):
        self.folder = folder = folder.resolve()
        self.interval = interval
        self.exporter = exporter
        self.quiet = quiet
        self.lock = threading.RLock()
        self.wake = threading.Condition(self.lock)
        self.procs: dict[int, subprocess.Popen] = {}
        self.files: dict[int, Path] = {}
        self.started: dict[int, float] = {}  # when each node's exporter was last started
        self.alerts: dict[tuple, dict] = {}
        self.stopping = False
        self.journal = journal.Journal(folder)
        log = folder / journal.EVENTS
        if log.exists():
            self._resume(log, game, base_port)
        else:
            if game is None:
                raise FleetError("no game to start: give --timeline or --game")
            self._new(game, base_port, interval)

    # ---- starting and resuming ------------------------------------------------------------------------------
    def _ports(self, base: int, nodes: int) -> dict:
        return {"control": base, **{f"node{i + 1:02d}": base + 1 + i for i in range(nodes)}}

    def _check_ports(self, ports: dict):
        for what, port in ports.items():
            if not 1024 <= port <= 65535:
                raise FleetError(f"port {port} ({what}) is outside 1024..65535: pass another --base-port")
            if not port_free(port):
                owner = "the job's metrics and the control API" if what == "control" else f"{what}'s exporter"
                raise FleetError(f"port {port} ({owner}) is in use on 127.0.0.1: stop what holds it, or pass "
                                 f"--base-port to use {len(ports)} other consecutive ports")

    def _new(self, game: Game, base: int, interval: float):
        self.ports = self._ports(base, game.nodes)
        self._check_ports(self.ports)
        for sub in ("nodes", "targets", "logs"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.epoch = time.time()
        self.journal.open()
        self.journal.append({"t": 0.0, "type": "fleet_started", "format": journal.FORMAT, "version": VERSION,
                             "epoch": self.epoch, "ports": self.ports, "interval": interval, "game": game.to_dict(),
                             "digest": game.digest()})
        self.engine = Engine(game, listener=self.journal.append)
        self.say(f"fleet: {game.nodes} nodes x {game.gpus_per_node} GPUs, game {game.name!r} "
                 f"({game.duration_s / 60:g} min), job metrics and control on 127.0.0.1:{self.ports['control']}, "
                 f"exporters on {base + 1}..{base + game.nodes}; events in {self.folder / journal.EVENTS}")

    def _resume(self, log: Path, game: Game | None, base: int):
        events = journal.read_events(log)
        first = events[0]
        logged_game = journal.game_of(events, str(log))
        if game is not None and game.digest() != logged_game.digest():
            raise FleetError(f"{self.folder} holds another game day ({logged_game.name}, started "
                             f"{datetime.fromtimestamp(first['epoch']).strftime('%Y-%m-%d %H:%M')}): resume it "
                             "without --timeline/--game, or use another --dir")
        state_note = ""
        try:
            journal.read_state(self.folder)
        except FleetError:
            state_note = f" ({journal.STATE} was missing or corrupt: rebuilt from {journal.EVENTS})"
        self.epoch, self.ports, self.interval = first["epoch"], first["ports"], first.get("interval", self.interval)
        engine = journal.rebuild(events, str(log))
        if any(e["type"] == "game_over" for e in events):
            raise FleetError(f"the game day in {self.folder} ended: nothing to resume; grade or report it")
        self._check_ports(self.ports)
        logged = sum(1 for e in events if e["type"] in journal.ENGINE_TYPES)
        self.journal.open()
        for event in engine.events[logged:]:  # events the replay made that a crash kept out of the log
            self.journal.append(event)
        engine.listener = self.journal.append
        self.engine = engine
        self.journal.append({"t": round(self.now(), 3), "type": "fleet_resumed",
                             "replayed": len(engine.events)})
        self.say(f"fleet: resumed the game day of {self.folder} at {self.now():.0f} s{state_note}")

    def _external(self, type_: str, **fields):
        """An event the engine does not make (an alert, the daemon stopping): logged at the fleet's time."""
        self.journal.append({"t": round(max(self.engine.t, 0.0), 3), "type": type_, **fields})

    def say(self, text: str):
        if not self.quiet:
            print(text, flush=True)

    def now(self) -> float:
        return time.time() - self.epoch

    # ---- files ----------------------------------------------------------------------------------------------
    def _write_targets(self):
        targets = self.folder / "targets"
        targets.mkdir(exist_ok=True)
        gpu = [{"targets": [f"127.0.0.1:{self.ports[n.name]}"], "labels": {"node": n.name}} for n in self.engine.nodes]
        job = [{"targets": [f"127.0.0.1:{self.ports['control']}"], "labels": {"node": ""}}]
        for name, data in (("gpu.json", gpu), ("training.json", job)):
            tmp = targets / (name + ".tmp")
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            os.replace(tmp, targets / name)

    def state(self) -> dict:
        status = self.engine.status()
        for entry, node in zip(status["nodes"], self.engine.nodes):
            entry["file"] = str(self.folder / "nodes" / nodes.file_name(node))
            entry["port"] = self.ports[node.name]
            entry["exporter_pid"] = self.procs[node.index].pid if node.index in self.procs else None
        return {"format": journal.FORMAT, "pid": os.getpid(), "epoch": self.epoch, "control_port": self.ports["control"],
                "ports": self.ports, "game": self.engine.game.name, "gpus_per_node": self.engine.game.gpus_per_node, "running": not self.stopping, **status}

    def save(self):
        journal.write_state(self.folder, self.state())

    def _sync_nodes(self):
        """Write the scenario of every node that changed; stop the exporter of a node that went down, start one
        for a node that is up (a replaced node gets a fresh exporter: new hardware)."""
        engine = self.engine
        for index in sorted(engine.dirty):
            node = engine.nodes[index]
            nodes.write(engine, node, self.folder / "nodes")
        engine.dirty.clear()
        for node in engine.nodes:
            proc = self.procs.get(node.index)
            wanted = not node.down and node.state != "replacing" and not engine.ended and not self.stopping
            file = self.folder / "nodes" / nodes.file_name(node)
            if proc is not None and (not wanted or self.files.get(node.index) != file or proc.poll() is not None):
                if proc.poll() is not None and wanted and self.files.get(node.index) == file:
                    if time.monotonic() - self.started.get(node.index, 0) < RESTART_AFTER_S:
                        continue  # it died young: not again before RESTART_AFTER_S (see its log)
                    self.say(f"fleet: {node.name}'s exporter exited ({proc.returncode}): starting it again "
                             f"(its output: {self.folder / 'logs' / (node.name + '.log')})")
                self._stop_exporter(node.index)
                proc = None
            if proc is None and wanted:
                self._start_exporter(node, file)

    def _start_exporter(self, node, file: Path):
        log = open(self.folder / "logs" / f"{node.name}.log", "a")
        proc = subprocess.Popen([sys.executable, str(self.exporter), "--port", str(self.ports[node.name]),
                                 "--interval", f"{self.interval:g}"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=node_env(file, self.epoch), cwd=self.folder,
                                preexec_fn=_die_with_parent)
        log.close()
        self.files[node.index] = file
        self.started[node.index] = time.monotonic()
        self.procs[node.index] = proc

    def _stop_exporter(self, index: int, kill: bool = False):
        proc = self.procs.pop(index, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ---- what the HTTP side does ----------------------------------------------------------------------------
    def command(self, body: dict) -> dict:
        with self.lock:
            try:
                event = self.engine.act(self.now(), body.get("action", ""), body.get("node"), body.get("gpu"),
                                        str(body.get("actor") or "cli")[:40])
            except FleetError as err:
                return {"ok": False, "error": str(err)}
            self._sync_nodes()
            self.save()
            self.wake.notify_all()
        return {"ok": event["result"] == "done", "result": event["result"], "message": event["message"],
                "t": event["t"]}

    def job_metrics(self) -> str:
        with self.lock:
            engine = self.engine
            engine.advance(self.now())
            job, game = engine.job, engine.game
            per_step = game.nodes * game.gpus_per_node * game.step_s
            steps = engine.steps()
            last_step = self.epoch + engine.t - ((engine.work - steps * per_step) / engine.rate if engine.rate else 0)
            if job["state"] != RUNNING:
                last_step = self.epoch + job["since"]
            step_s = engine.step_seconds()
            lines = []

            def metric(name, kind, doc, samples):
                lines.extend([f"# HELP {name} {doc}", f"# TYPE {name} {kind}"])
                for labels, value in samples:
                    lines.append(f"{name}{labels} {value!r}")  # full precision: timestamps are ~1.8e9 s

            metric("training_job_up", "gauge", "1 while the job's processes run (running, hung or starting)",
                   [("", int(job["state"] in ACTIVE))])
            metric("training_job_state", "gauge", "1 for the job's current state",
                   [(f'{{state="{s}"}}', int({"hung": "running"}.get(job["state"], job["state"]) == s))
                    for s in STATES])
            metric("training_step", "gauge", "Training step the job is at (it goes back to the checkpoint's on a restart)",
                   [("", steps)])
            metric("training_last_step_timestamp_seconds", "gauge", "Unix time the last step completed",
                   [("", last_step)])
            if step_s is not None:
                metric("training_step_duration_seconds", "gauge", "Seconds per step now (all ranks wait for the slowest)",
                       [("", step_s)])
            metric("training_world_size_gpus", "gauge", "GPUs (ranks) the job runs on",
                   [("", len(job["world"]) * game.gpus_per_node if job["state"] in ACTIVE else 0)])
            metric("training_fleet_gpus", "gauge", "GPUs in the fleet", [("", game.nodes * game.gpus_per_node)])
            metric("training_restarts", "counter", "Times the job was relaunched", [("_total", job["run"] - 1)])
            metric("training_checkpoints", "counter", "Checkpoints written", [("_total", engine.checkpoints)])
        return "\n".join(lines) + "\n"

    def receive_alerts(self, alerts) -> None:
        """Prometheus's alert notifications (the Alertmanager API's POST /api/v2/alerts body)."""
        if not isinstance(alerts, list):
            raise ValueError("the body must be a JSON list of alerts")
        by_port = {str(port): name for name, port in self.ports.items()}
        with self.lock:
            self.engine.advance(self.now())
            if self.engine.ended:
                return
            for alert in alerts:
                labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
                key = tuple(sorted(labels.items()))
                ends = alert.get("endsAt") or ""
                firing = not ends or ends.startswith("0001") or _parse(ends) > time.time()
                node = labels.get("node") or by_port.get(labels.get("instance", "").rpartition(":")[2], "")
                node = "" if node == "control" else node
                known = self.alerts.get(key)
                if firing and (known is None or not known["firing"]):
                    self.alerts[key] = {"firing": True}
                    gpu = labels.get("gpu")
                    self._external("alert", name=labels.get("alertname", ""), node=node,
                                              gpu=int(gpu) if gpu is not None and gpu.isdigit() else None,
                                              severity=labels.get("severity", ""), labels=labels, state="firing")
                elif not firing and known is not None and known["firing"]:
                    known["firing"] = False
                    self._external("alert", name=labels.get("alertname", ""), node=node, labels=labels,
                                              state="resolved")
            self.save()

    # ---- the loop -------------------------------------------------------------------------------------------
    def run(self, stop_after: float | None = None) -> int:
        self._write_targets()  # before the port answers: whoever sees the fleet up finds its targets
        server = ThreadingHTTPServer(("127.0.0.1", self.ports["control"]), _handler(self))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
        thread.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._signal)
        try:
            with self.lock:
                self.engine.advance(self.now())
                self._sync_nodes()
                self.save()
                while not self.stopping and not self.engine.ended:
                    nxt = self.engine._next()
                    wait = 5.0 if nxt is None else max(0.0, min(5.0, nxt[0] - self.now()))
                    if stop_after is not None:
                        wait = min(wait, max(0.0, stop_after - self.now()))
                    self.wake.wait(timeout=wait + 0.002)
                    self.engine.advance(self.now())
                    self._sync_nodes()
                    self.save()
                    if stop_after is not None and self.now() >= stop_after:
                        break
                ended = self.engine.ended
                if not ended:
                    self._external("fleet_stopped")
                self.stopping = True
                for index in list(self.procs):
                    self._stop_exporter(index)
                self.save()
        finally:
            server.shutdown()
            server.server_close()
            self.journal.close()
        if ended:
            over = self.engine.events[-1]
            self.say(f"fleet: the game day is over: goodput {over['goodput']:.1%}, {over['gpu_hours_lost']:.2f} "
                     f"GPU-hours lost; the event log is {self.folder / journal.EVENTS}")
        else:
            self.say(f"fleet: stopped at {self.engine.t:.0f} s; `python -m handbook.fleet start --dir {self.folder}` "
                     "resumes it")
        return 0

    def _signal(self, *_):
        self.stopping = True
        threading.Thread(target=self._notify, daemon=True).start()

    def _notify(self):
        with self.lock:
            self.wake.notify_all()


def _parse(stamp: str) -> float:
    try:
        text = stamp.replace("Z", "+00:00")
        if "." in text:  # Go writes nanoseconds; Python reads at most microseconds
            head, _, tail = text.partition(".")
            digits = "".join(c for c in tail if c.isdigit())
            zone = tail[len(digits):]
            text = f"{head}.{digits[:6]}{zone}"
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return math.inf


def _handler(fleet: Fleet):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, code: int, body: str, kind: str = "application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1 << 20:
                raise ValueError("body over 1 MiB")
            return json.loads(self.rfile.read(length) or b"null")

        def do_GET(self):
            if self.path == "/metrics":
                self._reply(200, fleet.job_metrics(), "text/plain; version=0.0.4")
            elif self.path == "/status":
                with fleet.lock:
                    fleet.engine.advance(fleet.now())
                    self._reply(200, json.dumps(fleet.state()))
            else:
                self._reply(404, json.dumps({"error": "GET /metrics or /status"}))

        def do_POST(self):
            try:
                body = self._body()
                if self.path in ("/api/v2/alerts", "/api/v1/alerts"):
                    fleet.receive_alerts(body)
                    self._reply(200, "{}")
                elif self.path == "/control":
                    if not isinstance(body, dict):
                        raise ValueError("the body must be a JSON object")
                    reply = fleet.command(body)
                    self._reply(200 if "error" not in reply else 400, json.dumps(reply))
                else:
                    self._reply(404, json.dumps({"error": "POST /control or /api/v2/alerts"}))
            except (ValueError, UnicodeDecodeError) as err:
                self._reply(400, json.dumps({"ok": False, "error": f"bad request: {err}"}))

    return Handler
