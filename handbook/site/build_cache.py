"""A content-addressed disk cache for what a site build derives from committed inputs alone (charts, calculator runs).

Every build of the site draws the same charts and runs the same calculators; the checks build it several times (the
learner and instructor editions, a cohort release) and `make serve` restarts rebuild it again. An entry's key is the
sha256 of everything its value depends on (the inputs' bytes, the code that derives it, the library versions), so
an edited recording, price file or calculator misses the cache and is computed afresh; nothing is ever invalidated.

    HANDBOOK_CACHE_DIR   where entries live (default: $XDG_CACHE_HOME/mod107-handbook, else ~/.cache/...)
    HANDBOOK_CACHE_DIR=off   no disk cache: every value is computed
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

ENV = "HANDBOOK_CACHE_DIR"


def directory() -> Path | None:
    configured = os.environ.get(ENV)
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mod107-handbook"


def key(*parts: str | bytes) -> str:
    """sha256 over the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def cached(kind: str, entry_key: str, compute: Callable[[], object],
           keep: Callable[[object], bool] = lambda value: True) -> object:
    """compute()'s JSON-serializable value, read from the cache when present; written there atomically after, when
    keep(value) (a failed calculator run is not kept: it may have timed out).

    A cache that cannot be read or written (read-only home, full disk, a damaged entry) only costs the computation."""
    root = directory()
    path = root / kind / f"{entry_key}.json" if root else None
    if path:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    value = compute()
    if path and keep(value):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(value, f)
            os.replace(tmp, path)  # concurrent builds write the same bytes: last one wins, none reads half a file
        except OSError:
            pass
    return value
