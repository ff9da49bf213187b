"""Finds hand-typed figures in prose: a number with a measurement unit that is neither bound to a recording nor cited.

A figure in prose must be one of:
- a figure reference, `{{ rec:SNIPPET:KEYPATH }}` (handbook/recordings/figures.py): measured on our cards, rendered;
- cited: the same sentence links its source (`[text](https://...)` or a footnote `[^n]`);
- a target or threshold written as one: `≥ 90 %`, `< 5 ms`, `at least 80 %`;
- marked on its line with `<!-- figure-ok: REASON -->` (a worked example's input, say), the reason required.
Code (fences and `inline code`) is not prose and is not read.

    python -m handbook.typed_figures [docs/page.md ...]     # every page when none is given; exit 1 on findings
"""
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from handbook import DOCS
from handbook.harness.blocks import rel
from handbook.recordings.figures import INLINE_CODE, REF, code_lines

UNIT = (r"(?:[TGPM]?FLOP/s|[TGMK]i?B/s|Gb/s|Gbit/s|samples/s|tokens/s|tok/s|it/s|ms|µs|μs|us|ns|kW|W|°C|%"
        r"|×(?!\s*[A-Z0-9]))")  # a bare × is a speedup ("126.9×"), not a count ("8× H100")
FIGURE = re.compile(rf"(?<![\w.,/\-])(?:[~≈]\s?)?\d[\d,]*(?:\.\d+)?\s?{UNIT}(?![\w/])")
THRESHOLD = re.compile(r"(?:[≥≤<>⩾⩽]|at least|at most|no more than|no less than|up to)\s*$")
CITATION = re.compile(r"\]\(https?://|<https?://|\[\^[^\]]+\]")
WAIVER = re.compile(r"<!--\s*figure-ok:\s*(?P<reason>[^-]*?)\s*-->")
COMMENT = re.compile(r"<!--.*?-->", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)")
TAG = re.compile(r"<[^>]+>")
UNIT_START = re.compile(r"^\s*(?:[-*+] |\d+\. |#{1,6} |!!! |\?\?\?\+? |=== |\|)")
ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|vs|cf|approx|etc|Fig|Eq)\.")
SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z(\[*_`“\"{])")


@dataclass(frozen=True)
class Finding:
    page: Path
    line: int
    figure: str

    def __str__(self):
        return (f"{rel(self.page)}:{self.line}: typed figure {self.figure!r}: bind it to its recording "
                "({{ rec:SNIPPET:KEYPATH }}), cite its source with a link in the same sentence, write a threshold "
                "as ≥/≤, or mark the line <!-- figure-ok: REASON -->")


def blank(text: str, pattern: re.Pattern) -> str:
    """Replace each match by spaces of the same length, so offsets still map to the source."""
    return pattern.sub(lambda m: " " * len(m[0]), text)


def units(markdown: str):
    """Runs of prose lines that sentences may span: (list of (line number, text)), code and comments removed."""
    skip = code_lines(markdown)
    text = COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m[0]) if not WAIVER.fullmatch(m[0]) else m[0], markdown)
    current: list[tuple[int, str]] = []
    in_front_matter = text.startswith("---\n")
    for number, line in enumerate(text.split("\n"), 1):
        if in_front_matter:
            in_front_matter = not (number > 1 and line.strip() == "---")
            continue
        if number - 1 in skip or not line.strip() or "--8<--" in line:
            if current:
                yield current
            current = []
            continue
        if UNIT_START.match(line) and current:
            yield current
            current = []
        current.append((number, line))
        if line.lstrip().startswith("|"):  # a table row is a sentence of its own
            yield current
            current = []
    if current:
        yield current


def findings(page: Path, markdown: str | None = None) -> list[Finding]:
    markdown = page.read_text(encoding="utf-8") if markdown is None else markdown
    found = []
    for unit in units(markdown):
        joined, starts = "", []
        for number, line in unit:
            starts.append((len(joined), number, line))
            joined += line + " "
        masked = blank(blank(blank(blank(joined, INLINE_CODE), REF), LINK_TARGET), TAG)
        masked = ABBREVIATIONS.sub(lambda m: m[0].replace(".", " "), masked)
        bounds = [0] + [m.end() for m in SENTENCE_END.finditer(masked)] + [len(masked)]
        for start, end in zip(bounds, bounds[1:]):
            if CITATION.search(joined[start:end]):
                continue
            for m in FIGURE.finditer(masked, start, end):
                if THRESHOLD.search(masked[max(start, m.start() - 16):m.start()]):
                    continue
                offset, number, line = max(s for s in starts if s[0] <= m.start())
                waiver = WAIVER.search(line)
                if waiver and waiver["reason"].strip():
                    continue
                found.append(Finding(page, number, m[0].strip()))
    return found


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    pages = [Path(a) for a in args] or sorted(DOCS.rglob("*.md"))
    problems = [f for page in pages for f in findings(page)]
    for problem in problems:
        print(problem)
    print(f"{len(problems)} typed figure(s) in {len(pages)} page(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
