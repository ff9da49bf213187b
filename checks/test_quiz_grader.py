"""The quiz, instructor side: key, per-learner variants, grading, feedback, cohorts, Gradescope, rotation, guessing.

Uses the key (instructor/quiz/key.yaml) and the checks' test secret; never ships to learners.
"""
import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from handbook.course.quiz import QuizError, __main__ as cli, audit, bank as bank_module, cohort, grade, gradescope
from handbook.course.quiz import key as key_module, variants

BANK_DATA = bank_module.load()
KEY_DATA = key_module.load(BANK_DATA)
SECRET = variants.TEST_SECRET
FIXTURES = Path(__file__).parent / "fixtures" / "quiz"


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv(variants.SECRET_ENV, SECRET.decode())


def right(inst):
    e, q = KEY_DATA[inst.id], inst.question
    if q.kind in ("single", "output"):
        return inst.letter_of(e.answer)
    if q.kind == "multiple":
        return sorted(inst.letter_of(k) for k in e.answer)
    if q.kind == "numeric":
        return round(e.answer(inst.params), 6)
    v = grade.drill_variant(e, inst)
    return {"verdict": v.verdict, "action": v.action, "evidence": v.evidence[0]}


def wrong(inst):
    e, q = KEY_DATA[inst.id], inst.question
    if q.kind in ("single", "output"):
        return next(letter for letter, k in inst.letters.items() if k != e.answer)
    if q.kind == "multiple":
        return [next(letter for letter, k in inst.letters.items() if k not in e.answer)]
    if q.kind == "numeric":
        return round(e.answer(inst.params) * 3 + 7, 3)
    v = grade.drill_variant(e, inst)
    return {"verdict": "thermal-throttle" if v.verdict != "thermal-throttle" else "oom", "action": v.action}


def write(path: Path, learner: str, wrong_ids=(), *, variant=None, override=None) -> Path:
    sheet = variants.paper(BANK_DATA, SECRET, learner)
    body = {i.id: (wrong(i) if i.id in wrong_ids else right(i)) for i in sheet.instances}
    body.update(override or {})
    path.write_text(yaml.safe_dump({"learner": learner, "variant": variant or sheet.variant, "answers": body},
                                   sort_keys=False))
    return path


def graded(path: Path) -> dict:
    return cohort.grade_file(path, BANK_DATA, KEY_DATA, SECRET)


# ---- key and variants ------------------------------------------------------------------------------------------

def test_key_lives_outside_docs_and_matches_the_bank():
    assert "docs" not in key_module.HIDDEN_SCENARIOS.parts[-3:]
    assert set(KEY_DATA) == set(BANK_DATA.by_id)
    for qid, entry in KEY_DATA.items():
        assert entry.reveal in key_module.REVEALS
        if BANK_DATA.by_id[qid].kind == "drill":
            assert entry.reveal == "never", f"{qid}: a graded drill's answer is never revealed"


def test_variants_are_deterministic_per_learner_and_differ_between_learners():
    a1, a2, b = (variants.paper(BANK_DATA, SECRET, x) for x in ("ada", "ADA ", "bob"))
    assert a1 == a2, "the same learner gets the same paper (regrading is deterministic)"
    assert a1.variant != b.variant and [i.id for i in a1.instances] != [i.id for i in b.instances]
    other = variants.paper(BANK_DATA, b"another course secret of 32+ characters!!", "ada")
    assert other.variant != a1.variant, "the paper depends on the course secret"
    # over many learners: every question is drawn, options are shuffled, parameters vary
    papers = [variants.paper(BANK_DATA, SECRET, f"l{n}") for n in range(60)]
    drawn = {i.id for p in papers for i in p.instances}
    assert drawn == set(BANK_DATA.by_id)
    first = {p.by_id["sm-meaning"].letters["a"] for p in papers if "sm-meaning" in p.by_id}
    assert len(first) == 4
    assert len({p.by_id["busbw-from-time"].params["ms"] for p in papers if "busbw-from-time" in p.by_id}) == 3


def test_calculation_answers_follow_from_their_formulas():
    """Each numeric answer recomputed here, independently, for one parameter set of each question."""
    expected = {
        "critical-intensity": ({"peak": 1000, "bw": 4}, 250),
        "few-blocks": ({"blocks": 33}, 25),
        "copy-bandwidth": ({"size": 1, "ms": 2}, 1000),
        "pcie-link": ({"gts": 32, "lanes": 16}, 63.015),
        "mfu-step": ({"params_b": 7, "step_s": 6}, 43.75),
        "training-gpu-hours": ({"params_b": 7, "tokens_t": 1, "mfu": 40}, 29.1667),
        "kv-cache-token": ({"layers": 80, "kv_heads": 8, "head_dim": 128}, 320),
        "young-interval": ({"mtbf_h": 3, "ckpt_min": 2}, 26.833),
        "cost-useful-hour": ({"price": 2, "util": 50, "goodput": 80}, 5),
        "busbw-from-time": ({"size_gb": 4, "n": 8, "ms": 20}, 350),
        "weak-scaling": ({"t1": 1000, "tn": 3600}, 90),
        "adam-memory": ({"params_b": 7}, 112),
        "pipeline-bubble": ({"p": 8, "m": 16}, 43.75),
        "nccl-default-timeout": ({}, 10),
    }
    numeric = {q.id for q in BANK_DATA.questions if q.kind == "numeric"}
    assert numeric == set(expected)
    for qid, (params, value) in expected.items():
        assert KEY_DATA[qid].answer(params) == pytest.approx(value, rel=1e-3), qid


def test_output_items_show_the_keys_evidence():
    from handbook.course.quiz import render

    for q in (q for q in BANK_DATA.questions if q.kind == "output"):
        assert KEY_DATA[q.id].evidence in render.output_text(q)[0], q.id


def test_a_key_for_another_bank_or_version_is_one_line(tmp_path):
    text = (key_module.KEY).read_text(encoding="utf-8")
    for old, new, message in (('version: "2027.1"', 'version: "2026.4"', "this key is for version"),
                              ("  warp-size:\n    answer: w32", "  warp-size:\n    answer: w33", "is not one of its options"),
                              ("      w16: A half-warp; the warp is 32 threads.\n", "", "give the misconception of every wrong option")):
        bad = tmp_path / "key.yaml"
        assert old in text, old
        bad.write_text(text.replace(old, new, 1))
        with pytest.raises(QuizError, match=message):
            key_module.load(BANK_DATA, bad)


# ---- grading and feedback ----------------------------------------------------------------------------------------

def test_perfect_pass_rule_boundaries_and_per_objective_floor(tmp_path):
    result = graded(write(tmp_path / "ada.yaml", "ada"))
    assert result["status"] == "graded" and result["points"] == 100 and result["passed"]
    sheet = variants.paper(BANK_DATA, SECRET, "ada")
    spread = [i.id for n in range(1, 6) for i in [x for x in sheet.instances if x.question.objective == n][:2]]
    # 80 points (two wrong on every objective): passes; 78 points: fails
    assert graded(write(tmp_path / "a.yaml", "ada", spread))["passed"] is True
    extra = next(i.id for i in sheet.instances if i.question.objective == 5 and i.id not in spread
                 and i.question.points == 2)
    r79 = graded(write(tmp_path / "a.yaml", "ada", spread + [extra]))
    assert r79["points"] == 78 and not r79["passed"] and r79["failed_rules"][0].startswith("overall 78")
    # 82 % overall, but objective 1 at 50 %: fails on the objective floor
    obj1 = [i.id for i in sheet.instances if i.question.objective == 1][:4]
    r = graded(write(tmp_path / "a.yaml", "ada", obj1))
    assert r["percent"] >= 80 and not r["passed"] and r["failed_rules"] == ["objective 1 50 % < 60 %"]
    obj1 = obj1[:3]
    assert graded(write(tmp_path / "a.yaml", "ada", obj1))["passed"], "5 of 8 on an objective is 62.5 %: enough"


def test_feedback_names_the_misconception_and_the_reveal_policy_hides_what_it_must(tmp_path):
    sheet = variants.paper(BANK_DATA, SECRET, "ada")
    single = next(i for i in sheet.instances if i.question.kind == "single")
    numeric = next(i for i in sheet.instances if i.question.kind == "numeric" and KEY_DATA[i.id].misconceptions)
    drill = next(i for i in sheet.instances if i.question.kind == "drill")
    formula, label = next(iter(KEY_DATA[numeric.id].misconceptions.items()))
    result = graded(write(tmp_path / "a.yaml", "ada", {single.id, drill.id},
                          override={numeric.id: round(formula(numeric.params), 6)}))
    by_id = {q["id"]: q for q in result["questions"]}
    chosen = single.letters[wrong(single)]
    assert by_id[single.id]["status"] == "wrong" and by_id[single.id]["points"] == 0
    assert by_id[single.id]["misconception"] == KEY_DATA[single.id].misconceptions[chosen]
    assert by_id[numeric.id]["misconception"] == label
    assert by_id[drill.id]["points"] == 0, "a wrong diagnosis scores nothing"
    graded_view = grade.learner_view(result, "graded")
    closed_view = grade.learner_view(result, "closed")
    for view, phase in ((graded_view, "graded"), (closed_view, "closed")):
        for q in view["questions"]:
            policy = KEY_DATA[q["id"]].reveal
            shown = policy == "after-grading" or (policy == "after-close" and phase == "closed")
            assert ("right" in q) is shown and ("misconception" in q) is shown, (q["id"], phase)
    drill_view = next(q for q in closed_view["questions"] if q["id"] == drill.id)
    assert "right" not in drill_view and "explanation" not in drill_view, "a drill's answer is never revealed"
    assert "scenario" not in json.dumps(graded_view["questions"])


def test_unit_slips_are_caught_and_named(tmp_path):
    sheet = variants.paper(BANK_DATA, SECRET, "ada")
    inst = next(i for i in sheet.instances if i.question.kind == "numeric" and i.question.unit == "%")
    value = KEY_DATA[inst.id].answer(inst.params)
    result = graded(write(tmp_path / "a.yaml", "ada", override={inst.id: round(value / 100, 8)}))
    q = next(q for q in result["questions"] if q["id"] == inst.id)
    assert q["points"] == 0 and "100x smaller: a unit slip" in q["note"]


def test_a_drill_needs_verdict_action_and_evidence(tmp_path):
    sheet = variants.paper(BANK_DATA, SECRET, "ada")
    inst = next(i for i in sheet.instances if i.question.kind == "drill")
    v = grade.drill_variant(KEY_DATA[inst.id], inst)
    cases = [({"verdict": v.verdict, "action": v.action, "evidence": v.evidence[0]}, 4),
             ({"verdict": v.verdict, "action": v.action, "evidence": "looked fine"}, 3),
             ({"verdict": v.verdict, "action": "restart-container" if v.action != "restart-container" else "none"}, 0),
             ({"verdict": "ecc-uncorrectable" if v.verdict != "ecc-uncorrectable" else "oom", "action": v.action,
               "evidence": " ".join(v.evidence)}, 0)]
    for answer, points in cases:
        result = graded(write(tmp_path / "a.yaml", "ada", override={inst.id: answer}))
        assert next(q for q in result["questions"] if q["id"] == inst.id)["points"] == points, answer


# ---- a cohort folder ---------------------------------------------------------------------------------------------

def test_every_entry_of_a_cohort_folder_is_reported_and_results_are_always_written(tmp_path, capsys, secret_env,
                                                                                   monkeypatch):
    subs = tmp_path / "subs"
    subs.mkdir()
    write(subs / "ada.yaml", "ada")
    write(subs / "bob.YAML", "bob", ["warp-size"])
    write(subs / "bob-again.txt", "bob")                          # the same learner twice, any extension
    sheet = variants.paper(BANK_DATA, SECRET, "carl")
    from handbook.course.quiz import render
    (subs / "carl").write_text(render.template(BANK_DATA, sheet))  # the untouched template, no extension
    write(subs / "dave.yaml", "dave", variant=sheet.variant)      # another learner's paper
    for name in ("alias-bomb.yaml", "deep-nesting.yaml", "python-object.yaml", "not-utf8.yaml", "duplicate-keys.yaml"):
        (subs / name).write_bytes((FIXTURES / name).read_bytes())
    (subs / "nested").mkdir()
    (subs / "link.yaml").symlink_to(subs / "ada.yaml")
    os.mkfifo(subs / "pipe.yaml")
    # a grader bug on one file must not cost the others their results
    real = grade.score

    def flaky(bank, key, paper, sheet):
        if paper.learner == "eve":
            raise ZeroDivisionError("boom")
        return real(bank, key, paper, sheet)

    monkeypatch.setattr(grade, "score", flaky)
    write(subs / "eve.yaml", "eve")
    out = tmp_path / "cohort.json"
    code = cli.main(["grade", str(subs), "--out", str(out), "--feedback", str(tmp_path / "fb")])
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    status = {e["file"]: e["status"] for e in data["entries"]}
    assert status == {"ada.yaml": "graded", "bob.YAML": "graded", "bob-again.txt": "graded", "carl": "not-attempted",
                      "dave.yaml": "invalid", "alias-bomb.yaml": "invalid", "deep-nesting.yaml": "invalid",
                      "python-object.yaml": "invalid", "not-utf8.yaml": "invalid", "duplicate-keys.yaml": "invalid",
                      "nested": "refused", "link.yaml": "refused", "pipe.yaml": "refused", "eve.yaml": "invalid"}
    assert code == 2 and data["duplicates"] == ["bob"]
    errors = {e["file"]: e.get("error", "") for e in data["entries"]}
    assert "is not the paper issued to dave" in errors["dave.yaml"]
    assert "internal grader error ZeroDivisionError" in errors["eve.yaml"]
    assert "symbolic link" in errors["link.yaml"] and "sub-folders are not read" in errors["nested"]
    assert all(len(line) < 400 for line in printed.splitlines())
    assert printed.count("\n") >= len(status)
    assert (tmp_path / "fb" / "ada.md").is_file() and (tmp_path / "fb" / "ada.gradescope.json").is_file()


def test_results_are_written_even_when_grading_is_interrupted(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    subs.mkdir()
    write(subs / "ada.yaml", "ada")
    write(subs / "bob.yaml", "bob")
    real = cohort.grade_file

    def interrupted(path, *a, **k):
        if path.name == "bob.yaml":
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(cohort, "grade_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cohort.grade_folder(subs, BANK_DATA, KEY_DATA, SECRET, out=tmp_path / "c.json", echo=lambda *_: None)
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["complete"] is False and [e["file"] for e in data["entries"]] == ["ada.yaml"]


def test_no_secret_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(variants.SECRET_ENV, raising=False)
    monkeypatch.setattr(variants, "SECRET_FILE", tmp_path / "none")
    code = cli.main(["grade", str(write(tmp_path / "a.yaml", "ada"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no course secret: set $HANDBOOK_QUIZ_SECRET" in err[0]


# ---- Gradescope --------------------------------------------------------------------------------------------------

GRADESCOPE_SCHEMA = {  # gradescope-autograders.readthedocs.io/en/latest/specs/ (the fields we write)
    "type": "object", "required": ["score", "tests"], "additionalProperties": False,
    "properties": {
        "score": {"type": "number"}, "output": {"type": "string"}, "stdout_visibility": {"enum": ["hidden", "visible"]},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "tests": {"type": "array", "items": {
            "type": "object", "required": ["name", "score", "max_score", "output", "visibility"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "number": {"type": "string"}, "score": {"type": "number"},
                           "max_score": {"type": "number"}, "status": {"enum": ["passed", "failed"]},
                           "output": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                           "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]}}}}}}


def test_results_map_one_to_one_onto_gradescope(tmp_path, secret_env):
    sheet = variants.paper(BANK_DATA, SECRET, "ada")
    wrong_ids = {i.id for i in sheet.instances[::3]}
    result = graded(write(tmp_path / "a.yaml", "ada", wrong_ids))
    gs = gradescope.results(result)
    jsonschema.validate(gs, GRADESCOPE_SCHEMA)
    assert gs["score"] == result["points"] == sum(t["score"] for t in gs["tests"])
    assert len(gs["tests"]) == len(result["questions"])
    for test, q in zip(gs["tests"], result["questions"]):
        assert q["id"] in test["name"] and test["number"] == str(q["number"])
        assert (test["score"], test["max_score"]) == (q["points"], q["max_points"])
        assert test["visibility"] == gradescope.VISIBILITY[q["reveal"]]
        assert (q["explanation"] in test["output"]) is (q["reveal"] != "never"), q["id"]
        assert f"objective-{q['objective']}" in test["tags"]
    # an invalid submission: score 0, the reason, visible at once; and the container command always writes
    invalid = gradescope.results(graded(FIXTURES / "alias-bomb.yaml"))
    jsonschema.validate(invalid, GRADESCOPE_SCHEMA)
    assert invalid["score"] == 0 and invalid["tests"] == [] and "anchors" in invalid["output"]
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "a.yaml").write_text("learner: [")
    (sub / "b.yaml").write_text("")
    assert cli.main(["gradescope", str(sub), str(tmp_path / "results.json")]) == 0
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["score"] == 0 and "exactly one answer file" in written["output"]


# ---- the rotated key and blind guessing --------------------------------------------------------------------------

def test_the_burned_key_scores_like_blind_guessing_on_the_rotated_bank():
    burned = yaml.safe_load((FIXTURES / "burned-key.yaml").read_text())["answers"]
    scores = []
    for n in range(200):
        sheet = variants.paper(BANK_DATA, SECRET, f"copier-{n}")
        points = 0
        for inst in sheet.instances:
            old = burned.get(inst.id)
            q = inst.question
            if old is None or q.kind == "drill":
                continue
            given = (tuple(sorted(old)) if isinstance(old, list) else None) if q.kind == "multiple" else (
                float(old) if q.kind == "numeric" else old)
            if q.kind in ("single", "output") and (not isinstance(given, str) or given not in inst.letters):
                continue
            if q.kind == "multiple" and (given is None or not set(given) <= set(inst.letters)):
                continue
            points += grade.question_result(inst, KEY_DATA[inst.id], given, None)["points"]
        scores.append(points)
    assert sum(scores) / len(scores) <= audit.MAX_BLIND, sum(scores) / len(scores)
    assert max(scores) < BANK_DATA.pass_overall, "no paper passes on the published key"


def test_blind_strategies_score_at_most_35_percent_and_every_paper_covers_every_objective():
    report = audit.run(BANK_DATA, KEY_DATA, papers=200)
    assert report["coverage_ok"], report["problems"]
    assert all(v <= audit.MAX_BLIND for v in report["strategies"].values()), report["strategies"]
    assert set(report["strategies"]) >= {"longest option", "most frequent letter", "option repeating stem words",
                                         "drill-name keyword match", "all of the above"}


def test_the_audit_catches_a_guessable_bank(tmp_path):
    """Make the right option the longest everywhere: the longest-option strategy must then fail the check."""
    key = dict(KEY_DATA)
    bank = BANK_DATA
    questions = []
    for q in bank.questions:
        if q.kind in ("single", "output"):
            options = dict(q.options)
            options[key[q.id].answer] += " This option is written out at far greater length than any other."
            q = type(q)(**{**q.__dict__, "options": options})
        questions.append(q)
    report = audit.run(type(bank)(**{**bank.__dict__, "questions": questions}), key, papers=40)
    assert report["strategies"]["longest option"] > audit.MAX_BLIND and not report["ok"]
