#!/usr/bin/env bash
# Brings an Ubuntu 22.04/24.04 GPU node to a pinned data-center driver (every NVIDIA package held at one version,
# no older than the newest security bulletin's fix), Fabric Manager on NVSwitch systems (the same version as the
# driver), nvidia-persistenced, the NVIDIA Container Toolkit with the runtime configured (on a Kubernetes node: a
# pod gets only the GPUs the device plugin gave it), DCGM, and optionally the CUDA toolkit. Idempotent: each step
# checks the node first, so a second run changes nothing and ends with the verification.
#
#   sudo ./provision-gpu-node.sh --dry-run                 # the numbered plan; changes nothing
#   sudo ./provision-gpu-node.sh --driver-branch 580 --runtime containerd
#   ./provision-gpu-node.sh --verify                       # read-only: driver, module, security fixes, Fabric
#                                                          # Manager, persistence, holds, container runtime, DCGM
#   sudo ./provision-gpu-node.sh --rollback                # the NVIDIA package versions saved before the last change
#
# Exit status: 0 done and verified (or ready); 1 a step failed, or --verify found a problem; 2 refused: bad
# arguments, unsupported node, GPUs in use (nothing changed); 3 a reboot is required before the node is ready.
set -euo pipefail

ME=$(basename "$0")
SYSROOT="${PROVISION_SYSROOT:-}"           # tests point these at a sandbox; empty on a real node
PROC="${PROVISION_PROC:-/proc}"
TODAY="${PROVISION_TODAY:-$(date +%Y-%m)}"
OS_RELEASE="$SYSROOT/etc/os-release"
STATE_DIR="$SYSROOT/var/lib/provision-gpu-node"

# --8<-- [start:branches]
# Data-center driver branches this script installs: designation and end of life, from NVIDIA's support matrix
# (docs.nvidia.com/datacenter/tesla/drivers, "Supported Drivers and CUDA Toolkit Versions", read 2026-12-06).
# A branch past its end of life gets no security fixes: it is refused, like one NVIDIA does not list.
# The last field is the branch's fixed version in the newest GPU driver security bulletin read (bulletin 5821,
# May 2026: published 2026-05-19, revised 2026-05-21, NVIDIA/product-security): no older version is installed or
# passes --verify. Raise it with every new bulletin (the security chapter's advisories.toml lists them).
# shellcheck disable=SC2034  # used by the argument checks and --verify
BULLETIN="NVIDIA security bulletin 5821 (May 2026)"
# The container toolkit is held with the driver's packages, so it takes no fix by itself either: --verify wants the
# fixed version of the newest toolkit bulletin read (bulletin 5850, 2026-06-30, CVE-2026-24260).
CTK_FIXED=1.19.1 CTK_BULLETIN="NVIDIA security bulletin 5850 (June 2026, CVE-2026-24260)"
branch_info() {
  case "$1" in
    580) echo "long-term support branch|2028-06|June 2028|580.159.03" ;;
    595) echo "production branch|2027-03|March 2027|595.71.05" ;;
    *) return 1 ;;
  esac
}
# shellcheck disable=SC2034  # the messages below are used by the argument checks and --verify
ACCEPTED="580 (long-term support, to June 2028), 595 (production, to March 2027)" \
  RETIRED_535="reached its end of life in June 2026" \
  RETIRED_570="is a production branch (not long-term support) past its end of life"
# --8<-- [end:branches]

DRIVER_BRANCH=580
DRIVER_VERSION=""            # empty: the newest point release of the branch, then pinned and held there
RUNTIME=containerd           # containerd on a Kubernetes node, docker on a standalone one, none
TOOLKIT=none                 # the CUDA toolkit only where code is compiled: --toolkit 13.0
NVSWITCH=auto                # auto: Fabric Manager when an NVSwitch is on the PCI bus
EXPORTER=auto                # auto: a systemd unit with docker; the GPU Operator's DaemonSet with containerd
EXPORTER_IMAGE=nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless   # check NGC for the current tag
EXPORTER_ADDRESS=127.0.0.1   # where the Docker host publishes :9400 (no authentication): the management address
MODE=apply                   # apply, dry-run, verify, rollback

die() { echo "$ME: $*" >&2; exit 2; }
need() { if [ -z "$2" ]; then die "$1 needs a value: $3"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --driver-branch) need "$1" "${2:-}" "one of $ACCEPTED"; DRIVER_BRANCH=$2; shift 2 ;;
    --driver-version) need "$1" "${2:-}" "a point release of the branch, e.g. 580.159.03"; DRIVER_VERSION=$2; shift 2 ;;
    --runtime) need "$1" "${2:-}" "containerd, docker or none"; RUNTIME=$2; shift 2 ;;
    --toolkit) need "$1" "${2:-}" "MAJOR.MINOR (e.g. 13.0) or none"; TOOLKIT=$2; shift 2 ;;
    --nvswitch) need "$1" "${2:-}" "auto, yes or no"; NVSWITCH=$2; shift 2 ;;
    --exporter) need "$1" "${2:-}" "auto, systemd or none"; EXPORTER=$2; shift 2 ;;
    --exporter-image) need "$1" "${2:-}" "an image reference"; EXPORTER_IMAGE=$2; shift 2 ;;
    --exporter-address) need "$1" "${2:-}" "an IPv4 address of this host"; EXPORTER_ADDRESS=$2; shift 2 ;;
    --dry-run) MODE=dry-run; shift ;;
    --verify) MODE=verify; shift ;;
    --rollback) MODE=rollback; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1: see --help" ;;
  esac
done

# --8<-- [start:validate]
case "$DRIVER_BRANCH" in
  535) die "--driver-branch 535 $RETIRED_535; accepted: $ACCEPTED" ;;
  570) die "--driver-branch 570 $RETIRED_570; accepted: $ACCEPTED" ;;
esac
INFO=$(branch_info "$DRIVER_BRANCH") || die "--driver-branch $DRIVER_BRANCH: not a data-center branch this script installs; accepted: $ACCEPTED"
IFS='|' read -r BRANCH_KIND BRANCH_EOL BRANCH_EOL_TEXT BRANCH_FIXED <<< "$INFO"
older() { [ "$1" != "$2" ] && [ "$(printf '%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }   # version $1 < $2
[ "$MODE" = verify ] || [[ ! "$TODAY" > "$BRANCH_EOL" ]] ||
  die "--driver-branch $DRIVER_BRANCH: its support ended in $BRANCH_EOL_TEXT; accepted: $ACCEPTED (update this script's branch table)"
if [ -n "$DRIVER_VERSION" ]; then
  [[ "$DRIVER_VERSION" =~ ^${DRIVER_BRANCH}\.[0-9]+(\.[0-9]+)?$ ]] ||
    die "--driver-version $DRIVER_VERSION: write a point release of branch $DRIVER_BRANCH, e.g. $BRANCH_FIXED"
  ! older "$DRIVER_VERSION" "$BRANCH_FIXED" ||
    die "--driver-version $DRIVER_VERSION: older than $BRANCH_FIXED, the R$DRIVER_BRANCH fix of $BULLETIN; pin $BRANCH_FIXED or later"
fi
case "$RUNTIME" in containerd|docker|none) ;; *) die "--runtime $RUNTIME: accepted: containerd, docker, none" ;; esac
case "$NVSWITCH" in auto|yes|no) ;; *) die "--nvswitch $NVSWITCH: accepted: auto, yes, no" ;; esac
case "$EXPORTER" in auto|systemd|none) ;; *) die "--exporter $EXPORTER: accepted: auto, systemd, none" ;; esac
[[ "$EXPORTER_ADDRESS" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
  die "--exporter-address $EXPORTER_ADDRESS: accepted: an IPv4 address of this host (127.0.0.1, or the management network's)"
if [ "$TOOLKIT" != none ]; then
  [[ "$TOOLKIT" =~ ^(12|13)\.([0-9]+)$ ]] || die "--toolkit $TOOLKIT: accepted: 12.x or 13.x as MAJOR.MINOR (e.g. 13.0), or none"
  TOOLKIT_PKG="cuda-toolkit-${BASH_REMATCH[1]}-${BASH_REMATCH[2]}"   # branches 580 and 595 run CUDA 12.x and 13.x
fi
[ "$EXPORTER" = auto ] && { [ "$RUNTIME" = docker ] && EXPORTER=systemd || EXPORTER=none; }
# --8<-- [end:validate]

# ---- reading the node (no changes) ------------------------------------------------------------------------
installed() { dpkg -s "$1" >/dev/null 2>&1; }
version_of() {                                                                 # "" unless installed ("ii")
  local v; v=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$1" 2>/dev/null) || return 0
  [[ "$v" == ii* ]] && echo "${v#*|}"; return 0
}
upstream() { local v=${1#*:}; echo "${v%%-*}"; }                               # 580.159.03-0ubuntu1 -> 580.159.03
HELD=""                                                                        # apt-mark showhold, read once
held() { [ -n "$HELD" ] || HELD=$(apt-mark showhold 2>/dev/null; echo .); grep -qx -- "$1" <<< "$HELD"; }
forget_holds() { HELD=""; }                                                    # after apt-mark hold/unhold
have_systemd() { [ -d "$SYSROOT/run/systemd/system" ]; }                       # sd_booted(3)
active() { systemctl is-active --quiet "$1" 2>/dev/null; }
running() { grep -qsx "$1" "$PROC"/[0-9]*/comm; }                              # a process named $1
# Every NVIDIA package on the node, the ones this script installs and their dependencies: all of them are held.
nvidia_packages() {
  dpkg-query -W -f='${Package} ${Status}\n' 2>/dev/null | awk '$NF == "installed" {print $1}' |
    grep -E '^(nvidia-|libnvidia-|linux-modules-nvidia-|linux-objects-nvidia-|linux-signatures-nvidia-|datacenter-gpu-manager|cuda-|libcuda|libnvsdm)' || true
}
loaded_version() {   # the kernel module's version, "" when no NVIDIA module is loaded
  [ -r "$PROC/driver/nvidia/version" ] || return 0
  grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' "$PROC/driver/nvidia/version" | head -n1
}
nvswitch_count() {   # NVSwitches are PCI bridges (class 0x0680) of vendor 0x10de
  local n=0 dev
  for dev in "$SYSROOT"/sys/bus/pci/devices/*; do
    [ -r "$dev/vendor" ] || continue
    [ "$(cat "$dev/vendor")" = 0x10de ] && [[ "$(cat "$dev/class")" == 0x0680* ]] && n=$((n + 1))
  done
  echo "$n"
}
gpu_processes() { nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null | grep -c '[0-9]' || true; }

# ---- --verify: what the node is, read only ----------------------------------------------------------------
# --8<-- [start:verify]
REPORT_MISSING=0; REPORT_REBOOT=0
say() {  # STATUS CHECK DETAIL; MISSING and REBOOT decide the exit status, UNKNOWN and N/A never do
  printf '%-8s %-18s %s\n' "$1" "$2" "$3"
  case "$1" in MISSING) REPORT_MISSING=1 ;; REBOOT) REPORT_REBOOT=1 ;; esac
}

verify_node() {
  local loaded pkg_ver utils smi n fabric persist unheld p dropin cfg kind eol eol_text fixed ctk_cfg
  if [ -f "$SYSROOT/.dockerenv" ] || [ -f "$SYSROOT/run/.containerenv" ]; then
    say INFO environment "inside a container: host services and packages are not visible from here"
  fi
  have_systemd || say INFO environment "no systemd (PID 1 is $(cat "$PROC/1/comm" 2>/dev/null || echo unknown)): services are judged by their processes"

  loaded=$(loaded_version)
  utils=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'nvidia-utils-*' 2>/dev/null | awk '$1 == "ii" {print $2; exit}' || true)
  pkg_ver=""; [ -n "$utils" ] && pkg_ver=$(upstream "$(version_of "$utils")")
  if ! command -v nvidia-smi >/dev/null; then smi="nvidia-smi not found: the driver's utilities are not installed"
  else smi=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1) || smi="failed: $(tail -n1 <<< "$smi")"; fi
  if ! command -v dpkg-query >/dev/null; then
    say UNKNOWN driver-package "no dpkg: not a Debian/Ubuntu node, or a minimal image"
  elif [ -z "$pkg_ver" ]; then
    say UNKNOWN driver-package "no nvidia-utils package: the driver was not installed from Ubuntu's packages"
  fi
  if [ -n "$loaded" ]; then
    if [ -n "$pkg_ver" ] && [ "$pkg_ver" != "$loaded" ]; then
      say REBOOT driver-module "module $loaded loaded, packages are $pkg_ver: reboot to load $pkg_ver (if a reboot does not change it, this kernel's linux-modules-nvidia package carries $loaded: pin --driver-version $loaded)"
    else
      say OK driver-module "NVIDIA kernel module $loaded loaded"
    fi
  elif [[ "$smi" =~ ^[0-9] ]]; then
    say UNKNOWN driver-module "$PROC/driver/nvidia/version unreadable, but nvidia-smi answers (a container or a restricted /proc)"
  elif [ -n "$pkg_ver" ]; then
    say REBOOT driver-module "driver $pkg_ver installed, no NVIDIA module loaded: reboot (or modprobe nvidia)"
  else
    say MISSING driver-module "no NVIDIA kernel module loaded and no driver package: run this script without --verify"
  fi
  if [[ "$smi" =~ ^[0-9] ]]; then
    say OK nvidia-smi "driver $(head -n1 <<< "$smi"), $(wc -l <<< "$smi") GPU(s)"
  else
    say MISSING nvidia-smi "${smi:0:160}"
  fi
  local running_ver=${loaded:-$(grep -m1 -oE '^[0-9]+\.[0-9.]+' <<< "$smi" || true)} info
  if [ -n "$running_ver" ]; then
    case "${running_ver%%.*}" in
      535) say MISSING driver-branch "R535 $RETIRED_535: no more security fixes; move to $ACCEPTED" ;;
      570) say MISSING driver-branch "R570 $RETIRED_570; move to $ACCEPTED" ;;
      *) if info=$(branch_info "${running_ver%%.*}"); then
           IFS='|' read -r kind eol eol_text fixed <<< "$info"
           if [[ "$TODAY" > "$eol" ]]; then say MISSING driver-branch "R${running_ver%%.*} support ended in $eol_text"
           else say OK driver-branch "R${running_ver%%.*}: $kind, supported to $eol_text"; fi
           # A pinned driver gets no fix by itself: the pin must be at or above the newest bulletin's fix.
           if older "$running_ver" "$fixed"; then
             say MISSING driver-security "$running_ver is older than $fixed, the R${running_ver%%.*} fix of $BULLETIN: drain, then --driver-version $fixed (or later)"
           else
             say OK driver-security "$running_ver has the fixes of $BULLETIN, the newest this script knows; check NVIDIA's bulletins since"
           fi
         else
           say UNKNOWN driver-branch "R${running_ver%%.*} is not in this script's branch table ($ACCEPTED)"
         fi ;;
    esac
  fi

  # Fabric Manager: NVSwitch systems (HGX/DGX H100, H200) cannot run CUDA until it has set up the fabric.
  n=$(nvswitch_count)
  # Each GPU's fabric state and status, the distinct pairs joined: "Completed Success" once the fabric is set up.
  fabric=$(nvidia-smi --query-gpu=fabric.state,fabric.status --format=csv,noheader 2>/dev/null | sed 's/, */ /' | sort -u | paste -sd, - || true)
  if [ "$n" -eq 0 ] && [ "$NVSWITCH" != yes ]; then
    say N/A fabric-manager "no NVSwitch on the PCI bus: not needed (GPU fabric state: ${fabric:-not reported})"
  else
    local fm_ver
    fm_ver=$(upstream "$(version_of "nvidia-fabricmanager-${running_ver%%.*}")")
    if [ -z "$fm_ver" ]; then
      say MISSING fabric-manager "$n NVSwitch(es), no nvidia-fabricmanager-${running_ver%%.*} package: CUDA fails with cudaErrorSystemNotReady (802)"
    elif [ -n "$running_ver" ] && [ "$fm_ver" != "$running_ver" ]; then
      say MISSING fabric-manager "Fabric Manager $fm_ver does not match driver $running_ver: it does not start; install the same version"
    elif have_systemd && ! active nvidia-fabricmanager; then
      say MISSING fabric-manager "nvidia-fabricmanager is not running: systemctl enable --now nvidia-fabricmanager"
    elif ! have_systemd && ! running nv-fabricmanager; then
      say MISSING fabric-manager "no nv-fabricmanager process"
    elif [ "$fabric" != "Completed Success" ]; then
      say MISSING fabric-manager "GPU fabric state '${fabric:-unknown}', not 'Completed Success' on every GPU: CUDA is not ready yet"
    else
      say OK fabric-manager "$fm_ver running, $n NVSwitch(es), GPU fabric $fabric"
    fi
  fi

  persist=$(nvidia-smi --query-gpu=persistence_mode --format=csv,noheader 2>/dev/null | sort -u | tr '\n' ' ' || true)
  if [ "${persist% }" = Enabled ]; then
    say OK persistence "persistence mode Enabled on every GPU"
  elif [ -z "$persist" ]; then
    say UNKNOWN persistence "nvidia-smi does not answer"
  else
    say MISSING persistence "persistence mode '${persist% }': systemctl enable --now nvidia-persistenced"
  fi

  if command -v dpkg-query >/dev/null && [ -n "$(nvidia_packages)" ]; then
    unheld=()
    for p in $(nvidia_packages); do held "$p" || unheld+=("$p"); done
    if [ ${#unheld[@]} -eq 0 ]; then say OK holds "$(nvidia_packages | wc -l) NVIDIA packages held"
    else say MISSING holds "not held (apt upgrade would move them): ${unheld[*]}"; fi
  fi

  # Container runtime: since toolkit 1.18, nvidia-ctk writes containerd's settings to a drop-in file.
  if ! command -v nvidia-ctk >/dev/null; then
    say MISSING container-toolkit "nvidia-ctk not found: containers cannot get the GPU"
  else
    local ctk_ver
    ctk_ver=$(nvidia-ctk --version 2>/dev/null | grep -m1 -oE '[0-9]+\.[0-9]+\.[0-9]+' || true)
    if [ -z "$ctk_ver" ]; then
      say UNKNOWN container-toolkit "nvidia-ctk --version printed no version"
    elif older "$ctk_ver" "$CTK_FIXED"; then
      say MISSING container-toolkit "nvidia-ctk $ctk_ver is older than $CTK_FIXED, the fix of $CTK_BULLETIN: apt-mark unhold nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1, upgrade them, hold them again"
    else
      say OK container-toolkit "nvidia-ctk $ctk_ver (has the fix of $CTK_BULLETIN)"
    fi
  fi
  dropin="$SYSROOT/etc/containerd/conf.d/99-nvidia.toml"; cfg="$SYSROOT/etc/containerd/config.toml"
  if [ -e "$dropin" ] || [ -e "$cfg" ]; then
    if grep -qs 'runtimes.nvidia\]' "$dropin" "$cfg" && grep -qs 'default_runtime_name = "nvidia"' "$dropin" "$cfg"; then
      say OK containerd "nvidia runtime configured and the default ($( [ -e "$dropin" ] && echo "${dropin#"$SYSROOT"}" || echo "${cfg#"$SYSROOT"}"))"
    elif grep -qs 'runtimes.nvidia\]' "$dropin" "$cfg"; then
      say MISSING containerd "nvidia runtime present but not the default: pods need runtimeClassName: nvidia, or run nvidia-ctk runtime configure --runtime=containerd --set-as-default"
    else
      say MISSING containerd "no nvidia runtime: nvidia-ctk runtime configure --runtime=containerd --set-as-default"
    fi
  fi
  # A shared Kubernetes node: with nvidia as containerd's default runtime, the toolkit must ignore an unprivileged
  # container's NVIDIA_VISIBLE_DEVICES (its default honours it), or any pod that sets it to "all" gets every GPU.
  ctk_cfg="$SYSROOT/etc/nvidia-container-runtime/config.toml"
  if grep -qs 'default_runtime_name = "nvidia"' "$dropin" "$cfg"; then
    if grep -qsE '^[[:space:]]*accept-nvidia-visible-devices-envvar-when-unprivileged[[:space:]]*=[[:space:]]*false' "$ctk_cfg"; then
      say OK gpu-isolation "the toolkit ignores NVIDIA_VISIBLE_DEVICES in unprivileged containers: pods get the GPUs the device plugin gave them"
    else
      say MISSING gpu-isolation "nvidia is containerd's default runtime and the toolkit honours NVIDIA_VISIBLE_DEVICES in unprivileged containers: any pod can take every GPU; nvidia-ctk config --in-place --set accept-nvidia-visible-devices-envvar-when-unprivileged=false"
    fi
  fi
  if [ -e "$SYSROOT/etc/docker/daemon.json" ]; then
    if grep -qs '"nvidia"' "$SYSROOT/etc/docker/daemon.json"; then say OK docker "nvidia runtime in daemon.json"
    else say MISSING docker "no nvidia runtime in daemon.json: nvidia-ctk runtime configure --runtime=docker"; fi
  fi
  [ -e "$dropin" ] || [ -e "$cfg" ] || [ -e "$SYSROOT/etc/docker/daemon.json" ] ||
    say N/A container-engine "no containerd or Docker configuration on this node"

  if (have_systemd && active nvidia-dcgm) || running nv-hostengine; then
    say OK dcgm "nv-hostengine running"
  else
    say MISSING dcgm "DCGM host engine not running: systemctl enable --now nvidia-dcgm"
  fi
}
# --8<-- [end:verify]

if [ "$MODE" = verify ]; then
  echo "$ME --verify: kernel $(uname -r), $(sed -n 's/^PRETTY_NAME=//p' "$OS_RELEASE" 2>/dev/null | tr -d '"' | grep . || echo "unknown OS")"
  verify_node
  if [ "$REPORT_REBOOT" -eq 1 ]; then echo "$ME: reboot required"; exit 3; fi
  if [ "$REPORT_MISSING" -eq 1 ]; then echo "$ME: not ready"; exit 1; fi
  echo "$ME: ready"; exit 0
fi

# ---- preflight: refuse, in one line, what this script must not touch ---------------------------------------
[ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE: this script supports Ubuntu 22.04 and 24.04 only"
OS_ID=$(sed -n 's/^ID=//p' "$OS_RELEASE" | tr -d '"')
OS_VERSION=$(sed -n 's/^VERSION_ID=//p' "$OS_RELEASE" | tr -d '"')
case "$OS_ID $OS_VERSION" in
  "ubuntu 22.04"|"ubuntu 24.04") DISTRO="ubuntu${OS_VERSION/./}" ;;
  *) die "unsupported OS ${OS_ID:-unknown} ${OS_VERSION:-?} (from $OS_RELEASE): this script supports Ubuntu 22.04 and 24.04 only" ;;
esac
if [ "$MODE" != dry-run ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo), or with --dry-run or --verify"
fi
KERNEL=$(uname -r)
LOADED=$(loaded_version)
if [ -n "$LOADED" ] && [ "${LOADED%%.*}" != "$DRIVER_BRANCH" ] && [ "$MODE" != rollback ]; then
  die "driver $LOADED is loaded, not branch $DRIVER_BRANCH: changing branch is an upgrade; drain the node and follow the driver-upgrades page"
fi

# --8<-- [start:rollback]
if [ "$MODE" = rollback ]; then
  [ -s "$STATE_DIR/rollback.list" ] || die "--rollback: no saved state in $STATE_DIR/rollback.list (nothing was changed by this script)"
  [ "$(gpu_processes)" -eq 0 ] || die "--rollback: GPU processes are running; drain the node first"
  mapfile -t BACK < "$STATE_DIR/rollback.list"
  echo "$ME: rolling back to: ${BACK[*]}"
  mapfile -t NOW < <(nvidia_packages)
  [ ${#NOW[@]} -eq 0 ] || apt-mark unhold "${NOW[@]}" >/dev/null
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades --no-install-recommends "${BACK[@]}"
  apt-mark hold "${BACK[@]%%=*}" >/dev/null
  echo "$ME: previous versions installed and held; reboot to load them, then run --verify"
  exit 3
fi
# --8<-- [end:rollback]

# Secure Boot: only signed modules load. Ubuntu ships the driver prebuilt and signed by Canonical
# (linux-modules-nvidia-BRANCH-server-open-KERNEL); without that package the module is built by DKMS, which needs
# the kernel headers and, under Secure Boot, a Machine Owner Key enrolled at the console: not for a fleet.
SECURE_BOOT=$( (mokutil --sb-state 2>/dev/null || true) | grep -q "SecureBoot enabled" && echo on || echo off)
SIGNED_PKG="linux-modules-nvidia-${DRIVER_BRANCH}-server-open-${KERNEL}"
if apt-cache show "$SIGNED_PKG" >/dev/null 2>&1 || installed "$SIGNED_PKG"; then
  MODULE_PKGS=("$SIGNED_PKG")
elif [ "$SECURE_BOOT" = on ]; then
  die "Secure Boot is on and no signed $SIGNED_PKG exists for kernel $KERNEL: boot a kernel Ubuntu ships it for, or enroll a MOK and build with DKMS by hand"
elif apt-cache show "linux-headers-$KERNEL" >/dev/null 2>&1 || installed "linux-headers-$KERNEL"; then
  MODULE_PKGS=("linux-headers-$KERNEL" "nvidia-dkms-${DRIVER_BRANCH}-server-open")
else
  die "no prebuilt module for kernel $KERNEL and no linux-headers-$KERNEL to build one with DKMS: install a supported kernel"
fi

case "$NVSWITCH" in
  auto) [ "$(nvswitch_count)" -gt 0 ] && FABRIC=1 || FABRIC=0 ;;
  yes) FABRIC=1 ;;
  no) FABRIC=0 ;;
esac

# --8<-- [start:pin]
# The driver's packages, and Fabric Manager's on NVSwitch systems, all at one upstream version.
DRIVER_PKGS=("nvidia-headless-no-dkms-${DRIVER_BRANCH}-server-open" "nvidia-utils-${DRIVER_BRANCH}-server"
             "nvidia-compute-utils-${DRIVER_BRANCH}-server" "libnvidia-compute-${DRIVER_BRANCH}-server")
FM_PKGS=("nvidia-fabricmanager-${DRIVER_BRANCH}" "libnvidia-nscq-${DRIVER_BRANCH}")
[ "$FABRIC" -eq 1 ] && DRIVER_PKGS+=("${FM_PKGS[@]}")
available() { apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}'; }
if [ -z "$DRIVER_VERSION" ]; then
  current=$(version_of "nvidia-utils-${DRIVER_BRANCH}-server")
  if [ -n "$current" ]; then DRIVER_VERSION=$(upstream "$current")    # keep what is installed: no silent update
  else DRIVER_VERSION=$(upstream "$(available "nvidia-utils-${DRIVER_BRANCH}-server" | head -n1)"); fi
  [ -n "$DRIVER_VERSION" ] || die "no nvidia-utils-${DRIVER_BRANCH}-server in the apt sources: enable Ubuntu's restricted and multiverse components"
fi
PINNED=()   # pkg=exact-version for apt-get install
for pkg in "${DRIVER_PKGS[@]}"; do
  exact=$(available "$pkg" | grep -m1 "^${DRIVER_VERSION}-" || true)
  [ -n "$exact" ] || die "--driver-version $DRIVER_VERSION: $pkg has no such version in the apt sources (available: $(available "$pkg" | head -n3 | tr '\n' ' '))"
  PINNED+=("$pkg=$exact")
done
# --8<-- [end:pin]

# ---- the plan: each step is added only when the node needs it -------------------------------------------
STEPS=(); ACTIONS=()
step() { STEPS+=("$1"); ACTIONS+=("$2"); }
APT_UPDATED=0
apt_install() {
  [ "$APT_UPDATED" -eq 1 ] || { apt-get update; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}
CUDA_REPO="https://developer.download.nvidia.com/compute/cuda/repos/${DISTRO}/$(uname -m | sed 's/aarch64/sbsa/')"
CTK_LIST="$SYSROOT/etc/apt/sources.list.d/nvidia-container-toolkit.list"
CTK_KEY="$SYSROOT/usr/share/keyrings/nvidia-container-toolkit-keyring.asc"
DROPIN="$SYSROOT/etc/containerd/conf.d/99-nvidia.toml"
CTK_CONFIG="$SYSROOT/etc/nvidia-container-runtime/config.toml"
EXPORTER_UNIT="$SYSROOT/etc/systemd/system/dcgm-exporter.service"
DCGM_PKG=datacenter-gpu-manager-4-cuda13      # DCGM 4 is built per CUDA major of the driver: 13 for R580 and R595

do_cuda_repo() {
  curl -fsSL "$CUDA_REPO/cuda-keyring_1.1-1_all.deb" -o /tmp/cuda-keyring.deb
  dpkg -i /tmp/cuda-keyring.deb
  APT_UPDATED=0
}
installed cuda-keyring || step "add NVIDIA's CUDA repository ($CUDA_REPO) for DCGM${TOOLKIT_PKG:+ and $TOOLKIT_PKG}" do_cuda_repo

do_ctk_repo() {
  mkdir -p "$(dirname "$CTK_KEY")" "$(dirname "$CTK_LIST")"
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey -o "$CTK_KEY"
  echo "deb [signed-by=${CTK_KEY#"$SYSROOT"}] https://nvidia.github.io/libnvidia-container/stable/deb/\$(ARCH) /" > "$CTK_LIST"
  APT_UPDATED=0
}
[ "$RUNTIME" = none ] || [ -f "$CTK_LIST" ] || step "add the NVIDIA Container Toolkit repository" do_ctk_repo

# --8<-- [start:driver-step]
todo=()
for spec in "${PINNED[@]}"; do [ "$(version_of "${spec%%=*}")" = "${spec#*=}" ] || todo+=("$spec"); done
for pkg in "${MODULE_PKGS[@]}"; do installed "$pkg" || todo+=("$pkg"); done
if [ ${#todo[@]} -gt 0 ] && [ -n "$LOADED" ] && [ "$(gpu_processes)" -gt 0 ]; then
  die "GPU processes are running and the driver packages would change ($DRIVER_VERSION): drain the node first"
fi
do_driver() {
  mkdir -p "$STATE_DIR"   # what to go back to: the NVIDIA packages as they are now
  nvidia_packages | while read -r p; do echo "$p=$(version_of "$p")"; done > "$STATE_DIR/rollback.list.new"
  if [ -s "$STATE_DIR/rollback.list.new" ]; then mv "$STATE_DIR/rollback.list.new" "$STATE_DIR/rollback.list"
  else rm -f "$STATE_DIR/rollback.list.new"; fi
  mapfile -t on_hold < <(nvidia_packages)
  [ ${#on_hold[@]} -eq 0 ] || apt-mark unhold "${on_hold[@]}" >/dev/null
  forget_holds
  apt_install "${todo[@]}"
}
[ ${#todo[@]} -eq 0 ] ||
  step "install driver $DRIVER_VERSION$( [ "$FABRIC" -eq 1 ] && echo " and Fabric Manager") (R$DRIVER_BRANCH $BRANCH_KIND, to $BRANCH_EOL_TEXT; Secure Boot $SECURE_BOOT): ${todo[*]}" do_driver
# --8<-- [end:driver-step]

if [ -n "${TOOLKIT_PKG:-}" ]; then
  do_toolkit() { apt_install "$TOOLKIT_PKG"; }
  installed "$TOOLKIT_PKG" || step "install the CUDA toolkit: $TOOLKIT_PKG (a build node)" do_toolkit
fi

if [ "$RUNTIME" != none ]; then
  do_ctk() { apt_install nvidia-container-toolkit; }
  installed nvidia-container-toolkit || step "install nvidia-container-toolkit" do_ctk
  if [ "$RUNTIME" = containerd ]; then
    # Toolkit >= 1.18 writes conf.d/99-nvidia.toml and imports it from config.toml; older ones edit config.toml.
    configured() { grep -qs 'default_runtime_name = "nvidia"' "$DROPIN" "$SYSROOT/etc/containerd/config.toml"; }
    do_runtime() { nvidia-ctk runtime configure --runtime=containerd --set-as-default; systemctl restart containerd; }
    configured || step "make nvidia containerd's default runtime (nvidia-ctk runtime configure --set-as-default), restart containerd" do_runtime
    # --8<-- [start:isolation]
    # With nvidia as the default runtime, every container goes through the toolkit, whose default honours an
    # unprivileged container's NVIDIA_VISIBLE_DEVICES: a pod without a GPU request that sets it to "all" would get
    # every GPU. Ignore it, and take the device plugin's list as volume mounts (its volume-mounts strategy) or as
    # CDI devices (cdi-annotations, cdi-cri: the GPU Operator's default since v25.10.0). Privileged containers (the
    # GPU Operator's operands) still get what they ask for.
    isolated() {
      grep -qsE '^[[:space:]]*accept-nvidia-visible-devices-envvar-when-unprivileged[[:space:]]*=[[:space:]]*false' "$CTK_CONFIG" &&
        grep -qsE '^[[:space:]]*accept-nvidia-visible-devices-as-volume-mounts[[:space:]]*=[[:space:]]*true' "$CTK_CONFIG"
    }
    do_isolation() {
      nvidia-ctk config --in-place --set accept-nvidia-visible-devices-envvar-when-unprivileged=false \
        --set accept-nvidia-visible-devices-as-volume-mounts=true
    }
    isolated || step "make the toolkit ignore NVIDIA_VISIBLE_DEVICES in unprivileged containers and take the device plugin's volume mounts (nvidia-ctk config)" do_isolation
    # --8<-- [end:isolation]
  else
    do_runtime() { nvidia-ctk runtime configure --runtime=docker; systemctl restart docker; }
    grep -qs '"nvidia"' "$SYSROOT/etc/docker/daemon.json" ||
      step "register the nvidia runtime with Docker (nvidia-ctk runtime configure), restart docker" do_runtime
  fi
fi

do_dcgm() { apt_install "$DCGM_PKG"; }
installed "$DCGM_PKG" || step "install DCGM: $DCGM_PKG" do_dcgm

# --8<-- [start:hold]
do_hold() {
  mapfile -t pkgs < <(nvidia_packages)
  [ ${#pkgs[@]} -gt 0 ] || return 0
  apt-mark hold "${pkgs[@]}" >/dev/null
  forget_holds
  local missing=()
  for p in "${pkgs[@]}"; do held "$p" || missing+=("$p"); done     # verify: apt-mark can fail quietly
  [ ${#missing[@]} -eq 0 ] || { echo "$ME: not held after apt-mark hold: ${missing[*]}" >&2; return 1; }
}
unheld_now=0
for p in $(nvidia_packages); do held "$p" || unheld_now=1; done
{ [ ${#STEPS[@]} -gt 0 ] || [ "$unheld_now" -eq 1 ]; } &&
  step "hold every NVIDIA package at its version (apt upgrade must not move the driver), and check the holds" do_hold
# --8<-- [end:hold]

SERVICES=(nvidia-persistenced); [ "$FABRIC" -eq 1 ] && SERVICES+=(nvidia-fabricmanager); SERVICES+=(nvidia-dcgm)
do_enable() { systemctl enable "${SERVICES[@]}"; }
enabled_all=1; for s in "${SERVICES[@]}"; do systemctl is-enabled --quiet "$s" 2>/dev/null || enabled_all=0; done
if [ "$enabled_all" -eq 0 ] || [ ${#STEPS[@]} -gt 0 ]; then step "enable at boot, in order: ${SERVICES[*]}" do_enable; fi

if [ "$EXPORTER" = systemd ]; then
  exporter_unit() {
    cat <<EOF
[Unit]
Description=dcgm-exporter: DCGM metrics for Prometheus on $EXPORTER_ADDRESS:9400 (no authentication)
After=docker.service nvidia-dcgm.service
Requires=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f dcgm-exporter
ExecStart=/usr/bin/docker run --rm --name dcgm-exporter --gpus all --cap-add SYS_ADMIN -p $EXPORTER_ADDRESS:9400:9400 $EXPORTER_IMAGE
ExecStop=/usr/bin/docker stop dcgm-exporter
Restart=always

[Install]
WantedBy=multi-user.target
EOF
  }
  do_exporter_unit() { mkdir -p "$(dirname "$EXPORTER_UNIT")"; exporter_unit > "$EXPORTER_UNIT"; systemctl daemon-reload; systemctl enable dcgm-exporter; }
  [ "$(cat "$EXPORTER_UNIT" 2>/dev/null)" = "$(exporter_unit)" ] ||
    step "write and enable the dcgm-exporter systemd unit ($EXPORTER_IMAGE on $EXPORTER_ADDRESS:9400)" do_exporter_unit
fi

# ---- run it ----------------------------------------------------------------------------------------------
echo "$ME: Ubuntu $OS_VERSION, kernel $KERNEL, driver $DRIVER_VERSION (R$DRIVER_BRANCH, $BRANCH_KIND to $BRANCH_EOL_TEXT), NVSwitch: $([ "$FABRIC" -eq 1 ] && echo yes || echo no), runtime $RUNTIME"
[ "$EXPORTER" = none ] && [ "$RUNTIME" = containerd ] && echo "$ME: dcgm-exporter: deploy it as the GPU Operator's (or its Helm chart's) DaemonSet"
if [ ${#STEPS[@]} -eq 0 ]; then
  echo "$ME: nothing to do: the node is provisioned"
  [ "$MODE" = dry-run ] && exit 0
else
  echo "plan:"
  for i in "${!STEPS[@]}"; do echo "  $((i + 1)). ${STEPS[$i]}"; done
  if [ "$MODE" = dry-run ]; then echo "$ME: --dry-run: ${#STEPS[@]} change(s) planned, none made"; exit 0; fi
  for i in "${!STEPS[@]}"; do
    echo "==> $((i + 1)). ${STEPS[$i]}"
    "${ACTIONS[$i]}" || { echo "$ME: step $((i + 1)) failed: ${STEPS[$i]}" >&2; exit 1; }
  done
fi

# --8<-- [start:load]
# The module: a node that had none loaded (and no nouveau bound to the GPU) loads it now; a node running an older
# module, or nouveau, must reboot. Services that talk to the driver start only once the right module is loaded.
LOADED=$(loaded_version)
if [ -z "$LOADED" ] && ! grep -qs '^nouveau ' "$PROC/modules"; then
  echo "==> load the NVIDIA kernel module (modprobe nvidia)"
  if modprobe nvidia; then modprobe nvidia_uvm || true; fi
  LOADED=$(loaded_version)
fi
if [ "$LOADED" != "$DRIVER_VERSION" ]; then
  echo "$ME: driver $DRIVER_VERSION installed, ${LOADED:-no NVIDIA module} loaded: reboot, then run '$ME --verify'"
  exit 3
fi
for s in "${SERVICES[@]}"; do
  active "$s" || { echo "==> start $s"; systemctl start "$s" || { echo "$ME: $s failed to start" >&2; exit 1; }; }
done
[ "$EXPORTER" = systemd ] && { active dcgm-exporter || systemctl start dcgm-exporter; }
# --8<-- [end:load]

echo "$ME: verification:"
verify_node
[ "$REPORT_MISSING" -eq 0 ] || { echo "$ME: verification failed" >&2; exit 1; }
echo "$ME: verified: driver $DRIVER_VERSION loaded, every NVIDIA package held, ${SERVICES[*]} running"
