"""Incident drills: the key is well-formed, every drill is solvable with the health check, and grading is strict."""
import json
import subprocess
import sys

import pytest

from handbook import drills
from troubleshooting_matrix import DIAGNOSTIC, EXPECTED, RUNBOOK

KEY = drills.load()
# The checks whose runbook a drill trains; drill-healthy-busy's answer is that nothing fires.
CHECKS_OF = {page: [c for c, p in RUNBOOK.items() if p == page] for page in set(RUNBOOK.values())}
CHECKS_OF["oom.md"] = []  # an OOM is the application's: the node's checks stay OK


def test_key_has_ten_or_more_drills_with_stable_ids():
    assert len(KEY) >= 10
    assert all(drills.ID.match(d) for d in KEY)
    assert {"drill-oom-fragmentation", "drill-xid-application", "drill-hung-collective"} <= set(KEY)


@pytest.mark.parametrize("drill_id", list(KEY))
def test_the_keys_answer_passes_and_wrong_answers_fail(drill_id):
    drill = KEY[drill_id]
    ok, feedback = drills.grade(drill_id, drill.verdict[0], drill.action[0])
    assert ok and feedback.startswith("PASS") and drill.runbook in feedback
    wrong_verdict = next(v for v in drills.VERDICTS if v not in drill.verdict)
    wrong_action = next(a for a in drills.ACTIONS if a not in drill.action)
    assert not drills.grade(drill_id, wrong_verdict, drill.action[0])[0]
    assert not drills.grade(drill_id, drill.verdict[0], wrong_action)[0]
    ok, feedback = drills.grade(drill_id, "banana", drill.action[0])
    assert not ok and "is not one of" in feedback


def test_application_xids_are_never_answered_with_hardware_actions():
    drill = KEY["drill-xid-application"]
    assert not {"reset-gpu", "drain-node"} & set(drill.action)
    assert not drills.grade("drill-xid-application", "xid-application", "drain-node")[0]


@pytest.mark.parametrize("drill_id", list(KEY))
def test_each_drill_is_solvable_with_its_runbooks_check(drill_id):
    """The drill's hidden scenario is one the fault matrix specifies, and there it fires its runbook's check."""
    drill = KEY[drill_id]
    assert drill.scenario in EXPECTED, f"{drill_id}: scenario {drill.scenario} has no row in the fault matrix"
    fired = {c for c, v in EXPECTED[drill.scenario].items() if v in ("WARN", "CRITICAL")}
    if drill_id == "drill-healthy-busy" or not CHECKS_OF.get(drill.runbook):
        assert not fired  # nothing wrong, or the application's fault (an OOM): no node check may fire
    else:
        assert fired & set(CHECKS_OF[drill.runbook]), f"{drill_id}: {drill.runbook}'s checks do not fire"


def test_a_session_hides_the_scenario_and_grades(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDBOOK_DRILLS_DIR", str(tmp_path / "state"))
    run = [sys.executable, "-m", "handbook.drills"]
    started = subprocess.run(run + ["start", "drill-hung-collective"], capture_output=True, text=True, check=True)
    token = started.stdout.split()[1]
    assert "hung-collective" not in started.stdout.replace("drill-hung-collective", "")
    diag = subprocess.run(run + ["run", token, "--", sys.executable, str(DIAGNOSTIC), "--json", "--check",
                                 "collective", "--sample-seconds", "0.1", "--hang-seconds", "0.3"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert "hung-collective" not in diag.stderr, "the simulator's banner gave the scenario away"
    assert diag.returncode == 1 and json.loads(diag.stdout)["checks"]["collective"]["verdict"] == "WARN"
    right = subprocess.run(run + ["answer", token, "--verdict", "hung-collective", "--action", "restart-app"],
                           capture_output=True, text=True)
    wrong = subprocess.run(run + ["answer", token, "--verdict", "straggler", "--action", "drain-node"],
                           capture_output=True, text=True)
    assert (right.returncode, wrong.returncode) == (0, 1) and right.stdout.startswith("PASS")
    bad = subprocess.run(run + ["answer", "nope", "--verdict", "x", "--action", "y"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "token" in bad.stderr


def test_random_start_picks_a_drill(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDBOOK_DRILLS_DIR", str(tmp_path))
    token, drill = drills.start(None)
    assert drill.id in KEY and drills.session(token)[0] == drill.id
