"""LMS export (handbook/course/quiz/export.py): Canvas QTI 1.2 and Moodle XML, re-parsed with defusedxml and checked
against the bank and the key: every question a group/category, every variant right, points and feedback kept."""
import json
import zipfile

import pytest
from defusedxml import ElementTree as SafeET

from handbook.course.quiz import __main__ as cli, bank as bank_module, key as key_module

BANK_DATA = bank_module.load()
KEY_DATA = key_module.load(BANK_DATA)
NS = {"q": "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("lms")
    assert cli.main(["export", "--format", "qti", str(out)]) == 0
    assert cli.main(["export", "--format", "moodle", str(out)]) == 0
    return out


def test_qti_package_round_trips(exported):
    (package,) = exported.glob("*-qti.zip")
    with zipfile.ZipFile(package) as zf:
        names = zf.namelist()
        assert "imsmanifest.xml" in names and not any(".." in n or n.startswith("/") for n in names)
        manifest = SafeET.fromstring(zf.read("imsmanifest.xml"))
        hrefs = [f.get("href") for f in manifest.iter("{http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1}file")]
        assert set(hrefs) <= set(names) and len(hrefs) == 2
        (assessment_name,) = [n for n in names if n.endswith(".xml") and "meta" not in n and n != "imsmanifest.xml"]
        root = SafeET.fromstring(zf.read(assessment_name))
        meta = SafeET.fromstring(zf.read(assessment_name.rsplit("/", 1)[0] + "/assessment_meta.xml"))
    groups = root.findall(".//q:section[@ident='root_section']/q:section", NS)
    assert {g.get("ident").removeprefix("group-") for g in groups} == set(BANK_DATA.by_id)
    points = 0
    for group in groups:
        q = BANK_DATA.by_id[group.get("ident").removeprefix("group-")]
        assert group.find(".//q:selection_number", NS).text == "1"
        assert group.find(".//q:points_per_item", NS).text == str(q.points)
        items = group.findall("q:item", NS)
        entry = KEY_DATA[q.id]
        assert len(items) == (len(entry.variants) if q.kind == "drill" else len(items)) and items
        if q.params:
            assert len(items) > 1, f"{q.id}: its parameters are pre-rendered into several variants"
        points += q.points
        for item in items:
            correct = item.find(".//q:respcondition[@continue='No']", NS)
            assert correct.find("q:setvar", NS).text == "100"
            labels = [r.get("ident") for r in item.iter("{%s}response_label" % NS["q"])]
            if q.kind == "numeric":
                low = float(correct.find(".//q:vargte", NS).text)
                high = float(correct.find(".//q:varlte", NS).text)
                assert low <= high
                continue
            right = [v.text for v in correct.iter("{%s}varequal" % NS["q"])]
            if q.kind == "multiple":
                negated = {v.text for n in correct.iter("{%s}not" % NS["q"]) for v in n}
                right = [r for r in right if r not in negated]
                assert len(right) == len(entry.answer) and set(labels) == set(right) | negated
            else:
                assert len(right) == 1 and right[0] in labels
            if q.kind in ("single", "output", "multiple"):
                keys = list(q.options)
                want = entry.answer if q.kind == "multiple" else (entry.answer,)
                assert sorted(int(r.rsplit("-o", 1)[1]) for r in right) == sorted(keys.index(k) for k in want)
                feedback = {f.get("ident") for f in item.findall("q:itemfeedback", NS)}
                assert ("general_fb" in feedback) is (entry.reveal != "never")
    assert float(meta.find("{http://canvas.instructure.com/xsd/cccv1p0}points_possible").text) == points


def test_moodle_xml_round_trips(exported):
    (path,) = exported.glob("*-moodle.xml")
    root = SafeET.parse(path).getroot()
    categories = [c.find("category/text").text for c in root.findall("question[@type='category']")]
    assert {c.rsplit("/", 1)[1] for c in categories} == set(BANK_DATA.by_id)
    current = None
    for el in root.findall("question"):
        if el.get("type") == "category":
            current = BANK_DATA.by_id[el.find("category/text").text.rsplit("/", 1)[1]]
            continue
        q, entry = current, KEY_DATA[current.id]
        assert el.find("defaultgrade").text == str(q.points)
        answers = el.findall("answer")
        if q.kind == "numeric":
            assert el.get("type") == "numerical" and len(answers) == 1 and float(answers[0].find("tolerance").text) >= 0
            continue
        fractions = [float(a.get("fraction")) for a in answers]
        if q.kind == "multiple":
            assert el.find("single").text == "false"
            assert sum(f for f in fractions if f > 0) == pytest.approx(100, abs=0.01)
            assert sum(f > 0 for f in fractions) == len(entry.answer) and min(fractions) == -100
        else:
            assert el.find("single").text == "true" and fractions.count(100) == 1
        if q.kind in ("single", "output", "multiple"):
            keys = list(q.options)
            want = entry.answer if q.kind == "multiple" else (entry.answer,)
            assert sorted(n for n, f in enumerate(fractions) if f > 0) == sorted(keys.index(k) for k in want)
        general = el.find("generalfeedback/text").text or ""
        assert bool(general) is (entry.reveal != "never"), q.id


def test_drill_packs_play_and_hide_the_answer(exported, monkeypatch, tmp_path):
    from handbook.course import drills

    monkeypatch.setenv("HANDBOOK_DRILLS_DIR", str(tmp_path))
    packs = sorted((exported / "drill-packs").iterdir())
    assert len(packs) == sum(len(KEY_DATA[q.id].variants) for q in BANK_DATA.questions if q.kind == "drill")
    for pack in packs:
        data = json.loads((pack / "pack.json").read_text())
        (entry,) = data["drills"].values()
        text = (pack / entry["scenario"]).read_text()
        assert 'description = "a hidden drill scenario"' in text and "#" not in text
        assert not ({"verdict", "action", "why"} & set(entry))
    assert drills.start_graded(packs[0], packs[0].name)[1]["question"].startswith("drill-")


def test_bad_export_arguments_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert cli.main(["export", "--format", "qti", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.strip().endswith("exists and is not a folder; give a folder for the export")
    assert cli.main(["export", "--format", "moodle", "--variants", "0", str(tmp_path / "o")]) == 2
    assert "--variants 0" in capsys.readouterr().err
