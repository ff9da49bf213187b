"""The node security check (snippets/security/exposure/01_node_security.py) on fixture roots with stubbed
`nvidia-ctk` and `nvidia-smi`: a vulnerable and a fixed case for every CVE row of advisories.toml in legacy and CDI
mode, every driver bulletin branch, the cases NVIDIA's bulletins spell out, and every partial read UNKNOWN, never OK.
Runs the program in-process (its main(argv)) with NVML switched off, so a GPU runner gets the same answers."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from handbook import ROOT, SNIPPETS, gpusim
from handbook.course import drills
from handbook.gpusim import nvidia_smi

FOLDER = SNIPPETS / "security" / "exposure"
PROGRAM = SNIPPETS / "security/exposure/01_node_security.py"
ADVISORIES = tomllib.loads((FOLDER / "advisories.toml").read_text())
HARDENED_TOOLKIT = SNIPPETS / "security" / "device-access" / "toolkit-config.toml"


def load_program():
    spec = importlib.util.spec_from_file_location("node_security", PROGRAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = load_program()


class Node:
    """A fixture node: a root directory, and a bin directory with stub nvidia-ctk and nvidia-smi."""

    def __init__(self, tmp_path: Path):
        self.root, self.bin = tmp_path / "root", tmp_path / "bin"
        self.root.mkdir()
        self.bin.mkdir()

    def file(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def tool(self, name: str, stdout: str, code: int = 0):
        script = self.bin / name
        script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}\nEOF\nexit {code}\n")
        script.chmod(0o755)

    def toolkit(self, version: str, mode: str | None = None, extra: str = ""):
        self.tool("nvidia-ctk", f"NVIDIA Container Toolkit CLI version {version}\ncommit: 0123abc")
        body = extra + (f'\n[nvidia-container-runtime]\nmode = "{mode}"\n' if mode else "")
        self.file("etc/nvidia-container-runtime/config.toml", body)
        if mode == "cdi":
            self.cdi_spec()

    def driver(self, version: str):
        self.tool("nvidia-smi", version)

    def cdi_spec(self, env: bool = True, name: str = "etc/cdi/nvidia.yaml"):
        hook_env = "    env:\n    - NVIDIA_CTK_DEBUG=false\n" if env else ""
        self.file(name, "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n  containerEdits:\n"
                        "    deviceNodes:\n    - path: /dev/nvidia0\ncontainerEdits:\n  hooks:\n"
                        "  - hookName: createContainer\n    path: /usr/bin/nvidia-cdi-hook\n    args:\n"
                        "    - nvidia-cdi-hook\n    - update-ldcache\n" + hook_env)

    def run(self, monkeypatch, capsys, *args) -> tuple[int, dict]:
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}/usr/bin:/bin")
        monkeypatch.setattr(CHECK, "pynvml", None)  # the driver version comes from the stub nvidia-smi
        code = CHECK.main(["--json", "--root", str(self.root), *args])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip().startswith("{") else {}


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def cves(report) -> set[str]:
    """The CVEs the toolkit check reports as applying (WARN or CRITICAL lines)."""
    lines = report["checks"]["toolkit"]["evidence"]
    return {m[1] for line in lines if not line.startswith("OK") for m in [re.search(r"(CVE-\d+-\d+)", line)] if m}


# ---- every CVE row: a vulnerable and a fixed case, in each mode ------------------------------------------------
def just_below(version: str) -> str:
    major, minor, patch = map(int, version.split("."))
    return f"{major}.{minor}.{patch - 1}" if patch else f"{major}.{minor - 1}.99"


def row_cases():
    for row in ADVISORIES["toolkit"]:
        last = re.search(r"up to and including ([\d.]+)", row["toolkit_affected"])[1]
        for r in row["ranges"]:
            inside = r.get("from") or (last if CHECK.version(last) < CHECK.version(r["below"]) else just_below(r["below"]))
            for mode in ("legacy", "cdi"):
                yield pytest.param(row["cve"], inside, mode, mode in r["modes"], id=f"{row['cve']}-{inside}-{mode}")
        for mode in ("legacy", "cdi"):
            yield pytest.param(row["cve"], row["toolkit_fixed"], mode, False, id=f"{row['cve']}-fixed-{mode}")


@pytest.mark.parametrize("cve, version, mode, applies", list(row_cases()))
def test_each_cve_row_is_found_when_vulnerable_and_not_when_fixed(node, monkeypatch, capsys, cve, version, mode,
                                                                  applies):
    node.toolkit(version, mode)
    node.driver("580.159.03")
    code, report = node.run(monkeypatch, capsys, "--check", "toolkit")
    assert (cve in cves(report)) == applies, report["checks"]["toolkit"]
    if applies:
        assert code in (1, 2) and f"bulletin {next(r['bulletin'] for r in ADVISORIES['toolkit'] if r['cve'] == cve)}" \
            in json.dumps(report)


# The cases NVIDIA's bulletins spell out, written from the bulletins, not from advisories.toml.
LEGACY_1_16_1 = {"CVE-2024-0132", "CVE-2024-0133", "CVE-2024-0134", "CVE-2024-0135", "CVE-2024-0136",
                 "CVE-2024-0137", "CVE-2025-23359", "CVE-2026-24260"}


@pytest.mark.parametrize("version, mode, expected", [
    ("1.16.1", "legacy", LEGACY_1_16_1),  # 23266/23267 hit only CDI mode before 1.17.5
    ("1.16.1", "cdi", {"CVE-2024-0134", "CVE-2024-0135", "CVE-2024-0136", "CVE-2024-0137", "CVE-2025-23266",
                       "CVE-2025-23267", "CVE-2026-24260"}),  # 0132, 0133, 23359: "does not impact ... CDI"
    ("1.17.2", "legacy", {"CVE-2024-0135", "CVE-2024-0136", "CVE-2024-0137", "CVE-2025-23359", "CVE-2026-24260"}),
    ("1.17.4", "legacy", {"CVE-2026-24260"}),
    ("1.17.4", "cdi", {"CVE-2025-23266", "CVE-2025-23267", "CVE-2026-24260"}),
    ("1.17.7", "legacy", {"CVE-2025-23266", "CVE-2025-23267", "CVE-2026-24260"}),
    ("1.17.8", "cdi", {"CVE-2026-24260"}),
    ("1.19.1-rc.1", "cdi", {"CVE-2026-24260"}),  # a release candidate comes before the fixed release
    ("1.19.1", "legacy", set()),
    ("1.20.0", "cdi", set()),
])
def test_bulletin_cases(node, monkeypatch, capsys, version, mode, expected):
    node.toolkit(version, mode)
    code, report = node.run(monkeypatch, capsys, "--check", "toolkit")
    assert cves(report) == expected
    assert code == (2 if expected else 0)


@pytest.mark.parametrize("version, specs, modes", [
    ("1.17.7", False, "legacy"),       # auto meant legacy before 1.18.0
    ("1.18.0", False, "cdi"),          # and just-in-time CDI from 1.18.0
    ("1.17.3", True, "cdi, legacy"),   # CDI specs on a legacy node: a container naming a CDI device uses them
])
def test_auto_mode_resolves_like_the_toolkit(node, monkeypatch, capsys, version, specs, modes):
    node.toolkit(version)
    if specs:
        node.cdi_spec()
    _, report = node.run(monkeypatch, capsys, "--check", "toolkit")
    assert f"modes {modes}:" in report["checks"]["toolkit"]["evidence"][0]
    if version == "1.17.3":  # 1.17.3 in CDI mode: 23266/23267 apply, 23359 (legacy) too
        assert {"CVE-2025-23266", "CVE-2025-23359"} <= cves(report)


# ---- driver bulletins: every branch of every bulletin, and the branches a bulletin leaves out --------------------
def driver_cases():
    for b in ADVISORIES["driver"]:
        for branch, fixed in b["fixed"].items():
            major, minor, patch = fixed.split(".")
            before = f"{major}.{int(minor) - 1}.{patch}" if int(minor) else f"{major}.0.0"
            yield pytest.param(b["bulletin"], before, True, id=f"{b['bulletin']}-{branch}-before")
            yield pytest.param(b["bulletin"], fixed, False, id=f"{b['bulletin']}-{branch}-fixed")


@pytest.mark.parametrize("bulletin, version, flagged", list(driver_cases()))
def test_each_driver_bulletin_branch(node, monkeypatch, capsys, bulletin, version, flagged):
    node.driver(version)
    _, report = node.run(monkeypatch, capsys, "--check", "driver")
    found = any(f"bulletin {bulletin} (" in line for line in report["checks"]["driver"]["evidence"])
    assert found == flagged, report["checks"]["driver"]


@pytest.mark.parametrize("version, verdict, words", [
    ("580.95.05", "CRITICAL", ["bulletin 5747", "bulletin 5821", "580.159.03"]),  # Oct 2025's fix, behind two
    ("580.159.03", "OK", ["no known bulletin"]),
    ("595.71.05", "OK", ["no known bulletin"]),
    ("570.211.01", "WARN", ["not in bulletin(s) 5821", "R580 >= 580.159.03"]),  # R570 left out in May 2026
    ("590.48.01", "WARN", ["not in bulletin(s) 5821"]),
    ("550.163.01", "WARN", ["5670, 5703, 5747, 5821"]),
    ("575.51.02", "WARN", ["5670, 5703, 5747, 5821"]),  # R575 existed when later bulletins left it out
    ("470.256.02", "WARN", ["5586"]),
    ("600.20.03", "UNKNOWN", ["newer than every branch"]),
    ("580.95", "CRITICAL", ["bulletin 5821"]),
    ("N/A", "UNKNOWN", ["'N/A' is not a version"]),
])
def test_driver_cases(node, monkeypatch, capsys, version, verdict, words):
    node.driver(version)
    _, report = node.run(monkeypatch, capsys, "--check", "driver")
    text = " ".join(report["checks"]["driver"]["evidence"])
    assert report["checks"]["driver"]["verdict"] == verdict and all(w in text for w in words), text


# ---- settings, engines, CDI specs -------------------------------------------------------------------------------
def test_the_default_configuration_warns_about_the_environment_variable(node, monkeypatch, capsys):
    node.toolkit("1.20.0")  # an empty config.toml: every key at its default
    node.file("etc/containerd/conf.d/99-nvidia.toml", '[plugins."io.containerd.cri.v1.runtime".containerd]\n'
                                                      'default_runtime_name = "nvidia"\n')
    code, report = node.run(monkeypatch, capsys, "--check", "settings", "--check", "runtimes")
    assert report["checks"]["settings"]["verdict"] == "WARN"
    assert "(the default)" in report["checks"]["settings"]["evidence"][1]
    assert report["checks"]["runtimes"]["verdict"] == "WARN" and "99-nvidia.toml" in json.dumps(report)
    assert code == 1


def test_the_pages_hardened_toolkit_config_passes(node, monkeypatch, capsys):
    node.toolkit("1.20.0", extra=HARDENED_TOOLKIT.read_text())
    node.file("etc/docker/daemon.json", '{"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": '
                                        '"nvidia-container-runtime"}}}')
    code, report = node.run(monkeypatch, capsys, "--check", "settings", "--check", "runtimes", "--check", "toolkit")
    assert {n: c["verdict"] for n, c in report["checks"].items()} == {"settings": "OK", "runtimes": "OK",
                                                                      "toolkit": "OK"}, report
    assert code == 0


@pytest.mark.parametrize("mode, verdict", [("legacy", "CRITICAL"), ("cdi", "WARN")])
def test_turning_a_cve_fix_back_off_is_found(node, monkeypatch, capsys, mode, verdict):
    node.toolkit("1.20.0", mode, extra="accept-nvidia-visible-devices-envvar-when-unprivileged = false\n"
                                      "[features]\nallow-cuda-compat-libs-from-container = true\n")
    _, report = node.run(monkeypatch, capsys, "--check", "settings")
    assert report["checks"]["settings"]["verdict"] == verdict and "CVE-2025-23359" in json.dumps(report)


def test_the_gpu_operator_toolkit_configuration_is_read(node, monkeypatch, capsys):
    node.tool("nvidia-ctk", "NVIDIA Container Toolkit CLI version 1.20.0")
    node.file("usr/local/nvidia/toolkit/.config/nvidia-container-runtime/config.toml",
              "accept-nvidia-visible-devices-envvar-when-unprivileged = false\n")
    _, report = node.run(monkeypatch, capsys, "--check", "settings")
    assert report["checks"]["settings"]["verdict"] == "OK"
    assert "usr/local/nvidia/toolkit/.config" in report["checks"]["settings"]["evidence"][0]


@pytest.mark.parametrize("env, verdict", [(True, "OK"), (False, "WARN")])
def test_cdi_specs_written_before_the_nvidiascape_fix_are_found(node, monkeypatch, capsys, env, verdict):
    node.cdi_spec(env=env, name="var/run/cdi/nvidia.yaml")
    _, report = node.run(monkeypatch, capsys, "--check", "cdi")
    assert report["checks"]["cdi"]["verdict"] == verdict, report


def test_a_json_cdi_spec_is_read(node, monkeypatch, capsys):
    node.file("etc/cdi/nvidia.json", json.dumps({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "containerEdits": {
        "hooks": [{"hookName": "createContainer", "path": "/usr/bin/nvidia-cdi-hook", "args": ["x"]}]}}))
    _, report = node.run(monkeypatch, capsys, "--check", "cdi")
    assert report["checks"]["cdi"]["verdict"] == "WARN" and "1 of 1 hooks" in json.dumps(report)


# ---- a partial read is UNKNOWN, with one line that names what; never OK -------------------------------------------
PARTIAL = {
    "no nvidia-ctk": (lambda n: None, "toolkit", "no nvidia-ctk"),
    "nvidia-ctk without a version": (lambda n: n.tool("nvidia-ctk", "NVIDIA Container Toolkit CLI version unknown"),
                                     "toolkit", "'unknown' is not a version"),
    "nvidia-ctk fails": (lambda n: n.tool("nvidia-ctk", "error while loading shared libraries", 127), "toolkit",
                         "exited 127"),
    "config not TOML": (lambda n: n.file(CHECK.TOOLKIT_CONFIG, "mode = \n"), "settings", "not valid TOML"),
    "config unreadable": (lambda n: (n.root / CHECK.TOOLKIT_CONFIG).mkdir(parents=True), "settings",
                          "cannot read it"),
    "config value of the wrong type": (lambda n: n.file(CHECK.TOOLKIT_CONFIG,
                                       'accept-nvidia-visible-devices-envvar-when-unprivileged = "false"\n'),
                                       "settings", "is not true or false"),
    "unknown runtime mode": (lambda n: n.file(CHECK.TOOLKIT_CONFIG, '[nvidia-container-runtime]\nmode = "fast"\n'),
                             "settings", "mode = 'fast' is not one of"),
    "containerd drop-in not TOML": (lambda n: n.file("etc/containerd/conf.d/99-nvidia.toml", "[plugins\n"),
                                    "runtimes", "99-nvidia.toml: not valid TOML"),
    "daemon.json not JSON": (lambda n: n.file("etc/docker/daemon.json", "{"), "runtimes", "not valid JSON"),
    "CDI spec unreadable": (lambda n: (n.root / "etc/cdi/nvidia.yaml").mkdir(parents=True), "cdi",
                            "cannot read it"),
    "no driver version": (lambda n: None, "driver", "no nvidia-smi on PATH"),
    "nvidia-smi fails": (lambda n: n.tool("nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate",
                                          9), "driver", "nvidia-smi exited 9"),
}


@pytest.mark.parametrize("case", list(PARTIAL))
def test_a_partial_read_is_unknown_never_ok(node, monkeypatch, capsys, case):
    setup, check, words = PARTIAL[case]
    setup(node)
    code, report = node.run(monkeypatch, capsys, "--check", check)
    result = report["checks"][check]
    assert result["verdict"] == "UNKNOWN" and code == 3, result
    assert any(words in line for line in result["evidence"]), result


def test_settings_are_unknown_where_the_toolkit_is_missing_and_runtimes_say_why(node, monkeypatch, capsys):
    # The GPU runner is a bare VM with a driver and no toolkit: that must read UNKNOWN with reasons, not OK.
    node.driver("580.159.04")
    code, report = node.run(monkeypatch, capsys)
    verdicts = {n: c["verdict"] for n, c in report["checks"].items()}
    assert verdicts == {"driver": "OK", "toolkit": "UNKNOWN", "settings": "UNKNOWN", "runtimes": "OK", "cdi": "OK"}
    assert code == report["exit"] == 3


@pytest.mark.parametrize("argv, words", [
    (["--root", "/no/such/dir"], "--root /no/such/dir: not a directory"),
    (["--check", "drivers"], "invalid choice: 'drivers'"),
    (["--advisories", "/no/such.toml"], "advisories file /no/such.toml"),
])
def test_bad_input_is_one_line_and_exit_3(capsys, argv, words):
    try:
        code = CHECK.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 3 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_broken_advisories_file_names_the_row(tmp_path, capsys):
    broken = (FOLDER / "advisories.toml").read_text().replace('R580 = "580.159.03"', 'R580 = "585.1.2"')
    (tmp_path / "a.toml").write_text(broken)
    assert CHECK.main(["--advisories", str(tmp_path / "a.toml"), "--table", "driver"]) == 3
    assert "bulletin 5821: R580 = '585.1.2' is not a version of that branch" in capsys.readouterr().err


# ---- the tables the pages render ---------------------------------------------------------------------------------
def test_tables_hold_every_row_and_link_every_bulletin(capsys):
    for which, rows, key in (("toolkit", ADVISORIES["toolkit"], "cve"), ("driver", ADVISORIES["driver"], "bulletin"),
                             ("exporter", ADVISORIES["exporter"], "cve")):
        assert CHECK.main(["--table", which]) == 0
        text = capsys.readouterr().out
        for row in rows:
            assert str(row[key]) in text
            assert f"a_id/{row['bulletin']})" in text
        assert f"Checked against NVIDIA's bulletins on {ADVISORIES['checked']}" in text


def test_every_cve_row_cites_a_bulletin_date_and_fixed_version():
    for row in ADVISORIES["toolkit"]:
        assert row["toolkit_fixed"] == max((r["below"] for r in row["ranges"]), key=CHECK.version), row["cve"]
        assert row["cdi"] and row["published"] <= ADVISORIES["checked"]


# ---- the drill: the hidden scenario is found by the node check, and only by it -----------------------------------
def test_the_security_drill_is_solved_by_the_node_check(tmp_path):
    drill = drills.load()["drill-driver-bulletin"]
    assert drill.runbook == "../security/incident.md" and (ROOT / "docs/security/incident.md").is_file()
    env = gpusim.child_env(drill.scenario)
    env["PATH"] = f"{nvidia_smi.BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable
    done = subprocess.run([sys.executable, str(PROGRAM), "--json", "--check", "driver"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout)
    assert done.returncode == 2 and report["checks"]["driver"]["verdict"] == "CRITICAL", done.stderr
    assert "580.95.05" in report["checks"]["driver"]["evidence"][0]
    assert drills.grade(drill.id, "driver-vulnerable", "patch-node")[0]
    assert not drills.grade(drill.id, "healthy", "none")[0]  # every health check passes: not the answer


# ---- the page's shown output is what the program prints ------------------------------------------------------------
SHOWN = re.compile(r"<!-- node-check: (?P<spec>\S+) -->\n```console\n\$ (?P<cmd>[^\n]+)\n(?P<out>.*?)```", re.S)


def test_shown_node_check_output_is_real(tmp_path):
    page = (ROOT / "docs/security/exposure.md").read_text()
    shown = list(SHOWN.finditer(page))
    assert shown
    for m in shown:
        env = gpusim.child_env(m["spec"])
        env["HANDBOOK_GPUSIM_PYTHON"] = sys.executable
        args = m["cmd"].split()[2:]
        done = subprocess.run([sys.executable, str(PROGRAM), *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert done.stdout == m["out"], f"docs/security/exposure.md shows another output than:\n{done.stdout}"


# ---- quiz items: in the bank, answered in the key, which stays out of learners' pages --------------------------------
def test_the_quiz_asks_the_security_chapter_and_keeps_its_answers_in_the_key():
    from handbook.course.quiz import bank as bank_module, key as key_module

    bank = bank_module.load()
    key = key_module.load(bank)
    asked = [q for q in bank.questions if q.teaches.startswith("security/")]
    assert sum(q.objective == 2 for q in asked) >= 5 and any(q.objective == 5 for q in asked)
    assert bank_module.unresolved(bank) == []
    learner_text = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    for q in asked:
        entry = key[q.id]
        assert set(entry.misconceptions) == set(q.options) - {entry.answer}, q.id
        assert entry.why not in learner_text and entry.why not in (ROOT / "docs/assessment/bank.yaml").read_text()


def test_the_pages_render_the_tables_from_the_data():
    from mkdocs.exceptions import PluginError

    from handbook import DOCS
    from handbook.site import calculators

    page = DOCS / "security/exposure.md"
    shown = calculators.expand(page.read_text(), page, SNIPPETS)
    assert "<!-- calculator-markdown:" not in shown and "| CVE-2025-23266 (NVIDIAScape) |" in shown
    assert "Rendered when this page was built: `python snippets/security/exposure/01_node_security.py --table" in shown
    with pytest.raises(PluginError, match=r"exposure.md:2: .* exited 3"):  # a broken table fails the build
        calculators.expand("# t\n<!-- calculator-markdown: security/exposure/01_node_security.py --advisories"
                           " /no/such.toml --table driver -->", page, SNIPPETS)


def test_the_runbook_has_the_troubleshooting_structure_and_starts_from_the_node_check():
    from test_troubleshooting_pages import STRUCTURE

    text = (ROOT / "docs/security/incident.md").read_text()
    assert re.findall(r"^## (.+)$", text, re.M)[:len(STRUCTURE)] == STRUCTURE
    assert "python 01_node_security.py" in text.split("## Is it real?")[1].split("\n## ")[0]
    assert "`drill-driver-bulletin`" in text.split("\n## ")[0]
