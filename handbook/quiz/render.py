"""Render the bank for learners: the quiz page's questions (outputs included) and the blank answer file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from .. import ROOT, SNIPPETS
from . import QuizError
from .answers import FORMS
from .bank import Bank, Question

PLACEHOLDER_LEARNER = "your-name"
KIND_NAMES = {"single": "one answer", "multiple": "all that apply", "numeric": "a number",
              "output": "read the output", "drill": "drill: verdict and action"}


def output_text(q: Question) -> tuple[str, str]:
    """(the output, where it came from) for an output item; never typed text: a recording or a simulator run."""
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
    with tempfile.TemporaryDirectory(prefix="quiz-output-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "handbook.gpusim", "run", spec["scenario"], "--", sys.executable,
               str(SNIPPETS / spec["snippet"]), *map(str, spec.get("args", []))]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise QuizError(f"{q.id}: the output of {spec['snippet']} on scenario {spec['scenario']} failed ({last})")
    shown = f"python -m handbook.gpusim run {spec['scenario']} -- python {spec['snippet'].rsplit('/', 1)[-1]}"
    return proc.stdout.rstrip("\n"), f"the GPU simulator (`{shown}`)"


def _options(title: str, options: dict[str, str]) -> list[str]:
    lines = [f"{title}", ""] if title else []
    return lines + [f"- **{k}** · {text}" for k, text in options.items()] + [""]


def _prompt(q: Question) -> str:
    """The prompt; a calculation's inputs are hypothetical, which the figure check is told line by line."""
    if q.kind != "numeric":
        return q.prompt
    return "\n".join(f"{line} <!-- figure-ok: hypothetical input of a quiz calculation -->" if any(c.isdigit() for c in line)
                     else line for line in q.prompt.splitlines())


def question_markdown(number: int, q: Question, link_prefix: str) -> str:
    page, _, anchor = q.teaches.partition("#")
    lines = [f"### Q{number} · `{q.id}` {{ #{q.id} }}", "",
             f"*{KIND_NAMES[q.kind]} · {q.points} points · objective {q.objective} · "
             f"taught in [{page.removesuffix('.md')}]({link_prefix}{q.teaches})*", "", _prompt(q), ""]
    if q.kind == "output":
        text, source = output_text(q)
        lines += [f"Output, {source}:", "", "```text", text, "```", ""]
    if q.kind in ("single", "multiple", "output"):
        lines += _options("", q.choices)
    elif q.kind == "numeric":
        lines += [f"Answer in {q.unit}; within ±{q.tolerance:g} {q.unit} counts.", ""]
    else:
        lines += [f"The drill: `{q.drill}` ([how drills work](../troubleshooting/drills.md)).", ""]
        lines += _options("Verdict:", q.verdicts) + _options("Action:", q.actions)
    lines += [f"In `answers.yaml`: {FORMS[q.kind]}.", ""]
    return "\n".join(lines)


def questions_markdown(bank: Bank, link_prefix: str = "../") -> str:
    out, counter = [], 0
    for number, objective in sorted(bank.objectives.items()):
        items = []
        for q in (q for q in bank.questions if q.objective == number):
            counter += 1
            items.append((counter, q))
        if not items:
            continue
        points = sum(q.points for _, q in items)
        out += [f"## Objective {number} {{ #objective-{number} }}", "", f"*{objective}* ({len(items)} questions, "
                f"{points} of {bank.total_points} points)", ""]
        out += [question_markdown(i, q, link_prefix) for i, q in items]
    return "\n".join(out)


def template(bank: Bank) -> str:
    lines = [f"# {bank.title}: your answer file.",
             "# Put each answer after its colon (the comment says the form); leave a line blank to skip it.",
             "# Check the format before you submit: python -m handbook.quiz check answers.yaml",
             f"learner: {PLACEHOLDER_LEARNER}",
             "answers:"]
    for q in bank.questions:
        hint = FORMS[q.kind]
        if q.kind in ("single", "multiple", "output"):
            hint += f" ({', '.join(q.choices)})"
        elif q.kind == "numeric":
            hint += f" in {q.unit}"
        lines.append(f"  {q.id}:{' ' * max(1, 34 - len(q.id))}# {q.kind}: {hint}")
    return "\n".join(lines) + "\n"


def key_markdown(bank: Bank, key: dict) -> str:
    """The instructor edition's key table: question, answer, why."""
    lines = ["| # | Question | Objective | Points | Answer | Why |", "|---|---|---|---|---|---|"]
    in_page_order = sorted(bank.questions, key=lambda q: q.objective)  # numbered as the quiz page numbers them
    for number, q in enumerate(in_page_order, 1):
        answer = key[q.id].answer
        if isinstance(answer, tuple) and q.kind == "drill":
            shown = f"verdict `{answer[0]}`, action `{answer[1]}`"
        elif isinstance(answer, tuple):
            shown = ", ".join(f"`{a}`" for a in answer)
        elif isinstance(answer, float):
            shown = f"{answer:g} {q.unit} (±{q.tolerance:g})"
        else:
            shown = f"`{answer}`"
        why = key[q.id].why.replace("|", "\\|")
        lines.append(f"| {number} | [`{q.id}`](../assessment/questions.md#{q.id}) | {q.objective} | {q.points} | {shown} | {why} |")
    return "\n".join(lines) + "\n"
