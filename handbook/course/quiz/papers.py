"""Issue papers: per learner, the questions as that learner sees them, the answer file, and the graded drills' pack.

    python -m handbook.quiz papers roster.txt papers/

roster.txt: one cohort login per line (`#` comments and blank lines ignored). For each learner it writes
papers/LOGIN/paper.md, papers/LOGIN/answers.yaml (learner and variant filled in) and papers/LOGIN/drills/: the
hidden scenario each drill question drew for this learner, re-written without its description or comments and
with its GPUs in a per-learner order, plus pack.json (the pager text and where the simulator starts). The pack is
what the learner plays; the verdicts, actions and explanations stay in the key.
"""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from handbook.course.quiz import QuizError, render
from typing import TYPE_CHECKING

from handbook.course.quiz.bank import Bank
from handbook.course.quiz.variants import LEARNER, Paper, normal_learner, paper

if TYPE_CHECKING:  # the key is the instructors'; learners' drill runner imports this module without it
    from handbook.course.quiz.key import Entry

HIDDEN_DESCRIPTION = "a hidden drill scenario"


def read_roster(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise QuizError(f"{path}: cannot read the roster ({err.__class__.__name__})") from None
    out, seen = [], {}
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        login = normal_learner(text)
        if not LEARNER.match(login):
            raise QuizError(f"{path}:{n}: {text!r} is not a login (lower-case letters, digits, . _ @ -)")
        if login in seen:
            raise QuizError(f"{path}:{n}: {login} is listed twice (first on line {seen[login]})")
        seen[login] = n
        out.append(login)
    if not out:
        raise QuizError(f"{path}: the roster lists no learner")
    return out


# ---- a minimal TOML writer for scenario files (tables, arrays of tables, scalars, lists, inline tables) -------

def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    raise QuizError(f"cannot write {v!r} to TOML")


def toml_dump(data: dict) -> str:
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list)) or
             (isinstance(v, list) and not (v and all(isinstance(x, dict) for x in v)))]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_value(vv)}" for kk, vv in v.items()]
    for k, v in data.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for table in v:
                lines += ["", f"[[{k}]]"] + [f"{kk} = {_value(vv)}" for kk, vv in table.items()]
    return "\n".join(lines) + "\n"


def hidden_copy(source: Path, rotate: int) -> str:
    """SOURCE re-written: no description, no comments, [[gpus]] expanded and rotated by ROTATE places."""
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    data["description"] = HIDDEN_DESCRIPTION
    gpus = []
    for table in data.get("gpus", []):
        table = dict(table)
        copies = table.pop("copies", 1)
        gpus += [dict(table) for _ in range(copies)]
    if gpus:
        k = rotate % len(gpus)
        data["gpus"] = gpus[k:] + gpus[:k]
    return toml_dump(data)


def drills_for(bank: Bank, key: dict[str, Entry], sheet: Paper) -> dict:
    """question id -> {slot, pager, at, variant} for the drill questions of a paper."""
    out = {}
    for inst in sheet.instances:
        if inst.question.kind != "drill":
            continue
        entry = key[inst.id]
        variant = entry.variants[inst.draw % len(entry.variants)]
        slot = re.sub(r"^drill-", "", inst.id)
        out[inst.id] = {"slot": slot, "pager": variant.pager, "at": variant.at, "variant": variant,
                        "rotate": inst.draw >> 16}
    return out


def write_pack(folder: Path, sheet: Paper, drills: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pack = {"learner": sheet.learner, "variant": sheet.variant, "version": sheet.version, "drills": {}}
    for qid, d in drills.items():
        name = f"{d['slot']}.toml"
        (folder / name).write_text(hidden_copy(d["variant"].scenario, d["rotate"]), encoding="utf-8")
        pack["drills"][d["slot"]] = {"question": qid, "pager": d["pager"], "scenario": name, "at": d["at"]}
    (folder / "pack.json").write_text(json.dumps(pack, indent=1) + "\n", encoding="utf-8")


def paper_page(bank: Bank, sheet: Paper, drills: dict) -> str:
    head = [f"# {bank.title}: {sheet.learner}'s paper", "",
            f"Variant `{sheet.variant}` · version {bank.version} · {bank.paper_points} points · pass: "
            f"{bank.pass_overall:g} % overall and {bank.pass_objective:g} % on every objective.", "",
            "Answer in `answers.yaml` (beside this paper), check it with `python -m handbook.quiz check answers.yaml`,"
            " and submit it. The drills' scenarios are in `drills/`.", ""]
    body = render.paper_markdown(bank, sheet, "https://handbook.example/", site=False,
                                 drills={k: {"slot": v["slot"], "pager": v["pager"]} for k, v in drills.items()})
    return "\n".join(head) + "\n" + body


def issue(bank: Bank, key: dict[str, Entry], secret: bytes, roster: list[str], out: Path,
          link_prefix: str | None = None) -> list[Path]:
    written = []
    for learner in roster:
        sheet = paper(bank, secret, learner)
        drills = drills_for(bank, key, sheet)
        folder = out / learner
        folder.mkdir(parents=True, exist_ok=True)
        page = paper_page(bank, sheet, drills)
        if link_prefix:
            page = page.replace("https://handbook.example/", link_prefix)
        (folder / "paper.md").write_text(page, encoding="utf-8")
        (folder / "answers.yaml").write_text(render.template(bank, sheet), encoding="utf-8")
        write_pack(folder / "drills", sheet, drills)
        written.append(folder)
    return written
