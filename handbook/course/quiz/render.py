"""Render papers: the site's practice paper (every question), a learner's own paper, answer files, the key table.

Output items show a program's real, raw output: a recording's stdout, or the simulator's `nvidia-smi` stand-in
run on a scenario. Never a program that prints its own diagnosis under the output.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json

from handbook import SNIPPETS
from handbook.course.quiz import QuizError
from handbook.course.quiz.answers import FORMS, PLACEHOLDER_LEARNER
from handbook.course.quiz.bank import Bank, Question
from handbook.course.quiz.variants import PRACTICE, Instance, Paper, practice

KIND_NAMES = {"single": "one answer", "multiple": "all that apply", "numeric": "a number",
              "output": "read the output", "drill": "graded drill: verdict, action, evidence"}


@functools.lru_cache(maxsize=None)
def _tool_output(scenario: str, args: str) -> tuple[int, str]:
    from handbook.gpusim import nvidia_smi

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = nvidia_smi.main(args.split(), scenario=scenario)
    return code, buf.getvalue()


def output_text(q: Question) -> tuple[str, str]:
    """(the output, where it came from) for an output item; never typed text."""
    spec = q.output
    if "recording" in spec:
        data = json.loads((SNIPPETS / spec["recording"]).read_text(encoding="utf-8"))
        lines = data["stdout"].rstrip("\n").splitlines()
        if "lines" in spec:
            first, _, last = str(spec["lines"]).partition("-")
            lines = lines[int(first) - 1:int(last or first)]
        prov = data.get("provenance", {})
        count, model = prov.get("gpu_count") or 1, prov.get("gpu_model") or "a GPU"
        card = f"{count}× {model}" if count > 1 else model
        snippet = spec["recording"].removesuffix(".rec.json") + ".py"
        return "\n".join(lines), f"recorded by `{snippet}` on {card}, {str(prov.get('date', '?'))[:10]}"
    code, text = _tool_output(spec["scenario"], spec["nvidia-smi"])
    if not text.strip():
        raise QuizError(f"{q.id}: nvidia-smi {spec['nvidia-smi']} on scenario {spec['scenario']} printed nothing "
                        f"(exit {code})")
    return text.rstrip("\n"), f"the GPU simulator (`nvidia-smi {spec['nvidia-smi']}`)"


def _prompt(inst: Instance, site: bool) -> str:
    """The prompt with the learner's numbers; on the site a calculation's inputs are marked hypothetical."""
    text = inst.prompt()
    if not site or inst.question.kind != "numeric":
        return text
    return "\n".join(f"{line} <!-- figure-ok: hypothetical input of a quiz calculation -->"
                     if any(c.isdigit() for c in line) else line for line in text.splitlines())


def question_markdown(inst: Instance, link_prefix: str, *, site: bool, drill: dict | None = None) -> str:
    q = inst.question
    page, _, anchor = q.teaches.partition("#")
    target = q.teaches if not link_prefix.startswith("http") else f"{page.removesuffix('.md')}/#{anchor}"
    lines = [f"### Q{inst.number} · `{q.id}` {{ #{q.id} }}", "",
             f"*{KIND_NAMES[q.kind]} · {q.points} points · objective {q.objective} · "
             f"taught in [{page.removesuffix('.md')}]({link_prefix}{target})*", "", _prompt(inst, site), ""]
    if q.kind == "output":
        text, source = output_text(q)
        lines += [f"Output, {source}:", "", "```text", text, "```", ""]
    if q.kind in ("single", "multiple", "output"):
        lines += [f"- **{letter}** · {q.options[key]}" for letter, key in inst.letters.items()] + [""]
    elif q.kind == "numeric":
        lines += [f"Answer in {q.unit}; within {q.tolerance_text()} counts.", ""]
    elif drill:
        lines += [f"Your drill: `{drill['slot']}`. Pager: *{drill['pager']}*", "",
                  "```console",
                  f"$ python -m handbook.drills start --pack drills/ {drill['slot']}",
                  "$ python -m handbook.drills run TOKEN -- python 01_gpu_health.py",
                  "$ python -m handbook.drills answer TOKEN --verdict WORD --action WORD --evidence \"...\" "
                  "--into answers.yaml",
                  "```", "",
                  f"The verdicts and actions are listed on the [drills page]({link_prefix}troubleshooting/drills"
                  f"{'/' if link_prefix.startswith('http') else '.md'}). "
                  "The runner records your diagnosis in your answer file; it does not grade it.", ""]
    else:
        lines += [f"Graded papers name a hidden drill here (practise on the [drills page]"
                  f"({link_prefix}troubleshooting/drills.md)).", ""]
    lines += [f"In `answers.yaml`: {FORMS[q.kind]}.", ""]
    return "\n".join(lines)


def paper_markdown(bank: Bank, paper: Paper, link_prefix: str, *, site: bool, drills: dict | None = None) -> str:
    out = []
    for number, objective in sorted(bank.objectives.items()):
        items = [i for i in paper.instances if i.question.objective == number]
        if not items:
            continue
        points = sum(i.question.points for i in items)
        out += [f"## Objective {number} {{ #objective-{number} }}", "",
                f"*{objective}* ({len(items)} questions, {points} points)", ""]
        out += [question_markdown(i, link_prefix, site=site, drill=(drills or {}).get(i.id)) for i in items]
    return "\n".join(out)


def questions_markdown(bank: Bank, link_prefix: str = "../") -> str:
    """The site's quiz page: the practice paper (every question of the bank, options as written)."""
    return paper_markdown(bank, practice(bank), link_prefix, site=True)


def template(bank: Bank, paper: Paper | None = None) -> str:
    paper = paper or practice(bank)
    learner = PLACEHOLDER_LEARNER if paper.learner == PRACTICE else paper.learner
    lines = [f"# {bank.title}, version {bank.version}: "
             + ("the practice paper's answer file." if paper.variant == PRACTICE else f"{paper.learner}'s answer file."),
             "# Put each answer after its colon (the comment says the form); leave it blank to skip a question.",
             "# Check the format before you submit: python -m handbook.quiz check answers.yaml",
             f"learner: {learner}",
             f"variant: {paper.variant}",
             "answers:"]
    for inst in paper.instances:
        q = inst.question
        hint = FORMS[q.kind]
        if q.kind in ("single", "multiple", "output"):
            hint += f" ({', '.join(inst.letters)})"
        elif q.kind == "numeric":
            hint += f" in {q.unit}"
        lines.append(f"  {q.id}:{' ' * max(1, 34 - len(q.id))}# Q{inst.number} {q.kind}: {hint}")
    return "\n".join(lines) + "\n"


def key_markdown(bank: Bank, key: dict) -> str:
    """The instructor edition's key table: question, pool, answer (option text), reveal, why."""
    lines = ["| Question | Pool | Answer | Reveal | Why |", "|---|---|---|---|---|"]
    for q in sorted(bank.questions, key=lambda q: (q.objective, q.pool, q.id)):
        entry = key[q.id]
        if q.kind == "drill":
            shown = "; ".join(f"`{v.scenario.name}`: `{v.verdict}` / `{v.action}`" for v in entry.variants)
        elif q.kind == "multiple":
            shown = "; ".join(q.options[k] for k in entry.answer)
        elif q.kind == "numeric":
            shown = f"`{entry.answer.text}` {q.unit} ({q.tolerance_text()})"
        else:
            shown = q.options[entry.answer]
        why = entry.why.replace("|", "\\|")
        lines.append(f"| [`{q.id}`](../assessment/questions.md#{q.id}) | {q.pool} | {shown.replace('|', '/')} | "
                     f"{entry.reveal} | {why} |")
    return "\n".join(lines) + "\n"
