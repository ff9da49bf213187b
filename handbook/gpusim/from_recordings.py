"""Scenario values taken from a real GPU's recording instead of typed constants.

A value in a scenario file may name a figure a snippet recorded on a real card:

    gpm_sm_util_pct = {recording = "fundamentals/compute/02_busy_vs_utilized", key = "busy_vs_utilized.json/busy bf16 matmul/sm_activity"}

`recording` is the snippet's path under snippets/ without `.py`; `key` walks the recording like a page's figure
reference does (a JSON file the snippet wrote, then keys separated by `/`). The table is replaced by the recorded
number when the scenario loads, so a re-recording updates the simulator and the checks that read the same key.
Recordings live in a checkout of the handbook (snippets/<...>.rec.json), not in the installed package: outside a
checkout, set HANDBOOK_SNIPPETS to a checkout's snippets/ folder. Every problem is one line naming the scenario.
"""
import json
import os
from pathlib import Path

REFERENCE_KEYS = {"recording", "key"}
SNIPPETS_ENV = "HANDBOOK_SNIPPETS"


class RecordedValueError(ValueError):
    """A recording reference that cannot be resolved; str() is one line."""


def snippets_dir() -> Path | None:
    """The snippets/ folder: $HANDBOOK_SNIPPETS, else the checkout this package sits in, else None (installed)."""
    if os.environ.get(SNIPPETS_ENV):
        return Path(os.environ[SNIPPETS_ENV])
    checkout = Path(__file__).resolve().parents[2] / "snippets"
    return checkout if checkout.is_dir() else None


def is_reference(value) -> bool:
    return isinstance(value, dict) and set(value) == REFERENCE_KEYS


def recorded_value(recording: str, key: str):
    """The number at `key` in snippets/<recording>.rec.json (raises RecordedValueError saying what to fix)."""
    if not isinstance(recording, str) or not isinstance(key, str) or not recording or not key:
        raise RecordedValueError('write {recording = "section/page/NN_name", key = "file.json/key/..."}')
    folder = snippets_dir()
    if folder is None:
        raise RecordedValueError(
            f"the value comes from the recording snippets/{recording}.rec.json, which ships with a checkout of the "
            f"handbook, not with the installed package: run from a checkout or set {SNIPPETS_ENV} to its snippets/ folder")
    path = folder / f"{recording}.rec.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordedValueError(f"no recording {path}: record {recording}.py on a GPU "
                                 "(python -m handbook.record) or fix the name") from None
    except (OSError, json.JSONDecodeError) as err:
        raise RecordedValueError(f"unreadable recording {path} ({err}): re-record it") from None
    first, _, rest = key.partition("/")
    value = ((data.get("artifacts") or {}).get(first) or {}).get("json")
    if value is None:
        raise RecordedValueError(f"{path.name} has no JSON file {first!r}: the key starts with a file the snippet wrote")
    walked = first
    for part in rest.split("/") if rest else []:
        if not isinstance(value, dict) or part not in value:
            raise RecordedValueError(f"{path.name} has no key {part!r} in {walked}")
        value, walked = value[part], f"{walked}/{part}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordedValueError(f"{path.name}: {key} is {value!r}, not a number")
    return value


def resolve(data, where: str, path: str = ""):
    """`data` (a parsed scenario) with every {recording, key} table replaced by its recorded number."""
    if is_reference(data):
        try:
            return recorded_value(data["recording"], data["key"])
        except RecordedValueError as err:
            raise RecordedValueError(f"{where}: {path or 'value'}: {err}") from None
    if isinstance(data, dict):
        return {k: resolve(v, where, f"{path}.{k}" if path else k) for k, v in data.items()}
    if isinstance(data, list):
        return [resolve(v, where, f"{path}[{i}]") for i, v in enumerate(data)]
    return data
