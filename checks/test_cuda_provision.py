"""The provisioning script (snippets/cuda/driver-upgrades/provision-gpu-node.sh) against a stubbed Ubuntu node:
fake apt-get, apt-mark, dpkg, nvidia-smi, systemctl, nvidia-ctk, curl and id on PATH log every call and keep the
node's state in files. The checks assert the plan, the calls, that a second run changes nothing, the refusals,
and shellcheck; planted errors (a shellcheck finding, a step that ignores the node's state) make them fail."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "snippets/cuda/driver-upgrades/provision-gpu-node.sh"
# Commands that change a node; a dry run, or a run on a provisioned node, must make none of them.
MUTATING = re.compile(r"^(apt-get (update|install)|apt-mark hold|dpkg -i|systemctl (enable|restart|daemon-reload)"
                      r"|nvidia-ctk|curl)\b")
STUBS = {
    "apt-get": """
if [ "$1" = install ]; then for p in "$@"; do case "$p" in -*|install) ;; *) touch "$STATE/pkg/$p" ;; esac; done; fi""",
    "apt-mark": """
case "$1" in
  hold) shift; for p in "$@"; do touch "$STATE/hold/$p"; done ;;
  showhold) ls "$STATE/hold" ;;
esac""",
    "dpkg": """
case "$1" in
  -s) [ -f "$STATE/pkg/$2" ] || { echo "dpkg-query: package '$2' is not installed" >&2; exit 1; }
      echo "Status: install ok installed" ;;
  -i) touch "$STATE/pkg/cuda-keyring" ;;
esac""",
    "nvidia-smi": """
[ -f "$STATE/driver" ] || { echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."; exit 9; }
cat "$STATE/driver\"""",
    "systemctl": """
case "$1" in
  is-active) [ -f "$STATE/active/$3" ] ;;
  enable) touch "$STATE/active/$3" ;;
esac""",
    "nvidia-ctk": """
case "$3" in
  --runtime=containerd) mkdir -p "$PROVISION_SYSROOT/etc/containerd"
    echo '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]' >> "$PROVISION_SYSROOT/etc/containerd/config.toml" ;;
  --runtime=docker) mkdir -p "$PROVISION_SYSROOT/etc/docker"
    echo '{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}' > "$PROVISION_SYSROOT/etc/docker/daemon.json" ;;
esac""",
    "curl": """
while [ $# -gt 0 ]; do [ "$1" = -o ] && { echo "downloaded" > "$2"; }; shift; done""",
    "id": "echo 0",
}
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="{version}"\nID={id}\nPRETTY_NAME="{id} {version}"\n'


class Node:
    """A sandbox: stub commands on PATH, the node's state in files, a sysroot for the files the script writes."""

    def __init__(self, base: Path, os_id="ubuntu", version="24.04"):
        self.base, self.state, self.sysroot = base, base / "state", base / "sysroot"
        for sub in ("pkg", "hold", "active"):
            (self.state / sub).mkdir(parents=True)
        (self.sysroot / "etc").mkdir(parents=True)
        (self.sysroot / "etc/os-release").write_text(UBUNTU.format(id=os_id, version=version))
        self.bin = base / "bin"
        self.bin.mkdir()
        for name, body in STUBS.items():
            path = self.bin / name
            path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$STATE/calls.log"\n{body.strip()}\n')
            path.chmod(0o755)

    def run(self, *args: str, script: Path = SCRIPT) -> subprocess.CompletedProcess:
        (self.state / "calls.log").write_text("")
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "STATE": str(self.state), "PROVISION_SYSROOT": str(self.sysroot)}
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=60)

    def calls(self) -> list[str]:
        return (self.state / "calls.log").read_text().splitlines()

    def changes(self) -> list[str]:
        return [call for call in self.calls() if MUTATING.match(call)]

    def reboot(self, driver="580.159.04"):
        (self.state / "driver").write_text(driver + "\n")


def plan(stdout: str) -> list[str]:
    steps = re.findall(r"^  (\d+)\. (.+)$", stdout, re.M)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1)), stdout  # numbered 1..N
    return [text for _, text in steps]


@pytest.fixture
def node(tmp_path) -> Node:
    return Node(tmp_path)


def test_shellcheck_passes():
    assert shutil.which("shellcheck"), "shellcheck missing: run checks/install-system-deps.sh"
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_shellcheck_catches_a_planted_error(tmp_path):
    assert shutil.which("shellcheck"), "shellcheck missing: run checks/install-system-deps.sh"
    bad = tmp_path / "bad.sh"
    bad.write_text(SCRIPT.read_text().replace('mkdir -p "$(dirname "$CTK_KEY")"', "mkdir -p $(dirname $CTK_KEY)"))
    assert bad.read_text() != SCRIPT.read_text()
    assert subprocess.run(["shellcheck", str(bad)], capture_output=True).returncode != 0


def test_dry_run_on_a_fresh_node_plans_everything_and_changes_nothing(node):
    done = node.run("--dry-run")
    assert done.returncode == 0, done.stderr
    steps = plan(done.stdout)
    # Everything a bare node lacks, repositories first (packages come from them), the service after its package.
    expected = ["CUDA repository", "Container Toolkit repository", "nvidia-driver-580-server-open",
                "hold the driver", "cuda-toolkit-13-0", "nvidia-container-toolkit", "nvidia-ctk runtime configure",
                "datacenter-gpu-manager-4-cuda13", "nvidia-dcgm"]
    assert len(steps) == len(expected), steps
    for text, want in zip(steps, expected):
        assert want in text, (text, want)
    assert node.changes() == [], node.changes()
    assert "none made" in done.stdout


def test_provisioning_makes_the_planned_calls_then_a_rerun_changes_nothing(node):
    done = node.run()
    assert done.returncode == 0, done.stderr
    calls = node.changes()
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert "nvidia-driver-580-server-open nvidia-utils-580-server" in installs[0]
    assert any(c.endswith(" cuda-toolkit-13-0") for c in installs)
    assert any(c.endswith(" nvidia-container-toolkit") for c in installs)
    assert any(c.endswith(" datacenter-gpu-manager-4-cuda13") for c in installs)
    assert "apt-mark hold nvidia-driver-580-server-open nvidia-utils-580-server" in calls
    assert calls.index("nvidia-ctk runtime configure --runtime=containerd") < calls.index("systemctl restart containerd")
    assert "systemctl enable --now nvidia-dcgm" in calls
    assert calls[calls.index(installs[0]) - 1] == "apt-get update"  # the package lists are fresh before installing
    assert "reboot" in done.stdout  # the new driver is not loaded yet

    node.reboot()
    again = node.run()
    assert again.returncode == 0, again.stderr
    assert node.changes() == [], node.changes()
    assert "nothing to do" in again.stdout and "verified: driver 580.159.04" in again.stdout
    assert "nothing to do" in node.run("--dry-run").stdout


def test_docker_node_runs_dcgm_exporter_as_a_systemd_unit(node):
    done = node.run("--runtime", "docker")
    assert done.returncode == 0, done.stderr
    assert "nvidia-ctk runtime configure --runtime=docker" in node.calls()
    assert "systemctl enable --now dcgm-exporter" in node.calls()
    unit = (node.sysroot / "etc/systemd/system/dcgm-exporter.service").read_text()
    assert "--gpus all" in unit and "-p 9400:9400" in unit and "nvcr.io/nvidia/k8s/dcgm-exporter:" in unit
    node.reboot()
    assert node.run("--runtime", "docker").returncode == 0 and node.changes() == []


def test_a_provisioned_node_that_lost_a_service_gets_only_that_step(node):
    node.run()
    node.reboot()
    (node.state / "active/nvidia-dcgm").unlink()
    done = node.run()
    assert plan(done.stdout) == ["enable and start nvidia-dcgm (the DCGM host engine)"]
    assert node.changes() == ["systemctl enable --now nvidia-dcgm"]


@pytest.mark.parametrize("os_id, version", [("ubuntu", "20.04"), ("debian", "12"), ("ubuntu", "25.10")])
def test_unsupported_os_is_refused_with_one_line(tmp_path, os_id, version):
    node = Node(tmp_path, os_id, version)
    done = node.run("--dry-run")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert f"unsupported OS {os_id} {version}" in done.stderr and "Ubuntu 22.04 and 24.04" in done.stderr
    assert node.calls() == []


@pytest.mark.parametrize("args, message", [
    (["--driver-branch", "58x"], "write a driver branch"),
    (["--driver-branch", "570"], "needs driver branch >= 580"),  # CUDA 13.0 (the default) on R570
    (["--runtime", "cri-o"], "use containerd or docker"),
    (["--cuda", "13"], "write MAJOR.MINOR"),
    (["--bogus"], "unknown option --bogus"),
])
def test_bad_arguments_get_one_line(node, args, message):
    done = node.run(*args)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr


def test_dcgm_follows_the_drivers_cuda_major_not_the_toolkits(node):
    """DCGM 4 packages match the CUDA major of the driver (R580: 13), whatever toolkit is installed beside it."""
    steps = plan(node.run("--dry-run", "--cuda", "12.8").stdout)
    assert any("cuda-toolkit-12-8" in s for s in steps)
    assert any("datacenter-gpu-manager-4-cuda13" in s for s in steps)
    steps = plan(node.run("--dry-run", "--cuda", "12.8", "--driver-branch", "570").stdout)
    assert any("datacenter-gpu-manager-4-cuda12" in s for s in steps)


def test_a_running_driver_of_another_branch_is_left_to_the_upgrade_procedure(node):
    node.reboot("570.195.03")
    done = node.run()
    assert done.returncode == 2 and "drain" in done.stderr and node.changes() == []


def test_a_step_that_ignores_the_node_state_is_caught(node, tmp_path):
    """Planted error: the container-toolkit step no longer checks dpkg first, so every run reinstalls it."""
    mutant = tmp_path / "mutant.sh"
    text = SCRIPT.read_text()
    mutant.write_text(text.replace("installed nvidia-container-toolkit ||", "false ||"))
    assert mutant.read_text() != text
    node.run(script=mutant)
    node.reboot()
    node.run(script=mutant)
    assert any("nvidia-container-toolkit" in call for call in node.changes())  # what the rerun check rejects
