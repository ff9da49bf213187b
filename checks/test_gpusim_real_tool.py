"""The simulator's nvidia-smi and dmesg stand-ins against the real tools, recorded on the GPU runner.

snippets/troubleshooting/index/03_real_tool_outputs.py records what the real nvidia-smi (driver 580 on an H100 or
H200) and dmesg print; this check plays the same commands on the simulator and compares what must match: the -q
sections, their field names, nesting and label column; the plain table's frame, headers and cell widths; the
header nvidia-smi gives each --query-gpu and --query-compute-apps field (canonical names and units); the field
names the real tool accepts; and dmesg's refusal for a user without CAP_SYSLOG. Values are not compared: the
simulator plays scenarios, not the runner's card.

Until the recording exists the comparison is skipped with that reason. To compare against raw captures instead
(files made by a capture script, one `$ command` header, the output, and `[exit N]` per file), point
HANDBOOK_REAL_TOOL_CAPTURES at their folder.
"""
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from handbook import gpusim
from handbook.gpusim import kernel_log, nvidia_smi

ROOT = Path(__file__).resolve().parent.parent
SNIPPET = ROOT / "snippets" / "troubleshooting" / "index" / "03_real_tool_outputs.py"
CAPTURES_ENV = "HANDBOOK_REAL_TOOL_CAPTURES"
IDLE, BUSY = "healthy-idle", "busy-training"


# ---- the real outputs: the recording, or a folder of raw captures ----------------------------------------------
def from_recording():
    from handbook import recordings

    path = recordings.path_for(SNIPPET)
    if not path.exists():
        return None
    data = recordings.load(path)
    artifact = data["artifacts"].get("real_tool.json", {}).get("json")
    if not artifact:
        raise AssertionError(f"{path}: has no real_tool.json; re-record {SNIPPET.name}")
    return artifact, f"{path.relative_to(ROOT)} ({data['provenance'].get('gpu_model')}, driver "\
                     f"{data['provenance'].get('driver_version')})"


def read_capture(folder: Path, name: str) -> dict | None:
    """{"argv", "exit", "stdout"} of one capture file: `$ command`, its output, `[exit N]`."""
    path = folder / f"{name}.txt"
    if not path.exists():
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    status = re.fullmatch(r"\[exit (\d+)\]", lines[-1]) if lines else None
    return {"argv": lines[0].removeprefix("$ ").split() if lines else [],
            "exit": int(status[1]) if status else None,
            "stdout": "\n".join(lines[1:-1] if status else lines[1:]), "stderr": ""}


def from_captures(folder: Path):
    names = {"plain": "smi_plain_idle", "q": "smi_q", "q_d": "smi_q_d", "q_d_more": "smi_q_d_more",
             "help_query_gpu": "help_query_gpu", "help_query_compute_apps": "help_query_apps",
             "apps": "q_apps_idle", "dmesg": "dmesg_root", "dmesg_nobody": "dmesg_nobody"}
    commands = {key: read_capture(folder, name) for key, name in names.items()}
    commands = {k: v for k, v in commands.items() if v}
    headers, apps = {}, {}
    for name in ("q_csv1", "q_csv2"):
        capture = read_capture(folder, name)
        if capture and capture["exit"] == 0:
            fields = next(a for a in capture["argv"] if a.startswith("--query-gpu=")).split("=", 1)[1].split(",")
            headers.update(zip(fields, capture["stdout"].splitlines()[0].split(", ")))
    busy = {key: read_capture(folder, name) for key, name in (("plain", "smi_plain_busy"), ("apps", "q_apps_busy"))}
    capture = busy["apps"]
    if capture and capture["exit"] == 0:
        fields = next(a for a in capture["argv"] if a.startswith("--query-compute-apps=")).split("=", 1)[1].split(",")
        apps = dict(zip(fields, capture["stdout"].splitlines()[0].split(", ")))
    return {"commands": commands, "csv_headers": headers, "apps_headers": apps,
            "busy": {"commands": {k: v for k, v in busy.items() if v}}}, f"raw captures in {folder}"


def real():
    folder = os.environ.get(CAPTURES_ENV)
    if folder:
        return from_captures(Path(folder))
    found = from_recording()
    if found is None:
        pytest.skip(f"no recording of the real tools yet: the GPU runner records it with `python -m handbook.record "
                    f"docs/troubleshooting/index.md --only {SNIPPET.name}` (or set {CAPTURES_ENV})")
    return found


@pytest.fixture(scope="module")
def recorded():
    return real()


# ---- the simulator's outputs -----------------------------------------------------------------------------------
def simulated(argv, scenario=IDLE) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        nvidia_smi.main(argv, scenario=scenario)
    return out.getvalue()


def q_skeleton(text: str) -> list[tuple[int, str, int | None]]:
    """(depth, label, colon column or None) of every line of the first GPU's -q block: names, no values."""
    out, inside = [], False
    for line in text.splitlines():
        if re.match(r"GPU [0-9A-Fa-f]{8}:", line):
            if inside:
                break
            inside = True
            continue
        if not inside or not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 4
        if ": " in line or line.rstrip().endswith(":"):
            out.append((depth, line.split(":")[0].strip(), line.index(":")))
        else:
            out.append((depth, line.strip(), None))
    return out


def is_subsequence(small, big) -> bool:
    it = iter(big)
    return all(item in it for item in small)


def differences(ours, theirs, limit=12) -> str:
    import difflib

    diff = difflib.unified_diff([str(x) for x in theirs], [str(x) for x in ours], "real", "simulated", lineterm="", n=1)
    return "\n".join(list(diff)[:limit * 3])


# ---- the comparisons ---------------------------------------------------------------------------------------------
def command(recorded, name):
    data, where = recorded
    result = data["commands"].get(name)
    if not result or result.get("exit") != 0:
        pytest.skip(f"{where}: no successful `{name}` capture")
    return result["stdout"], where


@pytest.mark.parametrize("name, argv", [
    ("q_d", ["-q", "-d", "ECC,ROW_REMAPPER,PERFORMANCE,TEMPERATURE,POWER"]),
])
def test_q_sections_and_field_names_are_the_real_tools(recorded, name, argv):
    text, where = command(recorded, name)
    theirs, ours = q_skeleton(text), q_skeleton(simulated(argv))
    assert theirs, f"{where}: `{name}` has no GPU block"
    assert [(d, label) for d, label, _ in ours] == [(d, label) for d, label, _ in theirs], (
        f"nvidia-smi {' '.join(argv)}: sections or field names differ from {where}\n"
        + differences([(d, label) for d, label, _ in ours], [(d, label) for d, label, _ in theirs]))
    assert [c for *_, c in ours] == [c for *_, c in theirs], f"the label column differs from {where}"


@pytest.mark.parametrize("name, argv", [
    ("q", ["-q"]),
    ("q_d_more", ["-q", "-d", "MEMORY,UTILIZATION,CLOCK,COMPUTE,PIDS,PAGE_RETIREMENT"]),
])
def test_every_q_line_the_simulator_prints_is_one_the_real_tool_prints_in_that_order(recorded, name, argv):
    text, where = command(recorded, name)
    theirs = [(d, label) for d, label, _ in q_skeleton(text)]
    ours = [(d, label) for d, label, _ in q_skeleton(simulated(argv))]
    missing = [line for line in ours if line not in theirs]
    assert not missing, f"nvidia-smi {' '.join(argv)}: lines the real tool ({where}) does not print: {missing[:8]}"
    assert is_subsequence(ours, theirs), f"nvidia-smi {' '.join(argv)}: order differs from {where}\n" + differences(
        ours, [line for line in theirs if line in ours])


def frame(text: str) -> tuple[list[str], list[list[int]]]:
    """The plain table's frame and header lines (versions masked) and, per data row, where its | cells end."""
    fixed, cells = [], []
    for line in text.splitlines()[1:]:  # the first line is the timestamp
        line = re.sub(r"\d+\.\d+(\.\d+)?", "V", line.rstrip())
        if line.startswith(("+", "|=")) or re.search(r"NVIDIA-SMI|Persistence-M|Pwr:Usage|MIG M\.|Processes:|"
                                                     r"GPU   GI|ID   ID", line):
            fixed.append(line)
        elif line.startswith("|"):
            cells.append([i for i, ch in enumerate(line) if ch == "|"])
    return fixed, cells


@pytest.mark.parametrize("name, scenario", [("plain", IDLE), ("busy:plain", BUSY)])
def test_the_plain_table_has_the_real_frame_and_columns(recorded, name, scenario):
    data, where = recorded
    if name.startswith("busy:"):
        result = data.get("busy", {}).get("commands", {}).get("plain")
        if not result or result.get("exit") != 0:
            pytest.skip(f"{where}: no capture of plain nvidia-smi with a process running")
        text = result["stdout"]
    else:
        text, where = command(recorded, name)
    real_fixed, real_cells = frame(text)
    sim_fixed, sim_cells = frame(simulated([], scenario))
    assert sim_fixed == [line for line in real_fixed if line in sim_fixed] and set(real_fixed) == set(sim_fixed), (
        f"plain nvidia-smi: frame or header lines differ from {where}\n" + differences(sim_fixed, real_fixed))
    assert set(map(tuple, sim_cells)) <= set(map(tuple, real_cells)), (
        f"plain nvidia-smi: cell boundaries {sorted(set(map(tuple, sim_cells)))} vs the real {sorted(set(map(tuple, real_cells)))}")


def sim_header(field: str, apps=False) -> str:
    flag = "--query-compute-apps" if apps else "--query-gpu"
    out = simulated([f"{flag}={field}", "--format=csv"], BUSY).splitlines()
    return out[0] if out else ""


def test_csv_headers_name_each_field_as_the_real_tool_does(recorded):
    data, where = recorded
    headers = {f: h for f, h in data.get("csv_headers", {}).items() if not h.startswith("refused")}
    if not headers:
        pytest.skip(f"{where}: no --query-gpu headers recorded")
    known = set(nvidia_smi.fields(gpusim.simulated_module(IDLE, banner=False))) | set(nvidia_smi.GPU_ALIASES)
    wrong = {f: (sim_header(f), h) for f, h in headers.items() if f in known and sim_header(f) != h}
    assert not wrong, f"--query-gpu headers (simulated, real from {where}): {wrong}"
    apps = data.get("apps_headers", {})
    wrong = {f: (sim_header(f, apps=True), h) for f, h in apps.items() if sim_header(f, apps=True) != h}
    assert not wrong, f"--query-compute-apps headers (simulated, real from {where}): {wrong}"


def quoted(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if re.fullmatch(r'\s*"[^"]+"(\s+or\s+"[^"]+")*\s*', line):
            names |= set(re.findall(r'"([^"]+)"', line))
    return names


def test_the_stand_in_accepts_only_fields_the_real_tool_lists(recorded):
    text, where = command(recorded, "help_query_gpu")
    ours = set(nvidia_smi.fields(gpusim.simulated_module(IDLE, banner=False))) | set(nvidia_smi.GPU_ALIASES)
    assert not ours - quoted(text), f"fields the stand-in plays that {where} does not list: {sorted(ours - quoted(text))}"
    text, _ = command(recorded, "help_query_compute_apps")
    apps = {"timestamp", "gpu_name", "gpu_bus_id", "gpu_serial", "gpu_uuid", "pid", "process_name",
            "used_gpu_memory"} | set(nvidia_smi.APPS_ALIASES)
    assert apps <= quoted(text), f"compute-apps fields {apps - quoted(text)} are not the real tool's"


def test_dmesg_refuses_and_logs_the_way_the_real_one_does(recorded, tmp_path):
    data, where = recorded
    runs = [r for r in (data["commands"].get("dmesg"), data["commands"].get("dmesg_nobody")) if r]
    lines = [line.strip() for r in runs for line in (r.get("stderr", "") + "\n" + r.get("stdout", "")).splitlines()
             if line.startswith("dmesg: ")]  # dmesg's own refusal (in a pipeline the exit status is the last tool's)
    env = {**gpusim.child_env("dmesg-restricted"), "HANDBOOK_GPUSIM_PYTHON": sys.executable}
    ours = subprocess.run([str(nvidia_smi.BIN_DIR / "dmesg")], env=env, capture_output=True, text=True)
    if lines:
        assert ours.returncode == 1 and ours.stderr.strip() in lines, (
            f"dmesg refusal: ours {ours.stderr.strip()!r}, the real one's {lines}")
    loaded = [line for r in (data["commands"].get("dmesg"),) if r and r.get("exit") == 0
              for line in r["stdout"].splitlines() if "NVRM: loading" in line]
    if loaded:
        sim_line = next(line for line in kernel_log.lines(IDLE) if "NVRM: loading" in line)
        shape = re.compile(r"NVRM: loading NVIDIA UNIX (Open Kernel Module for x86_64|x86_64 Kernel Module)  \S+")
        assert shape.search(loaded[-1]) and shape.search(sim_line), (loaded[-1], sim_line)
    if not lines and not loaded:
        pytest.skip(f"{where}: dmesg neither refused nor showed the driver's load line")


def test_the_capture_program_runs_against_the_stand_ins(tmp_path):
    """The recording program itself works: here against the simulator's nvidia-smi and dmesg (on CPU)."""
    env = gpusim.child_env(IDLE)
    env["PATH"] = f"{nvidia_smi.BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable
    done = subprocess.run([sys.executable, str(SNIPPET)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    captured = json.loads((tmp_path / "real_tool.json").read_text())
    assert captured["commands"]["q_d"]["exit"] == 0 and captured["csv_headers"]["clocks.sm"] == "clocks.current.sm [MHz]"
    assert captured["nvml"]["field_values"]["NVML_FI_DEV_GET_GPU_RECOVERY_ACTION"] == 0
