"""The bank and key as an LMS quiz: a Canvas QTI 1.2 package or Moodle XML, variants pre-rendered.

    python -m handbook.quiz export --format qti OUT      OUT/mod107-quiz-VERSION-qti.zip (Canvas: Import > QTI .zip)
    python -m handbook.quiz export --format moodle OUT   OUT/mod107-quiz-VERSION-moodle.xml (Question bank > Import)

Both also write OUT/drill-packs/: one folder per graded drill variant, the hidden scenario and its pack.json, for
learners to play with `python -m handbook.drills start --pack drill-packs/ID ID` (the drill item names its ID).

How the bank maps (neither LMS runs our parameter templates, so variants are pre-rendered, as
docs/assessment/index.md explains):
- every question is a Canvas question group ("pick 1", points per item) / a Moodle category holding its variants;
  a numeric question has up to --variants instances with different parameters, a drill question one instance per
  hidden scenario, a choice question one instance whose options the LMS shuffles;
- choice feedback: the misconception of each wrong option as its answer feedback, `why` as general feedback,
  except for `reveal: never` questions, which carry neither;
- a drill instance is a single-answer question over verdict/action pairs (the evidence point is the file grader's
  only: an LMS quiz grades verdict and action together);
- "all that apply" is all-or-nothing in Canvas (as in the file grader); Moodle gives 1/k per right option and
  takes everything back for a wrong one, so a subset earns partial credit there.
The LMS quiz asks every question of the bank: pools (choose N of M) are a property of the file-based papers.
"""
from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from handbook.course.quiz import QuizError, render
from handbook.course.quiz.bank import Bank, Question
from handbook.course.quiz.key import Entry
from handbook.course.quiz.papers import hidden_copy
from handbook.course.quiz.variants import Instance

QTI_NS = "http://www.imsglobal.org/xsd/ims_qtiasiv1p2"
CP_NS = "http://www.imsglobal.org/xsd/imsccv1p1/imscp_v1p1"
CANVAS_NS = "http://canvas.instructure.com/xsd/cccv1p0"


def _param_sets(q: Question, k: int) -> list[dict]:
    names = sorted(q.params)
    combos = list(itertools.product(*(q.params[n] for n in names)))
    if not combos or not names:
        return [{}]
    k = max(1, min(k, len(combos)))
    step = len(combos) / k
    return [dict(zip(names, combos[int(i * step)])) for i in range(k)]


def instances(bank: Bank, key: dict[str, Entry], per_question: int) -> list[tuple[Question, list[dict]]]:
    """(question, [variant dicts]) for every question: params, the right answer, options in bank order, feedback."""
    out = []
    for q in sorted(bank.questions, key=lambda q: (q.objective, q.pool, q.id)):
        entry = key[q.id]
        shown = entry.reveal != "never"
        items = []
        if q.kind == "drill":
            pairs = sorted({(v.verdict, v.action) for v in entry.variants})
            for n, v in enumerate(entry.variants, 1):
                options = list(pairs)
                for extra in ((v.verdict, "drain-node"), (v.verdict, "restart-app"), ("healthy", "none")):
                    if extra not in options and len(options) < 6:
                        options.append(extra)
                pack = f"{q.id}-{n}"
                items.append({"id": pack, "prompt": f"{q.prompt}\n\nPager: {v.pager}\n\nPlay it: python -m handbook.drills "
                              f"start --pack drill-packs/{pack} {pack}",
                              "options": [f"verdict {a}, action {b}" for a, b in options],
                              "right": [options.index((v.verdict, v.action))], "feedback": {}, "why": "",
                              "variant": v, "pack": pack})
        elif q.kind == "numeric":
            for n, params in enumerate(_param_sets(q, per_question), 1):
                inst = Instance(0, q, {}, params)
                right = entry.answer(params)
                why = entry.why.format(answer=f"{right:.4g}", **{k: f"{float(v):g}" for k, v in params.items()})
                items.append({"id": f"{q.id}-{n}", "prompt": inst.prompt(), "value": right,
                              "tolerance": q.tolerance_for(right), "why": why if shown else ""})
        else:
            keys = list(q.options)
            right = [keys.index(k) for k in (entry.answer if q.kind == "multiple" else (entry.answer,))]
            feedback = {keys.index(k): t for k, t in entry.misconceptions.items()} if shown else {}
            prompt = q.prompt
            if q.kind == "output":
                text, source = render.output_text(q)
                prompt += f"\n\nOutput, {source}:\n\n{text}"
            items.append({"id": f"{q.id}-1", "prompt": prompt, "options": [q.options[k] for k in keys],
                          "right": right, "feedback": feedback, "why": entry.why if shown else ""})
        out.append((q, items))
    return out


CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _html(text: str) -> str:
    """Plain text to the HTML an LMS shows: paragraphs, and an output block kept as preformatted text.

    Terminal escapes and control characters (a recording of `nvidia-smi topo -m` underlines its header) are
    dropped: XML 1.0 cannot hold them, and an LMS would refuse the whole file."""
    import html

    text = CONTROL.sub("", text)
    parts = []
    for block in text.split("\n\n"):
        if "\n" in block.strip() and ("," in block or "  " in block or block.startswith(("\t", " "))):
            parts.append(f"<pre>{html.escape(block)}</pre>")
        else:
            parts.append(f"<p>{html.escape(' '.join(block.split()))}</p>")
    return "".join(parts)


# ---- Canvas QTI 1.2 ------------------------------------------------------------------------------------------

def _sub(parent, tag, text=None, **attrs):
    el = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _meta(item, fields: dict):
    md = _sub(_sub(item, "itemmetadata"), "qtimetadata")
    for label, entry in fields.items():
        f = _sub(md, "qtimetadatafield")
        _sub(f, "fieldlabel", label)
        _sub(f, "fieldentry", entry)


def _material(parent, html_text):
    _sub(_sub(parent, "material"), "mattext", html_text, texttype="text/html")


def _feedback(item, ident, text):
    fb = _sub(item, "itemfeedback", ident=ident)
    _material(_sub(fb, "flow_mat"), _html(text))


def qti_assessment(bank: Bank, groups, ident: str) -> ET.Element:
    root = ET.Element("questestinterop", xmlns=QTI_NS)
    assessment = _sub(root, "assessment", ident=ident, title=f"{bank.title} {bank.version}")
    md = _sub(assessment, "qtimetadata")
    f = _sub(md, "qtimetadatafield")
    _sub(f, "fieldlabel", "cc_maxattempts")
    _sub(f, "fieldentry", "1")
    top = _sub(assessment, "section", ident="root_section")
    for q, items in groups:
        group = _sub(top, "section", ident=f"group-{q.id}", title=f"{q.id} (objective {q.objective})")
        sel = _sub(_sub(group, "selection_ordering"), "selection")
        _sub(sel, "selection_number", 1)
        _sub(_sub(sel, "selection_extension"), "points_per_item", q.points)
        for it in items:
            item = _sub(group, "item", ident=it["id"], title=it["id"])
            kind = {"single": "multiple_choice_question", "output": "multiple_choice_question",
                    "drill": "multiple_choice_question", "multiple": "multiple_answers_question",
                    "numeric": "numerical_question"}[q.kind]
            _meta(item, {"question_type": kind, "points_possible": q.points})
            pres = _sub(item, "presentation")
            prompt = it["prompt"] + (f"\n\nAnswer in {q.unit}." if q.kind == "numeric" else "")
            _material(pres, _html(prompt))
            proc = _sub(item, "resprocessing")
            _sub(_sub(proc, "outcomes"), "decvar", maxvalue=100, minvalue=0, varname="SCORE", vartype="Decimal")
            if q.kind == "numeric":
                resp = _sub(pres, "response_str", ident="response1", rcardinality="Single")
                _sub(_sub(resp, "render_fib", fibtype="Decimal"), "response_label", ident="answer1")
                rc = _sub(proc, "respcondition", continue_="No")
                cond = _sub(rc, "conditionvar")
                _sub(cond, "vargte", f"{it['value'] - it['tolerance']:.6g}", respident="response1")
                _sub(cond, "varlte", f"{it['value'] + it['tolerance']:.6g}", respident="response1")
                _sub(rc, "setvar", 100, action="Set", varname="SCORE")
            else:
                card = "Multiple" if q.kind == "multiple" else "Single"
                choice = _sub(_sub(pres, "response_lid", ident="response1", rcardinality=card), "render_choice")
                for n, text in enumerate(it["options"]):
                    _material(_sub(choice, "response_label", ident=f"{it['id']}-o{n}"), _html(text))
                for n, text in it["feedback"].items():
                    rc = _sub(proc, "respcondition", continue_="Yes")
                    _sub(_sub(rc, "conditionvar"), "varequal", f"{it['id']}-o{n}", respident="response1")
                    _sub(rc, "displayfeedback", feedbacktype="Response", linkrefid=f"{it['id']}-o{n}_fb")
                rc = _sub(proc, "respcondition", continue_="No")
                cond = _sub(rc, "conditionvar")
                if q.kind == "multiple":
                    both = _sub(cond, "and")
                    for n in range(len(it["options"])):
                        if n in it["right"]:
                            _sub(both, "varequal", f"{it['id']}-o{n}", respident="response1")
                        else:
                            _sub(_sub(both, "not"), "varequal", f"{it['id']}-o{n}", respident="response1")
                else:
                    _sub(cond, "varequal", f"{it['id']}-o{it['right'][0]}", respident="response1")
                _sub(rc, "setvar", 100, action="Set", varname="SCORE")
                for n, text in it["feedback"].items():
                    _feedback(item, f"{it['id']}-o{n}_fb", text)
            if it.get("why"):
                _feedback(item, "general_fb", it["why"])
    return root


def write_qti(bank: Bank, groups, out: Path) -> Path:
    ident = f"mod107-quiz-{bank.version.replace('.', '-')}"
    root = qti_assessment(bank, groups, ident)
    manifest = ET.Element("manifest", identifier=f"{ident}-manifest", xmlns=CP_NS)
    _sub(_sub(manifest, "metadata"), "schema", "IMS Content")
    _sub(manifest, "organizations")
    resources = _sub(manifest, "resources")
    res = _sub(resources, "resource", identifier=ident, type="imsqti_xmlv1p2")
    _sub(res, "file", href=f"{ident}/{ident}.xml")
    _sub(res, "dependency", identifierref=f"{ident}-meta")
    meta_res = _sub(resources, "resource", identifier=f"{ident}-meta",
                    type="associatedcontent/imscc_xmlv1p1/learning-application-resource", href=f"{ident}/assessment_meta.xml")
    _sub(meta_res, "file", href=f"{ident}/assessment_meta.xml")
    quiz = ET.Element("quiz", identifier=ident, xmlns=CANVAS_NS)
    _sub(quiz, "title", f"{bank.title} {bank.version}")
    _sub(quiz, "description", f"Pass: {bank.pass_overall:g} % overall and {bank.pass_objective:g} % on every objective.")
    _sub(quiz, "shuffle_answers", "true")
    _sub(quiz, "quiz_type", "assignment")
    _sub(quiz, "points_possible", sum(q.points for q, _ in groups))
    _sub(quiz, "show_correct_answers", "false")
    _sub(quiz, "allowed_attempts", 1)
    path = out / f"{ident}-qti.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("imsmanifest.xml", _xml(manifest))
        zf.writestr(f"{ident}/{ident}.xml", _xml(root))
        zf.writestr(f"{ident}/assessment_meta.xml", _xml(quiz))
    return path


# ---- Moodle XML ------------------------------------------------------------------------------------------------

MOODLE_FRACTIONS = {1: "100", 2: "50", 3: "33.33333", 4: "25", 5: "20"}


def _text(parent, tag, text, fmt="html", **attrs):
    el = _sub(parent, tag, format=fmt, **attrs) if fmt else _sub(parent, tag, **attrs)
    _sub(el, "text", text)
    return el


def moodle_xml(bank: Bank, groups) -> ET.Element:
    quiz = ET.Element("quiz")
    for q, items in groups:
        cat = _sub(quiz, "question", type="category")
        _text(cat, "category", f"$course$/top/{bank.title} {bank.version}/objective {q.objective} {q.pool}/{q.id}", fmt=None)
        for it in items:
            kind = "numerical" if q.kind == "numeric" else "multichoice"
            el = _sub(quiz, "question", type=kind)
            _text(el, "name", it["id"], fmt=None)
            prompt = it["prompt"] + (f"\n\nAnswer in {q.unit}." if q.kind == "numeric" else "")
            _text(el, "questiontext", _html(prompt))
            _text(el, "generalfeedback", _html(it["why"]) if it.get("why") else "")
            _sub(el, "defaultgrade", q.points)
            _sub(el, "penalty", 0)
            _sub(el, "hidden", 0)
            _sub(el, "idnumber", it["id"])
            if q.kind == "numeric":
                ans = _sub(el, "answer", fraction=100, format="moodle_auto_format")
                _sub(ans, "text", f"{it['value']:.6g}")
                _sub(ans, "tolerance", f"{it['tolerance']:.6g}")
                _text(ans, "feedback", "")
                _sub(el, "unitgradingtype", 0)
                _sub(el, "showunits", 3)
                continue
            multi = q.kind == "multiple"
            _sub(el, "single", "false" if multi else "true")
            _sub(el, "shuffleanswers", "true")
            _sub(el, "answernumbering", "abc")
            for n, option in enumerate(it["options"]):
                if n in it["right"]:
                    fraction = MOODLE_FRACTIONS[len(it["right"])] if multi else "100"
                else:
                    fraction = "-100" if multi else "0"
                ans = _sub(el, "answer", fraction=fraction, format="html")
                _sub(ans, "text", _html(option))
                _text(ans, "feedback", _html(it["feedback"].get(n, "")) if it["feedback"].get(n) else "")
    return quiz


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def write_packs(groups, out: Path) -> None:
    for q, items in groups:
        for it in items:
            if "pack" not in it:
                continue
            folder = out / "drill-packs" / it["pack"]
            folder.mkdir(parents=True, exist_ok=True)
            v = it["variant"]
            (folder / f"{it['pack']}.toml").write_text(hidden_copy(v.scenario, 0), encoding="utf-8")
            pack = {"learner": None, "variant": None, "version": None, "drills": {it["pack"]: {
                "question": q.id, "pager": v.pager, "scenario": f"{it['pack']}.toml", "at": v.at}}}
            (folder / "pack.json").write_text(json.dumps(pack, indent=1) + "\n", encoding="utf-8")


def write(bank: Bank, key: dict[str, Entry], fmt: str, out: Path, variants_per_question: int = 4) -> Path:
    if variants_per_question < 1:
        raise QuizError(f"--variants {variants_per_question}: give 1 or more")
    if out.exists() and not out.is_dir():
        raise QuizError(f"{out}: exists and is not a folder; give a folder for the export")
    out.mkdir(parents=True, exist_ok=True)
    groups = instances(bank, key, variants_per_question)
    write_packs(groups, out)
    if fmt == "qti":
        return write_qti(bank, groups, out)
    if fmt == "moodle":
        path = out / f"mod107-quiz-{bank.version.replace('.', '-')}-moodle.xml"
        path.write_bytes(_xml(moodle_xml(bank, groups)))
        return path
    raise QuizError(f"--format {fmt!r}: use qti or moodle")
