"""The provisioning script (snippets/cuda/driver-upgrades/provision-gpu-node.sh) against a stubbed Ubuntu node.

Stub apt-get, apt-mark, apt-cache, dpkg, dpkg-query, nvidia-smi, systemctl, modprobe, mokutil, nvidia-ctk, curl,
uname and id on PATH log every call and keep the node's state in files: installed packages and their versions,
holds (apt-get refuses to move a held package, as apt does), the loaded kernel module (a sandboxed /proc),
services, NVSwitches on a sandboxed PCI bus. The checks assert the plan, the calls, pinning and holds, Fabric
Manager at the driver's version on NVSwitch nodes, that services start only once the module is loaded, the
reboot exit status, rollback, --verify (read only), the refusals, and shellcheck; planted errors make them fail.
"""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "snippets/cuda/driver-upgrades/provision-gpu-node.sh"
KERNEL = "6.8.0-45-generic"
NEW, OLD = "580.159.04", "580.159.03"  # both carry the R580 fix of the newest bulletin the script knows
VULNERABLE, FIXED = "580.126.09", "580.159.03"  # an R580 release older than that fix (bulletin 5821), and the fix
# Commands that change a node; a dry run, --verify, or a run on a provisioned node must make none of them.
MUTATING = re.compile(r"^(apt-get (update|install)|apt-mark (hold|unhold)|dpkg -i|modprobe"
                      r"|systemctl (enable|start|restart|daemon-reload)|nvidia-ctk (runtime|config)|curl)\b")


def repo(branch="580") -> dict[str, list[str]]:
    """What `apt-cache madison` offers: Ubuntu's -server-open driver packages, Fabric Manager, the rest."""
    driver = [f"{NEW}-0ubuntu0.24.04.2", f"{OLD}-0ubuntu0.24.04.1", f"{VULNERABLE}-0ubuntu0.24.04.1"]
    pkgs = {f"{name}-{branch}-server": driver for name in ("nvidia-utils", "nvidia-compute-utils", "libnvidia-compute")}
    pkgs[f"nvidia-headless-no-dkms-{branch}-server-open"] = driver
    pkgs[f"nvidia-fabricmanager-{branch}"] = driver
    pkgs[f"libnvidia-nscq-{branch}"] = driver
    pkgs[f"nvidia-dkms-{branch}-server-open"] = driver
    pkgs[f"linux-modules-nvidia-{branch}-server-open-{KERNEL}"] = ["6.8.0-45.45+1"]
    pkgs[f"linux-headers-{KERNEL}"] = ["6.8.0-45.45"]
    for name in ("nvidia-container-toolkit", "datacenter-gpu-manager-4-cuda13", "cuda-toolkit-13-0", "cuda-keyring"):
        pkgs[name] = ["1.0-1"]
    return pkgs


STUBS = {
    "apt-get": r'''
[ "$1" = install ] || exit 0
allow=0; for a in "$@"; do [ "$a" = --allow-downgrades ] && allow=1; done
for a in "$@"; do
  case "$a" in -*|install) continue ;; esac
  name=${a%%=*}; ver=${a#*=}; [ "$ver" = "$a" ] && ver=$(head -n1 "$STATE/repo/$name" 2>/dev/null || echo 1.0-1)
  if [ -f "$STATE/hold/$name" ] && [ -f "$STATE/pkg/$name" ] && [ "$(cat "$STATE/pkg/$name")" != "$ver" ]; then
    echo "E: Held packages were changed and -y was used without --allow-change-held-packages." >&2; exit 100
  fi
  if [ -f "$STATE/pkg/$name" ] && [ "$allow" = 0 ] && [ "$(printf '%s\n' "$ver" "$(cat "$STATE/pkg/$name")" | sort -V | head -n1)" = "$ver" ] && [ "$(cat "$STATE/pkg/$name")" != "$ver" ]; then
    echo "E: Packages were downgraded and -y was used without --allow-downgrades." >&2; exit 100
  fi
  echo "$ver" > "$STATE/pkg/$name"
done''',
    "apt-mark": r'''
case "$1" in
  hold) shift; for p in "$@"; do touch "$STATE/hold/$p"; done ;;
  unhold) shift; for p in "$@"; do rm -f "$STATE/hold/$p"; done ;;
  showhold) ls "$STATE/hold" ;;
esac''',
    "apt-cache": r'''
case "$1" in
  madison) [ -f "$STATE/repo/$2" ] && while read -r v; do echo " $2 | $v | http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64 Packages"; done < "$STATE/repo/$2" ;;
  show) [ -f "$STATE/repo/$2" ] || { echo "E: No packages found" >&2; exit 100; } ;;
esac''',
    "dpkg": r'''
case "$1" in
  -s) [ -f "$STATE/pkg/$2" ] || { echo "dpkg-query: package '$2' is not installed" >&2; exit 1; }; echo "Status: install ok installed" ;;
  -i) echo 1.1-1 > "$STATE/pkg/cuda-keyring" ;;
esac''',
    "dpkg-query": r'''
fmt=""; pats=()
for a in "$@"; do case "$a" in -W) ;; -f=*) fmt=${a#-f=} ;; *) pats+=("$a") ;; esac; done
[ ${#pats[@]} -gt 0 ] || pats=("*")
found=1
for f in "$STATE"/pkg/*; do
  [ -f "$f" ] || continue; name=$(basename "$f")
  for p in "${pats[@]}"; do
    # shellcheck disable=SC2053
    if [[ $name == $p ]]; then
      found=0; out=${fmt//'${Package}'/$name}; out=${out//'${Version}'/$(cat "$f")}; out=${out//'${Status}'/install ok installed}
      out=${out//'${db:Status-Abbrev}'/ii }
      printf '%b' "$out"
    fi
  done
done
exit $found''',
    "nvidia-smi": r'''
v="$PROVISION_PROC/driver/nvidia/version"
[ -f "$v" ] || { echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."; exit 9; }
loaded=$(grep -oE '[0-9]+\.[0-9]+\.[0-9]+' "$v" | head -n1)
utils=$(ls "$STATE"/pkg/ | grep -m1 '^nvidia-utils-' || true)
if [ -n "$utils" ]; then inst=$(cut -d- -f1 "$STATE/pkg/$utils"); [ "$inst" = "$loaded" ] || { echo "Failed to initialize NVML: Driver/library version mismatch"; exit 18; }; fi
n=$(cat "$STATE/gpus")
case "$*" in
  *--query-compute-apps*) cat "$STATE/apps" 2>/dev/null ;;
  *persistence_mode*) for _ in $(seq "$n"); do cat "$STATE/persistence"; done ;;
  *driver_version*) for _ in $(seq "$n"); do echo "$loaded"; done ;;
  *fabric.state*) for _ in $(seq "$n"); do cat "$STATE/fabric"; done ;;
esac''',
    "systemctl": r'''
case "$1" in
  is-active) [ -f "$STATE/active/${@: -1}" ] ;;
  is-enabled) [ -f "$STATE/enabled/${@: -1}" ] ;;
  enable) shift; for s in "$@"; do touch "$STATE/enabled/$s"; done ;;
  start|restart)
    [ -f "$PROVISION_PROC/driver/nvidia/version" ] || case "$2" in nvidia-*) echo "Job for $2.service failed" >&2; exit 1 ;; esac
    touch "$STATE/active/$2"
    [ "$2" = nvidia-persistenced ] && echo Enabled > "$STATE/persistence"
    [ "$2" = nvidia-fabricmanager ] && echo "Completed, Success" > "$STATE/fabric"
    true ;;
esac''',
    "modprobe": r'''
[ "$1" = nvidia ] || exit 0
utils=$(ls "$STATE"/pkg/ | grep -m1 '^nvidia-utils-' || true)
[ -n "$utils" ] || { echo "modprobe: FATAL: Module nvidia not found" >&2; exit 1; }
mkdir -p "$PROVISION_PROC/driver/nvidia"
echo "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  $(cut -d- -f1 "$STATE/pkg/$utils")  Release Build" > "$PROVISION_PROC/driver/nvidia/version"''',
    "mokutil": r'''cat "$STATE/secureboot"''',
    "nvidia-ctk": r'''
[ "$1" = --version ] && { echo "NVIDIA Container Toolkit CLI version $(cat "$STATE/ctk-version" 2>/dev/null || echo 1.19.1)"; exit 0; }
case "$*" in
  *--runtime=containerd*) d="$PROVISION_SYSROOT/etc/containerd/conf.d"; mkdir -p "$d"
    echo '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]' > "$d/99-nvidia.toml"
    case "$*" in *--set-as-default*) echo 'default_runtime_name = "nvidia"' >> "$d/99-nvidia.toml" ;; esac
    echo 'imports = ["/etc/containerd/conf.d/*.toml"]' > "$PROVISION_SYSROOT/etc/containerd/config.toml" ;;
  *--runtime=docker*) mkdir -p "$PROVISION_SYSROOT/etc/docker"
    echo '{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}' > "$PROVISION_SYSROOT/etc/docker/daemon.json" ;;
  config\ --in-place*) c="$PROVISION_SYSROOT/etc/nvidia-container-runtime/config.toml"; mkdir -p "$(dirname "$c")"
    while [ $# -gt 0 ]; do [ "$1" = --set ] && echo "${2%%=*} = ${2#*=}" >> "$c"; shift; done ;;
esac''',
    "curl": r'''while [ $# -gt 0 ]; do [ "$1" = -o ] && { echo "downloaded" > "$2"; }; shift; done''',
    "uname": r'''case "$1" in -r) echo ''' + KERNEL + ''' ;; -m) echo x86_64 ;; *) echo Linux ;; esac''',
    "id": "echo 0",
}
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="{version}"\nID={id}\nPRETTY_NAME="Ubuntu {version} LTS"\n'


class Node:
    """A sandbox: stub commands on PATH, the node's state in files, a sysroot and a /proc of its own."""

    def __init__(self, base: Path, os_id="ubuntu", version="24.04", nvswitches=0, gpus=8, branch="580"):
        self.base, self.state, self.sysroot, self.proc = base, base / "state", base / "sysroot", base / "proc"
        for sub in ("pkg", "hold", "active", "enabled", "repo"):
            (self.state / sub).mkdir(parents=True)
        for name, versions in repo(branch).items():
            (self.state / "repo" / name).write_text("\n".join(versions) + "\n")
        (self.state / "gpus").write_text(f"{gpus}\n")
        (self.state / "persistence").write_text("Disabled\n")
        (self.state / "fabric").write_text("N/A, N/A\n" if not nvswitches else "In Progress, N/A\n")
        (self.state / "secureboot").write_text("SecureBoot disabled\n")
        (self.sysroot / "etc").mkdir(parents=True)
        (self.sysroot / "run/systemd/system").mkdir(parents=True)
        (self.sysroot / "etc/os-release").write_text(UBUNTU.format(id=os_id, version=version))
        (self.proc / "1").mkdir(parents=True)
        (self.proc / "1/comm").write_text("systemd\n")
        (self.proc / "modules").write_text("")
        for i in range(nvswitches + gpus):
            dev = self.sysroot / f"sys/bus/pci/devices/0000:{i + 1:02x}:00.0"
            dev.mkdir(parents=True)
            (dev / "vendor").write_text("0x10de\n")
            (dev / "class").write_text("0x068000\n" if i < nvswitches else "0x030200\n")
        self.bin = base / "bin"
        self.bin.mkdir()
        for name, body in STUBS.items():
            path = self.bin / name
            path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$STATE/calls.log"\n{body.strip()}\n')
            path.chmod(0o755)

    def run(self, *args: str, script: Path = SCRIPT, today="2026-12") -> subprocess.CompletedProcess:
        (self.state / "calls.log").write_text("")
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "STATE": str(self.state), "PROVISION_SYSROOT": str(self.sysroot),
               "PROVISION_PROC": str(self.proc), "PROVISION_TODAY": today}
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=60)

    def calls(self) -> list[str]:
        return (self.state / "calls.log").read_text().splitlines()

    def changes(self) -> list[str]:
        return [call for call in self.calls() if MUTATING.match(call)]

    def installed(self) -> dict[str, str]:
        return {p.name: p.read_text().strip() for p in (self.state / "pkg").iterdir()}

    def held(self) -> set[str]:
        return {p.name for p in (self.state / "hold").iterdir()}

    def load_module(self, version=NEW):
        """What a reboot does: the kernel module of `version` is loaded."""
        (self.proc / "driver/nvidia").mkdir(parents=True, exist_ok=True)
        (self.proc / "driver/nvidia/version").write_text(
            f"NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {version}  Release Build\n")

    def reboot(self):
        utils = next(v for k, v in self.installed().items() if k.startswith("nvidia-utils-"))
        self.load_module(utils.split("-")[0])
        (self.proc / "modules").write_text("")
        for service in (self.state / "enabled").iterdir():
            (self.state / "active" / service.name).touch()
        if (self.state / "enabled/nvidia-persistenced").exists():
            (self.state / "persistence").write_text("Enabled\n")
        if (self.state / "enabled/nvidia-fabricmanager").exists():
            (self.state / "fabric").write_text("Completed, Success\n")


def plan(stdout: str) -> list[str]:
    steps = re.findall(r"^  (\d+)\. (.+)$", stdout, re.M)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1)), stdout  # numbered 1..N
    return [text for _, text in steps]


def report(stdout: str) -> dict[str, tuple[str, str]]:
    """--verify's lines: check -> (status, detail)."""
    return {m[2]: (m[1], m[3]) for m in re.finditer(r"^(OK|MISSING|REBOOT|UNKNOWN|N/A|INFO)\s+(\S+)\s+(.*)$", stdout, re.M)}


@pytest.fixture
def node(tmp_path) -> Node:
    return Node(tmp_path)


@pytest.fixture
def hgx(tmp_path) -> Node:
    """An HGX H100/H200 board: 8 GPUs and 4 NVSwitches on the PCI bus."""
    return Node(tmp_path, nvswitches=4)


# ---- static checks ---------------------------------------------------------------------------------------
# shellcheck itself runs on the script in checks/test_shell_blocks.py: the driver-upgrades page includes it whole
# in a bash fence. This proves it would catch a planted mistake.
def test_shellcheck_catches_a_planted_error(tmp_path):
    assert shutil.which("shellcheck"), "shellcheck missing: run checks/install-system-deps.sh"
    bad = tmp_path / "bad.sh"
    bad.write_text(SCRIPT.read_text().replace('mkdir -p "$(dirname "$CTK_KEY")"', "mkdir -p $(dirname $CTK_KEY)"))
    assert bad.read_text() != SCRIPT.read_text()
    assert subprocess.run(["shellcheck", str(bad)], capture_output=True).returncode != 0


# ---- a fresh node ----------------------------------------------------------------------------------------
def test_dry_run_on_a_fresh_node_plans_everything_and_changes_nothing(node):
    done = node.run("--dry-run")
    assert done.returncode == 0, done.stderr
    steps = plan(done.stdout)
    expected = ["CUDA repository", "Container Toolkit repository", f"install driver {NEW}", "nvidia-container-toolkit",
                "--set-as-default", "ignore NVIDIA_VISIBLE_DEVICES in unprivileged containers",
                "datacenter-gpu-manager-4-cuda13", "hold every NVIDIA package",
                "nvidia-persistenced nvidia-dcgm"]
    assert len(steps) == len(expected), steps
    for text, want in zip(steps, expected):
        assert want in text, (text, want)
    assert "cuda-toolkit" not in done.stdout  # the toolkit only where code is compiled (--toolkit)
    assert "fabricmanager" not in done.stdout  # no NVSwitch on this node's bus
    assert node.changes() == [], node.changes()
    assert "none made" in done.stdout


def test_provisioning_pins_holds_loads_then_starts_services_and_a_rerun_changes_nothing(node):
    done = node.run()
    assert done.returncode == 0, done.stdout + done.stderr
    calls = node.changes()
    install = next(c for c in calls if f"nvidia-utils-580-server={NEW}" in c)
    assert f"nvidia-headless-no-dkms-580-server-open={NEW}-" in install and f"libnvidia-compute-580-server={NEW}-" in install
    assert f"linux-modules-nvidia-580-server-open-{KERNEL}" in install  # Canonical's signed, prebuilt module
    assert "nvidia-dkms" not in install
    assert calls[calls.index(install) - 1] == "apt-get update"
    assert "nvidia-ctk runtime configure --runtime=containerd --set-as-default" in calls
    assert ("nvidia-ctk config --in-place --set accept-nvidia-visible-devices-envvar-when-unprivileged=false"
            " --set accept-nvidia-visible-devices-as-volume-mounts=true") in calls
    # every NVIDIA package on the node is held, and the holds are real
    nvidia = {p for p in node.installed() if re.match(r"(nvidia-|libnvidia-|linux-modules-nvidia-|datacenter-gpu|cuda-)", p)}
    assert nvidia and nvidia <= node.held(), nvidia - node.held()
    # the module is loaded before any service that needs it is started
    assert calls.index("modprobe nvidia") < calls.index("systemctl start nvidia-dcgm")
    assert calls.index("modprobe nvidia") < calls.index("systemctl start nvidia-persistenced")
    assert f"verified: driver {NEW}" in done.stdout and report(done.stdout)["persistence"][0] == "OK"

    again = node.run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert node.changes() == [], node.changes()
    assert "nothing to do" in again.stdout
    assert "nothing to do" in node.run("--dry-run").stdout and node.changes() == []


def test_an_nvswitch_node_gets_fabric_manager_at_the_drivers_exact_version(hgx):
    done = hgx.run()
    assert done.returncode == 0, done.stdout + done.stderr
    installed = hgx.installed()
    assert installed["nvidia-fabricmanager-580"] == installed["nvidia-utils-580-server"]
    assert installed["libnvidia-nscq-580"] == installed["nvidia-utils-580-server"]
    assert {"nvidia-fabricmanager-580", "libnvidia-nscq-580"} <= hgx.held()
    calls = hgx.changes()
    assert calls.index("modprobe nvidia") < calls.index("systemctl start nvidia-fabricmanager")
    assert report(done.stdout)["fabric-manager"][0] == "OK"


def test_a_module_that_cannot_be_loaded_now_means_reboot_and_services_wait_for_it(node):
    """nouveau holds the GPU: the new module loads only after a reboot. Services are enabled for the boot, never
    started against a missing module (DCGM started before the module is the defect this guards)."""
    (node.proc / "modules").write_text("nouveau 2834432 0 - Live 0x0\n")
    done = node.run()
    assert done.returncode == 3, done.stdout + done.stderr
    assert "reboot" in done.stdout
    calls = node.changes()
    assert "systemctl enable nvidia-persistenced nvidia-dcgm" in calls
    assert not [c for c in calls if c.startswith(("systemctl start", "modprobe"))], calls
    node.reboot()
    after = node.run()
    assert after.returncode == 0 and node.changes() == [], after.stdout + after.stderr


# ---- refusals ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--driver-branch", "999"], "--driver-branch 999: not a data-center branch this script installs; accepted: 580"),
    (["--driver-branch", "58x"], "--driver-branch 58x: not a data-center branch"),
    (["--driver-branch", "535"], "--driver-branch 535 reached its end of life in June 2026; accepted: 580"),
    (["--driver-branch", "570"], "--driver-branch 570 is a production branch (not long-term support)"),
    (["--driver-version", "595.58.03"], "--driver-version 595.58.03: write a point release of branch 580"),
    (["--driver-version", VULNERABLE], f"--driver-version {VULNERABLE}: older than {FIXED}, the R580 fix of NVIDIA"
                                       " security bulletin 5821 (May 2026); pin 580.159.03 or later"),
    (["--exporter-address", "any"], "--exporter-address any: accepted: an IPv4 address of this host"),
    (["--runtime", "cri-o"], "--runtime cri-o: accepted: containerd, docker, none"),
    (["--toolkit", "11.8"], "--toolkit 11.8: accepted: 12.x or 13.x"),
    (["--nvswitch", "maybe"], "--nvswitch maybe: accepted: auto, yes, no"),
    (["--driver-branch"], "--driver-branch needs a value: one of 580"),
    (["--bogus"], "unknown option --bogus"),
])
def test_bad_arguments_get_one_line_naming_the_accepted_values(node, args, message):
    done = node.run(*args)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr
    assert node.changes() == []


def test_a_branch_past_its_end_of_life_is_refused_by_date(node):
    done = node.run("--dry-run", today="2028-07")
    assert done.returncode == 2 and "support ended in June 2028" in done.stderr
    assert node.run("--dry-run", today="2028-06").returncode == 0


@pytest.mark.parametrize("os_id, version", [("ubuntu", "20.04"), ("debian", "12"), ("ubuntu", "25.10")])
def test_unsupported_os_is_refused_with_one_line(tmp_path, os_id, version):
    node = Node(tmp_path, os_id, version)
    done = node.run("--dry-run")
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert f"unsupported OS {os_id} {version}" in done.stderr and node.changes() == []


def test_secure_boot_without_a_signed_module_is_refused_and_without_it_dkms_needs_headers(node):
    (node.state / f"repo/linux-modules-nvidia-580-server-open-{KERNEL}").unlink()
    (node.state / "secureboot").write_text("SecureBoot enabled\n")
    done = node.run("--dry-run")
    assert done.returncode == 2 and "Secure Boot is on and no signed" in done.stderr, done.stderr
    (node.state / "secureboot").write_text("SecureBoot disabled\n")
    steps = plan(node.run("--dry-run").stdout)
    driver = next(s for s in steps if s.startswith("install driver"))
    assert f"linux-headers-{KERNEL}" in driver and "nvidia-dkms-580-server-open" in driver
    (node.state / f"repo/linux-headers-{KERNEL}").unlink()
    done = node.run("--dry-run")
    assert done.returncode == 2 and f"no linux-headers-{KERNEL}" in done.stderr


def test_a_pinned_point_release_is_installed_exactly_or_refused(node):
    assert node.run("--driver-version", OLD).returncode == 0
    assert node.installed()["nvidia-utils-580-server"].startswith(OLD + "-")
    done = node.run("--driver-version", "580.999.1", "--dry-run")
    assert done.returncode == 2 and "--driver-version 580.999.1" in done.stderr and NEW in done.stderr


def test_a_running_driver_of_another_branch_is_left_to_the_upgrade_procedure(node):
    node.load_module("570.195.03")
    done = node.run()
    assert done.returncode == 2 and "drain" in done.stderr and node.changes() == []


def test_gpus_in_use_block_a_driver_change(node):
    node.run("--driver-version", OLD)
    (node.state / "apps").write_text("4242\n")
    done = node.run("--driver-version", NEW)
    assert done.returncode == 2 and "GPU processes are running" in done.stderr and node.changes() == []


# ---- holds, upgrades, rollback -------------------------------------------------------------------------
def test_a_point_release_upgrade_unholds_installs_holds_and_rollback_restores_it(node):
    assert node.run("--driver-version", OLD).returncode == 0
    up = node.run("--driver-version", NEW)
    assert up.returncode == 3, up.stdout + up.stderr  # the old module is still loaded: reboot
    assert node.installed()["nvidia-utils-580-server"].startswith(NEW + "-")
    saved = (node.sysroot / "var/lib/provision-gpu-node/rollback.list").read_text()
    assert f"nvidia-utils-580-server={OLD}-0ubuntu0.24.04.1" in saved
    node.reboot()
    back = node.run("--rollback")
    assert back.returncode == 3, back.stdout + back.stderr
    assert node.installed()["nvidia-utils-580-server"].startswith(OLD + "-")
    assert "nvidia-utils-580-server" in node.held()
    assert any("--allow-downgrades" in c for c in node.changes())


def test_rollback_without_saved_state_is_refused(node):
    done = node.run("--rollback")
    assert done.returncode == 2 and "no saved state" in done.stderr


def test_holds_are_verified_after_apt_mark(node, tmp_path):
    """Planted fault: apt-mark 'holds' everything but the driver's compute library; the step must fail."""
    stub = node.bin / "apt-mark"
    stub.write_text(stub.read_text().replace('touch "$STATE/hold/$p"', '[ "$p" = libnvidia-compute-580-server ] || touch "$STATE/hold/$p"'))
    done = node.run()
    assert done.returncode == 1 and "not held after apt-mark hold: libnvidia-compute-580-server" in done.stderr


# ---- container runtime ---------------------------------------------------------------------------------
def test_toolkit_118_drop_in_counts_as_configured(node):
    """Toolkit >= 1.18 writes /etc/containerd/conf.d/99-nvidia.toml and leaves config.toml with an imports line: a
    grep of config.toml alone would reconfigure and restart containerd on every run."""
    dropin = node.sysroot / "etc/containerd/conf.d/99-nvidia.toml"
    dropin.parent.mkdir(parents=True)
    dropin.write_text('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\ndefault_runtime_name = "nvidia"\n')
    (node.sysroot / "etc/containerd/config.toml").write_text('imports = ["/etc/containerd/conf.d/*.toml"]\n')
    assert not any("runtime configure" in s for s in plan(node.run("--dry-run").stdout))
    dropin.write_text('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n')  # not the default
    assert any("--set-as-default" in s for s in plan(node.run("--dry-run").stdout))


def test_docker_node_runs_dcgm_exporter_as_a_systemd_unit(node):
    done = node.run("--runtime", "docker")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nvidia-ctk runtime configure --runtime=docker" in node.calls()
    unit = (node.sysroot / "etc/systemd/system/dcgm-exporter.service").read_text()
    # published on loopback only: the exporter has no authentication (security chapter, monitoring endpoints)
    assert "--gpus all" in unit and "-p 127.0.0.1:9400:9400" in unit and "dcgm-exporter:4.5.3-4.8.2" in unit
    assert node.run("--runtime", "docker").returncode == 0 and node.changes() == []
    assert not any("nvidia-ctk config" in c for c in node.calls())  # docker --gpus needs the variable honoured
    assert node.run("--runtime", "docker", "--exporter-address", "10.0.0.5").returncode == 0
    assert "-p 10.0.0.5:9400:9400" in (node.sysroot / "etc/systemd/system/dcgm-exporter.service").read_text()


def test_the_cuda_toolkit_only_on_request(node):
    steps = plan(node.run("--dry-run", "--toolkit", "13.0").stdout)
    assert any("cuda-toolkit-13-0" in s for s in steps)


# ---- --verify: read only ------------------------------------------------------------------------------------
def test_verify_on_a_provisioned_hgx_node_is_ready_and_changes_nothing(hgx):
    hgx.run()
    done = hgx.run("--verify")
    assert done.returncode == 0, done.stdout
    lines = report(done.stdout)
    for check in ("driver-module", "nvidia-smi", "driver-branch", "driver-security", "fabric-manager", "persistence",
                  "holds", "container-toolkit", "containerd", "gpu-isolation", "dcgm"):
        assert lines[check][0] == "OK", (check, lines.get(check))
    assert hgx.changes() == []


def test_verify_names_a_pending_reboot_with_its_own_exit_status(node):
    node.run("--driver-version", OLD)
    node.run("--driver-version", NEW)  # installed, old module still loaded
    done = node.run("--verify")
    assert done.returncode == 3 and report(done.stdout)["driver-module"][0] == "REBOOT", done.stdout
    assert node.changes() == []


def test_verify_catches_fabric_manager_down_on_an_nvswitch_node(hgx):
    hgx.run()
    (hgx.state / "active/nvidia-fabricmanager").unlink()
    (hgx.state / "fabric").write_text("In Progress, N/A\n")
    done = hgx.run("--verify")
    assert done.returncode == 1 and report(done.stdout)["fabric-manager"][0] == "MISSING", done.stdout


def test_verify_flags_a_retired_branch(node):
    node.load_module("535.288.01")
    (node.state / "pkg/nvidia-utils-535-server").write_text("535.288.01-0ubuntu1\n")
    lines = report(node.run("--verify").stdout)
    assert lines["driver-branch"][0] == "MISSING" and "June 2026" in lines["driver-branch"][1]


def test_verify_on_a_bare_container_like_machine_reports_and_never_crashes(tmp_path):
    """What the GPU runner may be: no systemd, no dpkg packages, no toolkit, no Fabric Manager; nvidia-smi works."""
    bare = Node(tmp_path, gpus=1)
    shutil.rmtree(bare.sysroot / "run/systemd")
    (bare.proc / "1/comm").write_text("process_api\n")
    bare.load_module()
    (bare.bin / "nvidia-ctk").unlink()
    done = bare.run("--verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == "" and "Traceback" not in done.stdout
    lines = report(done.stdout)
    assert lines["environment"][0] == "INFO" and "no systemd" in done.stdout
    assert lines["driver-module"][0] == "OK" and lines["nvidia-smi"][0] == "OK"
    assert lines["fabric-manager"][0] == "N/A" and lines["container-toolkit"][0] == "MISSING"
    assert bare.changes() == []


# ---- planted error -----------------------------------------------------------------------------------------
def test_a_step_that_ignores_the_node_state_is_caught(node, tmp_path):
    """Planted error: the container-toolkit step no longer checks dpkg first, so every run reinstalls it."""
    mutant = tmp_path / "mutant.sh"
    text = SCRIPT.read_text()
    mutant.write_text(text.replace("installed nvidia-container-toolkit ||", "false ||"))
    assert mutant.read_text() != text
    node.run(script=mutant)
    node.run(script=mutant)
    assert any("nvidia-container-toolkit" in call for call in node.changes())  # what the rerun check rejects


def test_verify_catches_fabric_manager_at_another_version_than_the_driver(hgx):
    hgx.run()
    (hgx.state / "pkg/nvidia-fabricmanager-580").write_text(f"{OLD}-0ubuntu0.24.04.1\n")
    done = hgx.run("--verify")
    status, detail = report(done.stdout)["fabric-manager"]
    assert done.returncode == 1 and status == "MISSING" and f"does not match driver {NEW}" in detail


def test_verify_flags_a_driver_older_than_the_newest_bulletin_fix(node):
    """A held driver gets no fix by itself: a node pinned below the bulletin's fixed version is not ready."""
    node.run()
    (node.state / "pkg/nvidia-utils-580-server").write_text(f"{VULNERABLE}-0ubuntu0.24.04.1\n")
    node.load_module(VULNERABLE)
    done = node.run("--verify")
    status, detail = report(done.stdout)["driver-security"]
    assert done.returncode == 1 and status == "MISSING" and FIXED in detail and "5821" in detail, done.stdout
    assert node.changes() == []


def test_verify_flags_a_container_toolkit_older_than_the_newest_bulletin_fix(node):
    """The toolkit is held with the driver, so it takes no fix by itself: 1.18.1 predates CVE-2026-24260's fix."""
    node.run()
    (node.state / "ctk-version").write_text("1.18.1\n")
    done = node.run("--verify")
    status, detail = report(done.stdout)["container-toolkit"]
    assert done.returncode == 1 and status == "MISSING" and "1.19.1" in detail and "5850" in detail, done.stdout


def test_a_shared_node_whose_toolkit_honours_the_variable_is_not_ready(node):
    """With nvidia as containerd's default runtime, an unprivileged pod that sets NVIDIA_VISIBLE_DEVICES=all gets
    every GPU unless the toolkit ignores the variable: --verify says so, and a rerun puts the setting back."""
    node.run()
    (node.sysroot / "etc/nvidia-container-runtime/config.toml").write_text(
        "accept-nvidia-visible-devices-envvar-when-unprivileged = true\n")
    done = node.run("--verify")
    assert done.returncode == 1 and report(done.stdout)["gpu-isolation"][0] == "MISSING", done.stdout
    assert any("ignore NVIDIA_VISIBLE_DEVICES" in s for s in plan(node.run("--dry-run").stdout))
