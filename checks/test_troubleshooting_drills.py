"""Incident drills: practice drills give feedback and accept one right verdict; graded drills (the quiz's) record a
diagnosis without an oracle, and every hidden scenario is solvable with the health check."""
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from handbook.course import drills
from handbook.course.quiz import bank as bank_module, key as key_module, papers, variants
from troubleshooting_matrix import DIAGNOSTIC, EXPECTED, RUNBOOK, diagnose

KEY = drills.load()
# The checks whose runbook a drill trains; drill-healthy-busy's answer is that nothing fires.
CHECKS_OF = {page: [c for c, p in RUNBOOK.items() if p == page] for page in set(RUNBOOK.values())}
CHECKS_OF["oom.md"] = []  # an OOM is the application's: the node's checks stay OK


def test_practice_drills_have_stable_ids_and_one_right_verdict():
    assert len(KEY) >= 10
    assert all(drills.ID.match(d) for d in KEY)
    assert {"drill-oom-fragmentation", "drill-xid-application", "drill-hung-collective"} <= set(KEY)
    assert all(len(d.verdict) == 1 for d in KEY.values()), "a second accepted verdict lets a wrong diagnosis pass"


@pytest.mark.parametrize("drill_id", list(KEY))
def test_the_right_answer_passes_and_every_wrong_verdict_fails(drill_id):
    drill = KEY[drill_id]
    ok, feedback = drills.grade(drill_id, drill.verdict[0], drill.action[0])
    assert ok and feedback.startswith("PASS") and drill.runbook in feedback
    for verdict in drills.VERDICTS:
        if verdict not in drill.verdict:
            assert not drills.grade(drill_id, verdict, drill.action[0])[0], f"{drill_id}: {verdict} passes"
    wrong_action = next(a for a in drills.ACTIONS if a not in drill.action)
    assert not drills.grade(drill_id, drill.verdict[0], wrong_action)[0]
    ok, feedback = drills.grade(drill_id, "banana", drill.action[0])
    assert not ok and "is not one of" in feedback


def test_power_brake_is_not_thermal():
    """The defect the review named: drill-power-brake accepted thermal-throttle for full marks."""
    assert not drills.grade("drill-power-brake", "thermal-throttle", "drain-node")[0]


@pytest.mark.parametrize("drill_id", [d for d in KEY if KEY[d].runbook in CHECKS_OF or d == "drill-healthy-busy"])
def test_each_practice_drill_is_solvable_with_its_runbooks_check(drill_id):
    # Drills of other chapters' runbooks (../security/...) are proved by those chapters' checks.
    drill = KEY[drill_id]
    assert drill.scenario in EXPECTED, f"{drill_id}: scenario {drill.scenario} has no row in the fault matrix"
    fired = {c for c, v in EXPECTED[drill.scenario].items() if v in ("WARN", "CRITICAL")}
    if drill_id == "drill-healthy-busy" or not CHECKS_OF.get(drill.runbook):
        assert not fired  # nothing wrong, or the application's fault (an OOM): no node check may fire
    else:
        assert fired & set(CHECKS_OF[drill.runbook]), f"{drill_id}: {drill.runbook}'s checks do not fire"


def test_graded_drills_use_hidden_scenarios_that_the_health_check_solves():
    """Every graded variant: a scenario only the key knows, none of the practice ones, whose check fires."""
    bank = bank_module.load()
    key = key_module.load(bank)
    graded = [v for q in bank.questions if q.kind == "drill" for v in key[q.id].variants]
    assert len(graded) >= 9 and len({v.verdict for v in graded}) >= 8
    public = {drills.gpusim.scenario.find(d.scenario.split("@")[0]).read_text() for d in KEY.values()}
    assert not {v.scenario.read_text() for v in graded} & public
    specs = [str(v.scenario) + ("" if v.at is None else f"@{v.at:g}") for v in graded]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(4) as pool:
        extra = [() if v.check == "none" else ("--check", v.check) for v in graded]
        reports = list(pool.map(lambda a: diagnose(a[0], *a[1], cwd=tmp)[:2], zip(specs, extra)))
    for v, (code, report) in zip(graded, reports):
        fired = {c for c, r in report["checks"].items() if r["verdict"] in ("WARN", "CRITICAL")}
        if v.check == "none":
            assert code == 0 and not fired, f"{v.scenario.name}: a healthy variant fires {fired}"
        else:
            assert v.check in fired, f"{v.scenario.name}: --check {v.check} does not fire ({fired})"


def test_a_graded_drill_records_the_diagnosis_and_prints_no_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDBOOK_DRILLS_DIR", str(tmp_path / "state"))
    bank = bank_module.load()
    key = key_module.load(bank)
    written = papers.issue(bank, key, variants.TEST_SECRET, ["ada"], tmp_path / "papers")[0]
    pack = json.loads((written / "drills" / "pack.json").read_text())
    slot, entry = next(iter(pack["drills"].items()))
    assert not {"verdict", "action", "why", "evidence"} & set(entry)
    hidden = (written / "drills" / entry["scenario"]).read_text()
    assert "#" not in hidden and 'description = "a hidden drill scenario"' in hidden
    run = [sys.executable, "-m", "handbook.drills"]
    started = subprocess.run(run + ["start", "--pack", "drills", slot], capture_output=True, text=True, cwd=written,
                             env={**__import__("os").environ})
    assert started.returncode == 0, started.stderr
    token = started.stdout.split()[1]
    variant = next(v for v in key[entry["question"]].variants if v.pager == entry["pager"])
    done = subprocess.run(run + ["answer", token, "--verdict", "oom", "--action", "none", "--evidence", "looked at it",
                                 "--into", "answers.yaml"], capture_output=True, text=True, cwd=written)
    assert done.returncode == 0 and "recorded your diagnosis" in done.stdout
    shown = (done.stdout + done.stderr).lower()
    for secret in (variant.why.lower()[:40], f"verdict: not", "pass", "fail", variant.verdict):
        assert secret not in shown.replace("--verdict", ""), f"the runner printed {secret!r}"
    recorded = yaml.safe_load((written / "answers.yaml").read_text())["answers"][entry["question"]]
    assert recorded == {"verdict": "oom", "action": "none", "evidence": ["looked at it"]}
    # a bad word is refused in one line and the answer file is left as it was
    before = (written / "answers.yaml").read_text()
    bad = subprocess.run(run + ["answer", token, "--verdict", "gremlins", "--action", "none"], capture_output=True,
                         text=True, cwd=written)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert (written / "answers.yaml").read_text() == before


def test_a_practice_session_hides_the_scenario_and_gives_feedback(tmp_path, monkeypatch):
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
