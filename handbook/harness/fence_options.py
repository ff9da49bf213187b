"""Every fence option the harness knows, described once: blocks.py validates fences against this table, and the
authors' page renders it (the `<!-- fence-options -->` marker, filled in by the site's hooks).

An option is a flag (`record`) or takes a value (`timeout=60`); `fixture:NAME` names a pytest fixture. Each applies
to python fences, to shell fences (console, bash, sh, shell), or to any fence. Shell fences take requires=, timeout=
and sim= only together with `run`. Any other word is an error naming page:line and the nearest known option.
"""
import difflib
from dataclasses import dataclass

PYTHON = ("python", "py", "python3")
SHELL = ("console", "bash", "sh", "shell")


@dataclass(frozen=True)
class Option:
    name: str
    shown: str  # how the authors' table writes it
    value: bool  # takes `=VALUE`
    applies: str  # "python", "shell", "python shell", or "any"
    renderer: bool  # passed on to the site's renderer (superfences); the other options are the harness's or hooks'
    meaning: str


OPTIONS = (
    Option("requires", 'requires="..."', True, "python shell", False,
           "hardware the block needs (see [Requirements](#requirements)); without it the block is skipped with the "
           "reason, or fails in GPU-runner mode on a machine without a GPU"),
    Option("timeout", "timeout=N", True, "python shell", False,
           "seconds before a hang fails the block (default: `timeout` in `pyproject.toml`, for the checks and the "
           "recorder alike)"),
    Option("sim", 'sim="SCENARIO"', True, "python shell", False,
           "`import pynvml` gets the GPU simulator playing SCENARIO (`python -m handbook.gpusim list`); in a shell "
           "block the simulator's `nvidia-smi` comes first on PATH"),
    Option("record", "record", False, "python", False,
           "the recorder runs the block's snippet on a GPU; the page shows the recorded output under it"),
    Option("notest", "notest", False, "python", False, "shown, never run; say in the prose why"),
    Option("continuation", "continuation", False, "python", False,
           "runs after the previous checked block of the page, in its namespace"),
    Option("fixture", "fixture:NAME", False, "python", False,
           "the pytest fixture NAME is available as a global (pytest-markdown-docs)"),
    Option("run", "run", False, "shell", False,
           "its commands are executed (see [Shell blocks](#shell-blocks)); with it, `requires=`, `timeout=` and "
           "`sim=` apply to shell fences too"),
    Option("fold", "fold", False, "any", False,
           "display only: the site shows the block folded, one click away, with its recorded output in view; for "
           "programs over about 60 lines, on a page that leads with what the program answers and the lines that matter"),
    Option("title", 'title="..."', True, "any", True, "display only: the block's title (a snippet block is titled "
                                                       "with its file name)"),
    Option("linenums", 'linenums="1"', True, "any", True, "display only: line numbers from N"),
    Option("hl_lines", 'hl_lines="2 3"', True, "any", True, "display only: highlighted lines"),
)
BY_NAME = {o.name: o for o in OPTIONS}
RENDERER = {o.name for o in OPTIONS if o.renderer}


def family(lang: str) -> str:
    return "python" if lang in PYTHON else "shell" if lang in SHELL else "other"


def allowed(lang: str) -> list[Option]:
    kind = family(lang)
    return [o for o in OPTIONS if o.applies == "any" or kind in o.applies.split()]


def unknown_message(word: str, lang: str) -> str:
    """What to say about a word that is not an option of this fence: the nearest option, and every option."""
    options = allowed(lang)
    key = word.partition("=")[0]
    near = difflib.get_close_matches(key, [o.name for o in options], n=1, cutoff=0.6)
    hint = f"; did you mean {BY_NAME[near[0]].shown!r}?" if near else ""
    if key in BY_NAME and not near:
        option = BY_NAME[key]
        hint = f"; {option.shown} applies to {option.applies} fences" + (
            "" if option.value == ("=" in word) else f", written {option.shown}")
    return (f"unknown fence option {word!r} on a {lang or 'plain'} block{hint} "
            f"(options here: {', '.join(o.shown for o in options)})")


def table() -> str:
    """The authors' page table, from OPTIONS."""
    rows = ["| Option | On | Meaning |", "|---|---|---|"]
    for o in OPTIONS:
        on = {"any": "any fence", "python": "python", "shell": "console, bash, sh", "python shell": "python, shell"}[o.applies]
        rows.append(f"| `{o.shown}` | {on} | {o.meaning} |")
    return "\n".join(rows)
