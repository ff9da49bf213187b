"""The quiz, learner side (handbook/course/quiz/, docs/assessment/): the public bank, the format check, the hardened reader.

Nothing here reads the key or the course secret: this is what a learner's copy of the handbook can run.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from handbook.course.quiz import (
    BANK,
    QuizError,
    __main__ as cli,
    answers,
    bank as bank_module,
    render,
    variants,
    yamlines,
)

BANK_DATA = bank_module.load()
FIXTURES = Path(__file__).parent / "fixtures" / "quiz"


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error(capsys, *args, starts="", contains=()):
    """Bad input: exit 2 and exactly one line on stderr, no traceback."""
    code, out, err = run(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, out, err)
    assert lines[0].startswith(starts) and "Traceback" not in err, lines[0]
    for word in contains:
        assert word in lines[0], lines[0]
    return lines[0]


def sheet(path: Path, body: dict, learner="ada", variant="practice") -> Path:
    path.write_text(yaml.safe_dump({"learner": learner, "variant": variant, "answers": body}, sort_keys=False))
    return path


# ---- the bank ------------------------------------------------------------------------------------------------

def test_every_paper_covers_every_objective_with_the_pass_rule():
    """Five objectives, each >= 8 questions and >= 15 % of the points on every paper; 100 points; 80 % and 60 %."""
    assert BANK_DATA.paper_points == 100
    assert (BANK_DATA.pass_overall, BANK_DATA.pass_objective) == (80, 60)
    assert set(BANK_DATA.objectives) == {1, 2, 3, 4, 5}
    for objective, count in BANK_DATA.objective_questions().items():
        assert count >= 8, f"objective {objective}: {count} questions a paper"
        assert BANK_DATA.objective_points()[objective] * 100 >= 15 * BANK_DATA.paper_points, objective
    for pool in BANK_DATA.pools.values():
        assert len(pool.members) > pool.choose or pool.id == "drills", f"pool {pool.id} chooses all it has"
    assert {q.kind for q in BANK_DATA.questions} == {"single", "multiple", "numeric", "output", "drill"}


def test_cuda_ecosystem_and_capacity_are_asked():
    teaches = [q.teaches.split("/")[0] for q in BANK_DATA.questions]
    assert teaches.count("cuda") >= 6 and teaches.count("capacity") >= 5
    # troubleshooting is the largest objective, no longer most of the bank
    assert sum(q.objective == 5 for q in BANK_DATA.questions) < len(BANK_DATA.questions) / 2


def test_every_question_teaches_an_existing_heading():
    assert bank_module.unresolved(BANK_DATA) == []


def test_output_items_show_raw_output_never_a_diagnosis():
    """Recorded stdout or the simulator's nvidia-smi: no program that prints its own verdict under the output."""
    verdict_words = ("drain", "rma", "take the gpu out", "reset the gpu", "look for", "restore", ": the gpu is too hot")
    for q in (q for q in BANK_DATA.questions if q.kind == "output"):
        assert set(q.output) in ({"recording"}, {"recording", "lines"}, {"scenario", "nvidia-smi"}), q.id
        text, source = render.output_text(q)
        assert text.strip() and ("recorded by" in source or "GPU simulator" in source), q.id
        assert not any(w in text.lower() for w in verdict_words), f"{q.id}: the output states a diagnosis: {text}"


def test_prompts_and_params_agree():
    for q in BANK_DATA.questions:
        assert bank_module.placeholders(q.prompt) == set(q.params), q.id
        assert q.kind != "numeric" or q.unit, q.id


@pytest.mark.parametrize("edit, message", [
    (("kind: single", "kind: essay"), "kind must be one of"),
    (("pool: arch", "pool: nowhere"), "pool 'nowhere' is not one of"),
    (("id: warp-size", "id: sm-meaning"), "duplicate question id 'sm-meaning'"),
    (("tolerance: 2%", "tolerance: -1"), "tolerance is a number in the unit"),
    (("params: {peak: [500, 800, 1000, 2000], bw: [2, 4, 5, 8]}", "params: {peak: [500]}"), "they must match"),
    (("arch: {objective: 1, choose: 8, points: 2}", "arch: {objective: 1, choose: 80, points: 2}"), "chooses 80"),
    (("    options: {w16: \"16\", w64: \"64\", w32: \"32\", w128: \"128\"}", "    options: {w16: \"16\", w32: \"32\"}"),
     "options needs 3 to 8 entries"),
])
def test_a_malformed_bank_is_one_line_with_its_line_number(tmp_path, edit, message):
    path = tmp_path / "bank.yaml"
    text = BANK.read_text(encoding="utf-8")
    assert edit[0] in text, edit[0]
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(QuizError) as err:
        bank_module.load(path)
    assert message in str(err.value) and str(err.value).startswith("bank.yaml:"), str(err.value)
    assert "\n" not in str(err.value)


def test_anchors_follow_the_toc_slugify(tmp_path):
    page = tmp_path / "p.md"
    page.write_text('# T\n\n## "Util is 100%" but slow\n\n```text\n## not a heading\n```\n\n## Same\n\n## Same\n\n'
                    "## Custom {#my-id}\n\n## `nvidia-smi topo -m`\n")
    assert bank_module.anchors(page) == {"t", "util-is-100-but-slow", "same", "same_1", "my-id", "nvidia-smi-topo-m"}


# ---- the learner's format check ------------------------------------------------------------------------------

def test_the_practice_template_checks_and_a_filled_one_too(tmp_path, capsys):
    blank = tmp_path / "answers.yaml"
    blank.write_text(render.template(BANK_DATA))
    code, out, _ = run(capsys, "check", blank)
    assert code == 0 and f"0 of {len(BANK_DATA.questions)} questions answered" in out and "your-name" in out
    filled = sheet(tmp_path / "mine.yaml", {"warp-size": "b", "prometheus-names": ["a", "c"], "few-blocks": 50,
                                            "drill-page-1": {"verdict": "healthy", "action": "none",
                                                             "evidence": "every check OK"}},
                   learner="ada", variant="0123456789ab")
    code, out, err = run(capsys, "check", filled)
    assert code == 0 and "4 of 4 questions answered" in out and not err


def test_a_percentage_written_as_a_fraction_is_flagged(tmp_path, capsys):
    path = sheet(tmp_path / "a.yaml", {"few-blocks": 0.5})
    code, _, err = run(capsys, "check", path)
    assert code == 0 and "a.yaml:4: warning: few-blocks is in %; 0.5 looks like a fraction (write 50" in err


MALFORMED = {
    "unknown id": ("learner: a\nvariant: practice\nanswers:\n  sm-meaning: b\n  xid-79: b\n", 5, "'xid-79' is not a question of this quiz"),
    "duplicate answer": ("learner: a\nvariant: practice\nanswers:\n  sm-meaning: b\n  sm-meaning: c\n", 5, "duplicate key 'sm-meaning' (first on line 4)"),
    "number as text": ("learner: a\nvariant: practice\nanswers:\n  busbw-from-time: 350 GB/s\n", 4, "busbw-from-time is a numeric question: its answer is a number"),
    "list for single": ("learner: a\nvariant: practice\nanswers:\n  sm-meaning: [a, b]\n", 4, "sm-meaning is a single question: its answer is one letter"),
    "letter out of range": ("learner: a\nvariant: practice\nanswers:\n  sm-meaning: z\n", 4, "sm-meaning: 'z' is not one of its letters (a, b, c, d)"),
    "letter listed twice": ("learner: a\nvariant: practice\nanswers:\n  xid-application-class: [a, a]\n", 4, "lists a twice"),
    "text for multiple": ("learner: a\nvariant: practice\nanswers:\n  xid-application-class: abc\n", 4, "a list of letters"),
    "drill as text": ("learner: a\nvariant: practice\nanswers:\n  drill-page-1: fragmentation\n", 4, "{verdict: WORD, action: WORD"),
    "drill bad verdict": ("learner: a\nvariant: practice\nanswers:\n  drill-page-1:\n    verdict: gremlins\n    action: none\n", 5, "verdict 'gremlins' is not one of"),
    "boolean for numeric": ("learner: a\nvariant: practice\nanswers:\n  weak-scaling: yes\n", 4, "weak-scaling is a numeric question"),
    "not yaml": ("learner: a\nvariant: practice\nanswers:\n  sm-meaning: [b\n  bad\n", 6, "not valid YAML"),
    "no answers key": ("learner: a\n", 1, "an answer file is a mapping with learner:, variant: and answers:"),
    "a list": ("- b\n- c\n", 1, "an answer file is a mapping"),
    "no learner": ("variant: practice\nanswers:\n  sm-meaning: b\n", 1, "learner: must be your cohort login"),
    "no variant": ("learner: a\nanswers:\n  sm-meaning: b\n", 1, "variant: must be your paper's 12-character id"),
    "stray key": ("learner: a\nvariant: practice\nanswer:\n  sm-meaning: b\nanswers: {}\n", 3, "unknown top-level key 'answer'"),
    "long evidence": ("learner: a\nvariant: practice\nanswers:\n  drill-page-1: {verdict: oom, action: none, evidence: "
                      + "x" * 400 + "}\n", 4, "cite at most 300"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_answer_file_gets_one_line(tmp_path, capsys, case):
    text, line, message = MALFORMED[case]
    path = tmp_path / "answers.yaml"
    path.write_text(text, encoding="utf-8")
    one_error(capsys, "check", path, starts=f"answers.yaml:{line}: ", contains=(message,))


REGRESSIONS = {
    "alias-bomb.yaml": "alias-bomb.yaml:4: YAML anchors (&a) are not allowed",
    "deep-nesting.yaml": "deep-nesting.yaml:3: ",  # a depth limit, ours (32) or libyaml's, on line 3
    "duplicate-keys.yaml": "duplicate-keys.yaml:6: duplicate key 'warp-size' (first on line 4)",
    "python-object.yaml": "python-object.yaml:1: YAML tags (tag:yaml.org,2002:python/object/apply:os.system) are not allowed",
    "not-utf8.yaml": "not-utf8.yaml:4: not UTF-8 text (byte 0xe9)",
}


@pytest.mark.parametrize("fixture", REGRESSIONS)
def test_regression_fixtures_are_refused_in_one_line(capsys, fixture):
    line = one_error(capsys, "check", FIXTURES / fixture, starts=REGRESSIONS[fixture])
    if fixture == "deep-nesting.yaml":
        assert "nest" in line, line


def test_a_10_mb_file_is_refused_before_parsing(tmp_path, capsys, monkeypatch):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"learner: ada\nvariant: practice\nanswers:\n" + b"  # padding\n" * (10 * 1024 * 1024 // 12))
    build = yamlines._build

    def parse(events, name, limits):
        assert name != "big.yaml", "parsed a file over the byte cap"
        return build(events, name, limits)

    monkeypatch.setattr(yamlines, "_build", parse)
    one_error(capsys, "check", big, starts="big.yaml: ", contains=("bytes; an answer file is at most 262144 bytes",))


def test_depth_and_node_budgets_hold_while_parsing():
    deep = "answers:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(40))
    with pytest.raises(QuizError, match="nested more than 32 levels deep"):
        yamlines.loads(deep, "d.yaml")
    wide = "answers: [" + ", ".join("1" for _ in range(10_001)) + "]\n"
    with pytest.raises(QuizError, match="more than 10000 values"):
        yamlines.loads(wide, "w.yaml")
    with pytest.raises(QuizError, match="a value of 9000 characters"):
        yamlines.loads("a: " + "x" * 9000 + "\n", "s.yaml")
    with pytest.raises(QuizError, match="a second YAML document"):
        yamlines.loads("a: 1\n---\nb: 2\n", "t.yaml")


def test_links_folders_and_fifos_are_never_opened(tmp_path, capsys):
    real = sheet(tmp_path / "real.yaml", {})
    (tmp_path / "link.yaml").symlink_to(real)
    one_error(capsys, "check", tmp_path / "link.yaml", starts="link.yaml: a symbolic link")
    (tmp_path / "dir.yaml").mkdir()
    one_error(capsys, "check", tmp_path / "dir.yaml", starts="dir.yaml: no such file (it is a folder)")
    import os

    os.mkfifo(tmp_path / "fifo.yaml")
    one_error(capsys, "check", tmp_path / "fifo.yaml", starts="fifo.yaml: not a regular file")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab:- []{}&*!,'\"\n\t#|>?%@`0123456789.")), max_size=300))
def test_fuzz_the_reader_never_raises_anything_but_one_line(text):
    try:
        root = yamlines.loads(text, "f.yaml")
        found = answers.check_tree(root, Path("f.yaml"), BANK_DATA, "f.yaml")
    except QuizError as err:
        assert "\n" not in str(err) and str(err).startswith("f.yaml")
        return
    if isinstance(found, list):
        assert all("\n" not in line and line.startswith("f.yaml") for line in found)


answer_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([q.id for q in BANK_DATA.questions] + ["nope"]), answer_values, max_size=6))
def test_fuzz_answer_values_are_accepted_or_refused_in_one_line(body):
    text = yaml.safe_dump({"learner": "ada", "variant": "practice", "answers": body}, allow_unicode=True)
    try:
        found = answers.check_tree(yamlines.loads(text, "f.yaml"), Path("f.yaml"), BANK_DATA, "f.yaml")
    except QuizError as err:
        assert "\n" not in str(err)
        return
    if not isinstance(found, list):
        assert set(found.answers) <= set(BANK_DATA.by_id)


def test_the_commands_as_learners_run_them(tmp_path):
    """Through `python -m handbook.quiz`, in a fresh process, with no key and no secret."""
    def quiz(*args):
        env = {k: v for k, v in __import__("os").environ.items() if k != variants.SECRET_ENV}
        return subprocess.run([sys.executable, "-m", "handbook.quiz", *map(str, args)], capture_output=True,
                              text=True, cwd=tmp_path, env=env)

    (tmp_path / "answers.yaml").write_text(quiz("template").stdout)
    done = quiz("check", "answers.yaml")
    assert done.returncode == 0 and "format OK" in done.stdout
    (tmp_path / "answers.yaml").write_text("learner: a\nvariant: practice\nanswers:\n  weak-scaling: [90]\n")
    bad = quiz("check", "answers.yaml")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "answers.yaml:4: weak-scaling is a numeric question: its answer is a number, e.g. 12.5 (in %, without the unit), not [90]"]
