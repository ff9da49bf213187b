"""Prometheus rule files with every duration divided by a factor: the same rules for a game played faster.

A game day plays on the wall clock, so Lab 1's rules apply as written (a `for: 2m` waits two minutes). A short
game (the checks' 75-second timeline is the game day 20x faster) needs the same rules 20x faster: every `for:`,
`keep_firing_for:` and group `interval:`, and every range `[15m]`, subquery `[30m:1m]` and `offset 15m` in the
expressions, divided by the factor. The text is otherwise kept as it is (comments, order, quoting).
"""
from __future__ import annotations

import re
from pathlib import Path

from handbook.fleet import FleetError

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
FIELD = re.compile(rf"^(\s*-?\s*(?:for|keep_firing_for|interval):\s*['\"]?)({DURATION})(['\"]?\s*(?:#.*)?)$")
RANGE = re.compile(rf"\[({DURATION})(?::({DURATION})?)?\]")
OFFSET = re.compile(rf"\boffset\s+(-?)({DURATION})\b")


def seconds(text: str) -> float:
    return sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", text))


def duration(value: float) -> str:
    """Seconds as a Prometheus duration: whole seconds when it is one, else milliseconds (never below 1ms)."""
    ms = max(1, round(value * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def compress_text(text: str, factor: float) -> str:
    if not factor > 0:
        raise FleetError(f"--factor {factor:g}: use a number above 0 (20 plays the rules 20x faster)")

    def short(d: str) -> str:
        return duration(seconds(d) / factor)

    out = []
    for line in text.split("\n"):
        m = FIELD.match(line)
        if m:
            line = m[1] + short(m[2]) + m[3]
        else:
            line = RANGE.sub(lambda r: "[" + short(r[1]) + (":" + short(r[2]) if r[2] else (":" if ":" in r[0] else ""))
                             + "]", line)
            line = OFFSET.sub(lambda o: f"offset {o[1]}{short(o[2])}", line)
        out.append(line)
    return "\n".join(out)


def compress(path: Path, factor: float) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise FleetError(f"{path}: no such rule file") from None
    except UnicodeDecodeError:
        raise FleetError(f"{path}: not a text file") from None
    return f"# {path.name} with every duration divided by {factor:g} (python -m handbook.fleet compress-rules)\n" \
        + compress_text(text, factor)
