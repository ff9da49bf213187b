"""The fleet game day (handbook/fleet), at unit level: the failure mix and per-learner timelines, the engine's job and
actions, node files the GPU simulator plays, the event log (replay, edits, damage), grading, rule compression, the
project's snippets, and the control CLI's bad input. The live game with a real Prometheus is test_fleet_live.py."""
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handbook import ROOT, gpusim
from handbook.fleet import FleetError, faults, grade, journal, nodes, policies, rules, timeline
from handbook.fleet.engine import Engine, replay
from handbook.course.quiz import variants

PROJECT = ROOT / "snippets" / "labs" / "project"
GOODPUT = PROJECT / "01_goodput.py"  # labs/project/01_goodput.py
PROMTOOL = shutil.which("promtool")
KEY = grade.load_key()


def game(text: str, tmp_path: Path, name: str = "t") -> timeline.Game:
    path = tmp_path / f"{name}.toml"
    path.write_text('description = "a test game"\n' + text)
    return timeline.load(str(path))


SMALL = """
nodes = 2
duration_s = 1000
[job]
step_s = 1.0
checkpoint_every_s = 100
min_nodes = 1
watchdog_s = 200
[costs]
restart_job_s = 50
reset_gpu_s = 30
replace_node_s = 60
repair_node_s = 5000
"""


# ---- the mix and the timelines ------------------------------------------------------------------------------

def test_the_mix_is_llama3s_419_interruptions():
    assert sum(c for c, _ in faults.MIX.values()) + sum(c for c, _ in faults.UNPLAYED.values()) == 419
    assert faults.MIX["Faulty GPU"][0] == 148 and faults.MIX["GPU HBM3 Memory"][0] == 72
    assert set(faults.mix_weights()) == set(faults.KINDS) - faults.SCRIPT_ONLY
    assert abs(sum(faults.mix_weights().values()) - 1) < 1e-12


def test_drawn_incidents_follow_the_mix(tmp_path):
    g = game("duration_s = 10000000\n[draw]\ncount = 3000\nfirst_s = 1\ngap_s = [1, 2]\n", tmp_path)
    drawn = [i.kind for i in g.incidents]
    for kind, share in faults.mix_weights().items():
        assert abs(drawn.count(kind) / len(drawn) - share) < 0.03, kind
    assert {i.cause for i in g.incidents} <= set(faults.MIX)
    assert all(i.gpu is None for i in g.incidents if faults.KINDS[i.kind].scope == "node")


def test_the_learners_seed_is_hmac_of_the_course_secret(monkeypatch):
    expected = hmac.new(b"s3cret", b"alice\x00project", hashlib.sha256).hexdigest()
    assert timeline.seed_for("s3cret", "alice") == expected
    gameday = str(grade.GAMEDAY)
    alice, again = timeline.for_learner(gameday, "alice", "s3cret"), timeline.for_learner(gameday, "alice", "s3cret")
    bob = timeline.for_learner(gameday, "bob", "s3cret")
    assert alice.digest() == again.digest() != bob.digest() != timeline.for_learner(gameday, "alice", "other").digest()
    assert alice.learner == "alice" and len(alice.incidents) >= 6
    monkeypatch.delenv(variants.SECRET_ENV, raising=False)
    monkeypatch.setattr(variants, "SECRET_FILE", gameday_dir := Path(gameday).parent / "no-such-secret")
    with pytest.raises(FleetError, match="per-learner timelines need the course secret, the quiz's: no course secret"):
        timeline.for_learner(gameday, "alice")
    monkeypatch.setenv(variants.SECRET_ENV, "x" * 40)
    assert timeline.for_learner(gameday, "alice").digest() == timeline.for_learner(gameday, "alice", "x" * 40).digest()
    assert not gameday_dir.exists()


def test_a_game_file_round_trips_and_an_edited_one_is_refused(tmp_path):
    g = timeline.load("ci")
    path = tmp_path / "alice.game"
    timeline.write_game(g, path)
    assert timeline.read_game(path).digest() == g.digest()
    outer = json.loads(path.read_text())
    outer["digest"] = "0" * 16
    path.write_text(json.dumps(outer))
    with pytest.raises(FleetError, match="was edited"):
        timeline.read_game(path)
    path.write_text("{not json")
    with pytest.raises(FleetError, match="not a game file"):
        timeline.read_game(path)


@pytest.mark.parametrize("text, message", [
    ("nodes = 2\n[[incident]]\nat_s = 5\nkind = \"meteor\"\n", "kind 'meteor' is not a fault kind"),
    ("nodes = 2\n[[incident]]\nat_s = 5\nkind = \"hbm\"\nnode = 3\n", "node = 3: use 1..2"),
    ("nodes = 2\n[[incident]]\nat_s = 5\nkind = \"hbm\"\ngpu = 8\n", "gpu = 8: use 0..7"),
    ("nodes = 2\n[job]\nmin_nodes = 3\n", "min_nodes = 3 is more than the 2 nodes"),
    ("nodes = 2\n[draw]\ncount = 1\ngap_s = [5]\n", "gap_s = [5]"),
    ("nodes = 2\nduration_s = 10\n[[incident]]\nat_s = 20\nkind = \"hbm\"\n", "not before the end of the game"),
    ("nodes = 2\ncolour = 1\n", "unknown key(s) colour"),
])
def test_a_bad_timeline_is_one_line_naming_the_file(tmp_path, text, message):
    with pytest.raises(FleetError) as err:
        game(text, tmp_path)
    assert message in str(err.value) and str(tmp_path / "t.toml") in str(err.value) and "\n" not in str(err.value)


# ---- the engine ---------------------------------------------------------------------------------------------

def test_one_throttled_gpu_slows_every_rank(tmp_path):
    g = game(SMALL + "[[incident]]\nat_s = 100\nkind = \"thermal\"\nnode = 1\ngpu = 5\n", tmp_path)
    e = Engine(g)
    e.advance(500)
    assert e.job["state"] == "running"
    assert e.rate == pytest.approx(16 * 1245 / 1980)  # every GPU of both nodes at the hot GPU's clock
    healthy, hot = e.values(e.nodes[1], e.nodes[1].gpus[0]), e.values(e.nodes[0], e.nodes[0].gpus[5])
    assert hot["sm_clock_mhz"] == 1245 and hot["clocks_event_reasons"] == 0x60 and hot["gpm_sm_util_pct"] == 87
    assert healthy["sm_clock_mhz"] == 1980 and healthy["gpm_sm_util_pct"] < 60  # it waits at each all-reduce
    assert e.step_seconds() == pytest.approx(1980 / 1245)


def test_a_lost_gpu_stops_the_job_until_its_node_is_out(tmp_path):
    g = game(SMALL + "[[incident]]\nat_s = 150\nkind = \"gpu-lost\"\nnode = 2\ngpu = 3\n", tmp_path)
    e = Engine(g)
    e.advance(170)
    assert e.job["state"] == "failed" and "fallen off the bus" in e.job["reason"]
    assert e.work == pytest.approx(16 * 100)  # the 50 s since the checkpoint at 100 s are lost
    e.act(170, "restart-job")
    e.advance(230)
    assert e.job["state"] == "failed" and e.job["reason"].startswith("failed at start: node02 GPU 3")
    assert e.act(230, "reset-gpu", "node02", 3)["result"] == "failed"
    assert e.act(231, "drain", "node02")["result"] == "done"
    assert e.act(232, "restart-job")["result"] == "done"
    e.advance(300)
    assert e.job["state"] == "running" and e.job["world"] == [0] and e.rate == 8


def test_a_reset_needs_no_process_on_the_gpu(tmp_path):
    g = game(SMALL + "[[incident]]\nat_s = 150\nkind = \"hbm\"\nnode = 1\ngpu = 2\n", tmp_path)
    e = Engine(g)
    refused = e.act(10, "reset-gpu", "node01", 2)
    assert refused["result"] == "refused" and "in use by the job (rank 2)" in refused["message"]
    e.advance(151)
    gpu = e.nodes[0].gpus[2]
    assert (gpu.remap_pending, gpu.recovery, e.job["state"]) == (1, 1, "failed")
    assert e.act(160, "reset-gpu", "node01", 2)["result"] == "done"
    assert (gpu.remap_pending, gpu.recovery, gpu.ecc_unc, gpu.remapped_unc) == (0, 0, 0, 1)
    assert e.act(161, "restart-job")["result"] == "refused"  # the GPU is still in its diagnostics
    e.advance(191)
    assert e.act(191, "restart-job")["result"] == "done"
    e.advance(242)
    assert e.job["state"] == "running" and e.incidents["i1"].resolved_by == "reset-gpu"


def test_a_hang_burns_the_allocation_until_the_watchdog(tmp_path):
    g = game(SMALL + "[[incident]]\nat_s = 120\nkind = \"hang\"\n", tmp_path)
    e = Engine(g)
    e.advance(200)
    assert e.job["state"] == "hung" and e.values(e.nodes[0], e.nodes[0].gpus[0])["gpu_util_pct"] == 100
    e.advance(330)
    assert e.job["state"] == "failed" and "watchdog" in e.job["reason"]
    assert e.work == pytest.approx(16 * 100)


def test_spares_run_out_and_then_a_node_waits_for_repair(tmp_path):
    g = game(SMALL.replace("nodes = 2", "nodes = 2\nspares = 1"), tmp_path)
    e = Engine(g)
    e.act(10, "drain", "node01")
    assert "1 spare" not in e.act(11, "replace-node", "node01")["message"] and e.spares == 0
    e.act(12, "drain", "node02")
    assert "no spare is left" in e.act(13, "replace-node", "node02")["message"]
    e.advance(80)
    assert e.nodes[0].state == "ready" and e.nodes[0].generation == 1 and e.nodes[1].state == "replacing"


@pytest.mark.parametrize("args, message", [
    (("drain", "node9"), "unknown node 'node9': this fleet has node01..node02"),
    (("reset-gpu", "node01", 8), "unknown GPU 8 on node01"),
    (("reset-gpu", "node01", None), "unknown GPU None on node01"),
    (("restart-job", "node01"), "restart-job takes no node"),
    (("cordon", None), "cordon needs a node"),
    (("reboot", "node01"), "unknown action 'reboot'"),
])
def test_a_bad_command_is_one_line_and_changes_nothing(tmp_path, args, message):
    e = Engine(game(SMALL, tmp_path))
    before = len(e.events)
    with pytest.raises(FleetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        e.act(5, *args)
    assert len(e.events) == before


def test_a_command_after_the_game_ended_is_refused(tmp_path):
    e = Engine(game(SMALL, tmp_path))
    e.advance(1000)
    with pytest.raises(FleetError, match="ended at 1000 s"):
        e.act(1001, "drain", "node01")


# ---- node files and the simulator ---------------------------------------------------------------------------

def test_a_node_file_plays_in_the_gpu_simulator(tmp_path, monkeypatch):
    g = game(SMALL.replace("nodes = 2", "nodes = 2\nspares = 1") + "[[incident]]\nat_s = 100\nkind = \"hbm\"\nnode = 1\ngpu = 2\n"
             "[[incident]]\nat_s = 300\nkind = \"gpu-lost\"\nnode = 1\ngpu = 6\n", tmp_path)
    e = Engine(g)
    e.advance(50)
    path = nodes.write(e, e.nodes[0], tmp_path)
    epoch = time.time() - 50
    monkeypatch.setenv(gpusim.live.ENV_FOLLOW, repr(epoch))
    nv = gpusim.simulated_module(str(path), banner=False)
    nv.nvmlInit()
    handle = nv.nvmlDeviceGetHandleByIndex(2)
    assert nv.nvmlDeviceGetUtilizationRates(handle).gpu == 100
    first_energy = nv.nvmlDeviceGetTotalEnergyConsumption(handle)
    e.advance(120)  # the HBM fault: the file is rewritten; the same module reads it again
    nodes.write(e, e.nodes[0], tmp_path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    nv.__gpusim__._checked = 0
    nv.__gpusim__._start = time.time() - 120
    assert nv.nvmlDeviceGetRemappedRows(handle)[2] == 1 and nv.nvmlDeviceGetUtilizationRates(handle).gpu == 0
    assert nv.nvmlDeviceGetTotalEnergyConsumption(handle) > first_energy
    e.advance(310)
    nodes.write(e, e.nodes[0], tmp_path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    nv.__gpusim__._checked, nv.__gpusim__._start = 0, time.time() - 310
    with pytest.raises(nv.NVMLError_GpuIsLost):
        nv.nvmlDeviceGetHandleByIndex(6)
    uuid = nv.nvmlDeviceGetUUID(handle)
    e.act(311, "drain", "node01")
    e.act(312, "replace-node", "node01")
    e.advance(400)
    fresh = nodes.write(e, e.nodes[0], tmp_path)
    assert fresh.name == "node01-r1.toml"
    replaced = gpusim.simulated_module(str(fresh), banner=False)
    replaced.nvmlInit()
    assert replaced.nvmlDeviceGetUUID(replaced.nvmlDeviceGetHandleByIndex(2)) != uuid  # new hardware


def test_the_health_check_runs_unchanged_on_a_node(tmp_path):
    g = game(SMALL + "[[incident]]\nat_s = 10\nkind = \"thermal\"\nnode = 1\ngpu = 4\n", tmp_path)
    e = Engine(g)
    e.advance(200)
    path = nodes.write(e, e.nodes[0], tmp_path)
    from handbook.fleet.daemon import node_env

    health = ROOT / "snippets" / "troubleshooting" / "index" / "01_gpu_health.py"
    done = subprocess.run([sys.executable, str(health), "--check", "clocks", "--check", "straggler", "--json",
                           "--sample-seconds", "0.1"],
                          env=node_env(path, time.time() - 200), capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    report = json.loads(done.stdout)
    assert done.returncode == 2, done.stderr
    verdicts = {name: c["verdict"] for name, c in report["checks"].items()}
    assert verdicts == {"clocks": "CRITICAL", "straggler": "WARN"}
    assert "GPU 4" in json.dumps(report) and "HW thermal slowdown" in json.dumps(report)


# ---- the event log ------------------------------------------------------------------------------------------

def test_a_log_replays_exactly_and_an_edited_one_is_refused(tmp_path):
    events = policies.simulate(timeline.load("practice"), "decision-table")
    engine = journal.rebuild(events, "log")
    assert engine.work == pytest.approx(events[-1]["work"], abs=1e-3)
    edited = [dict(e) for e in events]
    drain = next(e for e in edited if e["type"] == "action" and e["action"] == "drain")
    drain["t"] += 60
    with pytest.raises(FleetError, match="the log was edited"):
        journal.rebuild(edited, "log")


def test_a_torn_last_line_is_dropped_and_a_damaged_line_named(tmp_path):
    events = policies.simulate(timeline.load("ci"), "do-nothing")
    log = tmp_path / "events.jsonl"
    text = "".join(json.dumps(e) + "\n" for e in events)
    log.write_text(text + '{"t": 70.5, "ty')
    assert len(journal.read_events(log)) == len(events)
    lines = text.splitlines()
    lines[3] = lines[3][:20]
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(FleetError, match=r"events.jsonl:4: not a valid event"):
        journal.read_events(log)


# ---- grading ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ci", "practice"])
def test_the_decision_table_passes_and_the_baselines_fail(name):
    g = timeline.load(name)
    scores = {p: grade.grade_events(policies.simulate(g, p), KEY)["percent"] for p in policies.POLICIES}
    assert scores["decision-table"] >= 90
    assert scores["drain-on-alert"] < KEY["pass_mark"] - 10 and scores["do-nothing"] < 25, scores


def alert(t: float, name: str, node: str = "", gpu=None) -> dict:
    return {"t": t, "type": "alert", "name": name, "node": node, "gpu": gpu, "labels": {}, "state": "firing"}


def test_time_to_detect_is_the_first_alert_or_action_naming_the_incident():
    g = timeline.load("ci")
    events = policies.simulate(g, "decision-table", detect_s=10)
    i1 = next(e for e in events if e["type"] == "fault")
    events.insert(1, alert(i1["t"] + 1.5, "GpuXidError", "node01", 3))  # another node: names nothing
    events.insert(1, alert(i1["t"] + 2.5, "GpuRowRemapPending", i1["node"], 4))  # another GPU of its node
    events.insert(1, alert(i1["t"] + 3.0, "GpuRowRemapPending", i1["node"], i1["gpu"]))
    graded = grade.grade_events(events, KEY)
    row = graded["incidents"]["i1"]
    assert (row["detected_after_s"], row["detected_by"]) == (3.0, "GpuRowRemapPending")
    assert row["detect_credit"] == 1.0  # within full_s x time_scale = 6 s
    assert graded["incidents"]["i3"]["detected_by"] == "drain"
    assert 0 < graded["incidents"]["i3"]["detect_credit"] < 1  # the drain came 10 s after


def test_a_wrong_drain_and_an_unwarranted_one_cost_points():
    g = timeline.load("ci")
    base = grade.grade_events(policies.simulate(g, "decision-table"), KEY)
    engine = policies.play(g, "decision-table")
    actions = [dict(e) for e in engine.events if e["type"] == "action"]
    software = next(e for e in engine.events if e["type"] == "fault" and e["kind"] == "software")
    actions.append({"t": software["t"] + 1, "type": "action", "action": "drain", "node": software["node"]})
    actions.append({"t": 2.0, "type": "action", "action": "reset-gpu", "node": "node01", "gpu": 0})
    worse = replay(g, actions)
    started = policies.simulate(g, "do-nothing")[0]
    graded = grade.grade_events([started] + worse.events, KEY)
    assert graded["incidents"]["i2"]["wrong_actions"] == 1
    assert graded["parts"]["penalties"]["unwarranted"] == 0  # node01 was in use at 2 s: the reset was refused
    assert graded["percent"] <= base["percent"] - KEY["penalties"]["wrong"]


def test_the_results_file_has_the_quizs_shape(tmp_path):
    graded = grade.grade_events(policies.simulate(timeline.load("ci"), "drain-on-alert"), KEY)
    out = tmp_path / "results.json"
    grade.results(graded, out)
    data = json.loads(out.read_text())
    quiz_keys = {"quiz", "file", "learner", "points", "of", "percent", "pass_mark", "passed", "objectives", "questions"}
    assert quiz_keys <= set(data) and data["passed"] is False and data["pass_mark"] == KEY["pass_mark"]
    assert set(data["objectives"]) == {"detect", "remedy", "goodput", "penalties"}
    assert set(data["questions"]) == {"i1", "i2", "i3"}


def test_a_key_that_misses_a_kind_is_refused(tmp_path):
    bad = tmp_path / "key.toml"
    bad.write_text(grade.KEY.read_text().replace("[classes.gsp]", "[classes.gsp-renamed]"))
    with pytest.raises(FleetError, match="no such fault kind"):
        grade.load_key(bad)


def test_the_learners_goodput_snippet_agrees_with_the_grader(tmp_path):
    logs = sorted(PROJECT.glob("practice-*.jsonl"))
    done = subprocess.run([sys.executable, str(GOODPUT), *map(str, logs), "--json", str(tmp_path / "g.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "g.json").read_text())["results"]
    for log in logs:
        graded = grade.grade_events(journal.read_events(log), KEY)
        mine = results[json.loads(log.read_text().splitlines()[0])["policy"]]
        assert mine["goodput"] == pytest.approx(graded["job"]["goodput"], abs=1e-4)
        for iid, row in graded["incidents"].items():
            assert mine["incidents"][iid]["gpu_hours_lost"] == pytest.approx(row["gpu_hours_lost"], abs=1e-3)


def test_the_committed_example_runs_are_what_the_documented_command_makes():
    g = timeline.load("practice")
    for policy in policies.POLICIES:
        made = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in policies.simulate(g, policy))
        assert (PROJECT / f"practice-{policy}.jsonl").read_text() == made, (
            f"snippets/labs/project/practice-{policy}.jsonl is stale: python -m handbook.fleet simulate --timeline "
            f"practice --policy {policy} --out snippets/labs/project/practice-{policy}.jsonl")


def test_the_page_states_the_mix_as_faults_py_has_it():
    page = (ROOT / "docs" / "labs" / "project.md").read_text()
    for cause, (count, _) in faults.MIX.items():
        assert f"| {cause} | {count} |" in page, cause


# ---- rules --------------------------------------------------------------------------------------------------

def test_compressing_rules_divides_every_duration():
    text = "      for: 2m\n        expr: increase(x[15m]) > 0 or (y unless y offset 15m) or z[1h:1m]\n"
    assert rules.compress_text(text, 20) == \
        "      for: 6s\n        expr: increase(x[45s]) > 0 or (y unless y offset 45s) or z[180s:3s]\n"
    assert rules.duration(0.0004) == "1ms" and rules.duration(1.5) == "1500ms"
    with pytest.raises(FleetError, match="--factor 0"):
        rules.compress_text(text, 0)


@pytest.mark.skipif(not PROMTOOL, reason="promtool missing: run checks/install-system-deps.sh")
def test_the_rule_files_pass_promtool_compressed_or_not(tmp_path):
    for folder, tests in ((PROJECT, "fleet-rules.test.yml"), (grade.KEY.parent, "reference-rules.test.yml")):
        done = subprocess.run([PROMTOOL, "test", "rules", tests], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    for rule_file in (ROOT / "snippets/labs/lab1/gpu-rules.yml", PROJECT / "fleet-rules.yml",
                      grade.KEY.parent / "reference-rules.yml"):
        out = tmp_path / rule_file.name
        out.write_text(rules.compress(rule_file, 20))
        done = subprocess.run([PROMTOOL, "check", "rules", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


# ---- the CLI and the daemon's files --------------------------------------------------------------------------

def fleet_cli(*args, cwd, timeout=60):
    return subprocess.run([sys.executable, "-m", "handbook.fleet", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_bad_input_is_one_line(tmp_path):
    for args, message in [(("status",), "no fleet here (no state.json)"),
                          (("start", "--timeline", "nope"), "unknown timeline 'nope'"),
                          (("start", "--game", "missing.game"), "missing.game: no such game file"),
                          (("start", "--interval", "0"), "--interval 0"),
                          (("compress-rules", "nope.yml", "--factor", "2"), "nope.yml: no such rule file"),
                          (("exec", "node01"), "give the command after --")]:
        done = fleet_cli(*args, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, (args, done.stderr)
    (tmp_path / "fleet-run").mkdir()
    (tmp_path / "fleet-run" / "state.json").write_text("{oops")
    done = fleet_cli("drain", "node01", cwd=tmp_path)
    assert done.returncode == 2 and "fleet-run/state.json: corrupt state file" in done.stderr
    assert "rebuilds it from events.jsonl" in done.stderr


def test_the_fleet_saves_every_event_and_resumes_where_it_stopped(tmp_path):
    """A fleet with a stand-in exporter (the live checks run the real one): killed with SIGKILL, its state file
    then corrupted, it resumes from the event log with the command it had taken; a port in use is one line."""
    idle = tmp_path / "idle_exporter.py"
    idle.write_text("import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: exit(0))\ntime.sleep(600)\n")
    from handbook.fleet.harness import free_base

    base = str(free_base(5))
    args = ["start", "--timeline", "ci", "--base-port", base, "--exporter", str(idle), "--interval", "1"]
    first = subprocess.Popen([sys.executable, "-m", "handbook.fleet", *args], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "fleet-run" / "state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        busy = fleet_cli(*args, "--dir", "other", cwd=tmp_path)
        assert busy.returncode == 2 and f"port {base} (the job's metrics and the control API) is in use" in busy.stderr
        drained = fleet_cli("drain", "node03", cwd=tmp_path)
        assert drained.returncode == 0 and "node03 drained" in drained.stdout
        state = json.loads((tmp_path / "fleet-run" / "state.json").read_text())
        assert [n["state"] for n in state["nodes"]] == ["ready", "ready", "drained", "ready"]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    (tmp_path / "fleet-run" / "state.json").write_text("{")
    again = subprocess.Popen([sys.executable, "-m", "handbook.fleet", "start"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = fleet_cli("status", "--json", cwd=tmp_path)
            if status.returncode == 0 and json.loads(status.stdout)["running"]:
                break
            time.sleep(0.3)
        state = json.loads(status.stdout)
        assert [n["state"] for n in state["nodes"]] == ["ready", "ready", "drained", "ready"]
        assert state["pid"] == again.pid and state["t"] > 0
        assert fleet_cli("stop", cwd=tmp_path).returncode == 0
        out = again.communicate(timeout=30)[0]
    finally:
        if again.poll() is None:
            again.kill()
    assert "resumed the game day" in out and "state.json was missing or corrupt: rebuilt from events.jsonl" in out
    events = journal.read_events(tmp_path / "fleet-run" / "events.jsonl")
    assert [e["type"] for e in events].count("fleet_resumed") == 1 and events[-1]["type"] == "fleet_stopped"
    journal.rebuild(events, "events.jsonl")


def test_the_jobs_metrics_carry_full_precision_timestamps(tmp_path, monkeypatch):
    """Seen failing before the fix: 6 significant digits put the last step ~1000 s in the past, and the job's
    TrainingJobStalled alert fired on a healthy job."""
    from handbook.fleet.daemon import Fleet
    from handbook.fleet.harness import free_base

    monkeypatch.chdir(tmp_path)
    fleet = Fleet(Path("relative-run"), timeline.load("ci"), base_port=free_base(5), quiet=True)
    try:
        assert fleet.folder.is_absolute()  # the exporters run in it: their scenario paths must not be relative
        metrics = dict(line.rsplit(" ", 1) for line in fleet.job_metrics().splitlines() if not line.startswith("#"))
        assert abs(float(metrics["training_last_step_timestamp_seconds"]) - time.time()) < 5
        assert metrics['training_job_state{state="running"}'] == "1" and metrics["training_world_size_gpus"] == "32"
    finally:
        fleet.journal.close()
