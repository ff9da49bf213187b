"""The fleet game day for real: the CI timeline (three incidents, 70 s, rules 20x faster, 1 s scrapes) played
three times at once, each fleet watched by its own real Prometheus (started as the Lab 1 checks start it):
by the reference responder (instructor/project/responder.py), by a trigger-happy one that drains every node an
alert names, and by nobody. The reference must pass and the other two must fail, from their event logs alone.
The fleets mostly sleep: the whole file costs a few seconds of CPU over about 80 s of wall clock."""
import json
import shutil
import subprocess
import sys
import threading

import pytest

from handbook import ROOT
from handbook.fleet import grade, harness, journal

PROMETHEUS = shutil.which("prometheus")
RUNS = {"reference": "decision-table", "drain-on-alert": "drain-on-alert", "nobody": None}
KEY = grade.load_key()
pytestmark = pytest.mark.skipif(not PROMETHEUS, reason="prometheus missing: run checks/install-system-deps.sh")


@pytest.fixture(scope="module")
def games(tmp_path_factory):
    """The three game days, played in parallel threads (each runs its processes and sleeps)."""
    out, errors = {}, {}

    def play(name, responder):
        try:
            out[name] = harness.run(tmp_path_factory.mktemp(name), "ci", responder)
        except Exception as err:  # reported by the tests that need the run
            errors[name] = err

    threads = [threading.Thread(target=play, args=item) for item in RUNS.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    return out, errors


def run_of(games, name):
    out, errors = games
    assert name in out, f"the {name} game day did not run: {errors.get(name)}"
    return out[name]


def graded(games, name):
    return grade.grade_log(run_of(games, name)["events"])


def test_prometheus_scraped_every_node_and_the_job(games):
    for name in RUNS:
        scrapes = run_of(games, name)["scrapes"]
        by_node = {e["node"] or e["job"]: e for e in scrapes.values()}
        assert set(by_node) == {"node01", "node02", "node03", "node04", "training"}, scrapes
        for node, e in by_node.items():
            assert e["scrapes"] >= 60, (name, node, e)  # about one scrape a second, the whole game long
            if name == "nobody":  # nobody took a node out: every scrape of the game answered
                assert e["up"] >= 60 and e["scrapes"] - e["up"] <= 3, (name, node, e)


def test_the_reference_passes_and_the_baselines_fail(games):
    scores = {name: graded(games, name) for name in RUNS}
    assert scores["reference"]["passed"], grade.summary(scores["reference"])
    for name in ("drain-on-alert", "nobody"):
        assert not scores[name]["passed"], grade.summary(scores[name])
    assert scores["drain-on-alert"]["parts"]["penalties"]["wrong"] >= 1  # it drained for an application's Xid
    assert scores["nobody"]["parts"]["remedy"]["points"] == 0
    assert scores["reference"]["job"]["goodput"] > scores["nobody"]["job"]["goodput"]


def test_real_alerts_named_every_incident_within_the_target(games):
    result = graded(games, "reference")
    zero_s = KEY["detect"]["zero_s"] * 0.05  # no credit after this; a few seconds on an idle machine
    for iid, row in result["incidents"].items():
        assert row["detected_by"] and row["detected_by"].startswith(("Gpu", "Training")), (iid, row)
        assert row["detected_after_s"] <= zero_s / 3, (iid, row)
    events = journal.read_events(run_of(games, "reference")["events"])
    alerts = {e["name"] for e in events if e["type"] == "alert"}
    assert {"GpuXidError", "GpuXidApplicationError", "GpuRowRemapPending", "TrainingJobDown"} <= alerts


def test_a_live_log_replays_exactly_and_reaches_the_end(games):
    for name in RUNS:
        events = journal.read_events(run_of(games, name)["events"])
        journal.rebuild(events, name)
        assert events[-1]["type"] == "game_over" or any(e["type"] == "game_over" for e in events)


def test_each_node_is_watched_by_the_lab1_exporter_on_its_own_simulated_nvml(games):
    folder = run_of(games, "nobody")["events"].parent
    for node in ("node01", "node02", "node03", "node04"):
        log = (folder / "logs" / f"{node}.log").read_text()
        assert f"SIMULATED NVML playing '{node}'" in log and "gpu-exporter INFO serving http://127.0.0.1:" in log


def test_the_learners_goodput_snippet_reads_a_live_log(games, tmp_path):
    log = run_of(games, "reference")["events"]
    done = subprocess.run([sys.executable, str(ROOT / "snippets/labs/project/01_goodput.py"), str(log), "--json",
                           str(tmp_path / "g.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    mine = json.loads((tmp_path / "g.json").read_text())["results"]
    [(_, row)] = mine.items()
    assert row["goodput"] == pytest.approx(graded(games, "reference")["job"]["goodput"], abs=2e-3)
