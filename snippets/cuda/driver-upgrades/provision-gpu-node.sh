#!/usr/bin/env bash
# Brings an Ubuntu GPU node to a pinned driver branch, the CUDA toolkit, the NVIDIA Container Toolkit (with the
# container runtime configured), DCGM and dcgm-exporter. Idempotent: every step checks the node first and is
# skipped when already done, so a second run changes nothing. --dry-run prints the numbered plan and changes nothing.
#
#   sudo ./provision-gpu-node.sh --dry-run
#   sudo ./provision-gpu-node.sh --driver-branch 580 --cuda 13.0 --runtime containerd
#
# Exit status: 0 done (or nothing to do), 1 a step failed, 2 this node or the arguments are not supported.
set -euo pipefail

DRIVER_BRANCH=580
CUDA_VERSION=13.0
RUNTIME=containerd            # containerd on a Kubernetes node, docker on a standalone one
EXPORTER=auto                 # auto: a systemd unit with docker, the GPU Operator's DaemonSet with containerd
EXPORTER_IMAGE=nvcr.io/nvidia/k8s/dcgm-exporter:4.5.2-4.8.1-distroless   # check NGC for the current tag
DRY_RUN=0
SYSROOT="${PROVISION_SYSROOT:-}"                          # tests point this at a sandbox; empty on a real node
OS_RELEASE="${PROVISION_OS_RELEASE:-$SYSROOT/etc/os-release}"
ME=$(basename "$0")

die() { echo "$ME: $*" >&2; exit 2; }

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --driver-branch N  --cuda MAJOR.MINOR  --runtime containerd|docker  --exporter auto|systemd|none"
  echo "         --exporter-image IMAGE  --dry-run"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --driver-branch) DRIVER_BRANCH="${2:-}"; shift 2 || die "--driver-branch needs a value, e.g. 580" ;;
    --cuda) CUDA_VERSION="${2:-}"; shift 2 || die "--cuda needs a value, e.g. 13.0" ;;
    --runtime) RUNTIME="${2:-}"; shift 2 || die "--runtime needs containerd or docker" ;;
    --exporter) EXPORTER="${2:-}"; shift 2 || die "--exporter needs auto, systemd or none" ;;
    --exporter-image) EXPORTER_IMAGE="${2:-}"; shift 2 || die "--exporter-image needs an image" ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[[ "$DRIVER_BRANCH" =~ ^[0-9]{3}$ ]] || die "--driver-branch $DRIVER_BRANCH: write a driver branch, e.g. 580"
[[ "$CUDA_VERSION" =~ ^([0-9]+)\.([0-9]+)$ ]] || die "--cuda $CUDA_VERSION: write MAJOR.MINOR, e.g. 13.0"
CUDA_MAJOR=${BASH_REMATCH[1]}
CUDA_MINOR=${BASH_REMATCH[2]}
case "$RUNTIME" in containerd|docker) ;; *) die "--runtime $RUNTIME: use containerd or docker" ;; esac
case "$EXPORTER" in auto|systemd|none) ;; *) die "--exporter $EXPORTER: use auto, systemd or none" ;; esac
[ "$EXPORTER" = auto ] && { [ "$RUNTIME" = docker ] && EXPORTER=systemd || EXPORTER=none; }

# The oldest driver branch for each CUDA major (NVIDIA CUDA Compatibility guide): the toolkit must fit the driver.
case "$CUDA_MAJOR" in
  13) MIN_BRANCH=580 ;;
  12) MIN_BRANCH=525 ;;
  *) die "--cuda $CUDA_VERSION: this script installs CUDA 12.x or 13.x" ;;
esac
[ "$DRIVER_BRANCH" -ge "$MIN_BRANCH" ] ||
  die "--cuda $CUDA_VERSION needs driver branch >= $MIN_BRANCH; --driver-branch is $DRIVER_BRANCH"

# Supported OS: the Ubuntu LTS releases NVIDIA's CUDA and container-toolkit repositories publish for.
[ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE: this script supports Ubuntu 22.04 and 24.04 only"
OS_ID=$(sed -n 's/^ID=//p' "$OS_RELEASE" | tr -d '"')
OS_VERSION=$(sed -n 's/^VERSION_ID=//p' "$OS_RELEASE" | tr -d '"')
case "$OS_ID $OS_VERSION" in
  "ubuntu 22.04"|"ubuntu 24.04") DISTRO="ubuntu${OS_VERSION/./}" ;;
  *) die "unsupported OS ${OS_ID:-unknown} ${OS_VERSION:-?} (from $OS_RELEASE): this script supports Ubuntu 22.04 and 24.04 only" ;;
esac
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo), or with --dry-run to see the plan"
fi

DRIVER_PKGS=("nvidia-driver-${DRIVER_BRANCH}-server-open" "nvidia-utils-${DRIVER_BRANCH}-server")
TOOLKIT_PKG="cuda-toolkit-${CUDA_MAJOR}-${CUDA_MINOR}"
# DCGM 4 is built per CUDA major of the *driver* (13 from R580 on), not of the toolkit installed beside it.
if [ "$DRIVER_BRANCH" -ge 580 ]; then DRIVER_CUDA_MAJOR=13; else DRIVER_CUDA_MAJOR=12; fi
DCGM_PKG="datacenter-gpu-manager-4-cuda${DRIVER_CUDA_MAJOR}"
CUDA_REPO="https://developer.download.nvidia.com/compute/cuda/repos/${DISTRO}/$(uname -m | sed 's/aarch64/sbsa/')"
CTK_LIST="$SYSROOT/etc/apt/sources.list.d/nvidia-container-toolkit.list"
CTK_KEY="$SYSROOT/usr/share/keyrings/nvidia-container-toolkit-keyring.asc"
EXPORTER_UNIT="$SYSROOT/etc/systemd/system/dcgm-exporter.service"
if [ "$RUNTIME" = containerd ]; then RUNTIME_CONFIG="$SYSROOT/etc/containerd/config.toml"
else RUNTIME_CONFIG="$SYSROOT/etc/docker/daemon.json"; fi

installed() { dpkg -s "$1" >/dev/null 2>&1; }
held() { apt-mark showhold | grep -qx "$1"; }
active() { systemctl is-active --quiet "$1"; }

# The running driver, if any: another branch than the pinned one is an upgrade, not a provisioning.
# nvidia-smi prints its failures on stdout, so keep its answer only when it succeeded and is a version number.
RUNNING=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null) || RUNNING=""
RUNNING=$(head -n1 <<< "$RUNNING")
[[ "$RUNNING" =~ ^[0-9]+\.[0-9.]+$ ]] || RUNNING=""
if [ -n "$RUNNING" ] && [ "${RUNNING%%.*}" != "$DRIVER_BRANCH" ]; then
  die "driver $RUNNING is running, not branch $DRIVER_BRANCH: changing branch is an upgrade; drain the node first (see the driver-upgrades page)"
fi

# ---- the plan: each step is added only when the node needs it -------------------------------------------------
STEPS=()   # descriptions
ACTIONS=() # function names, run in order
step() { STEPS+=("$1"); ACTIONS+=("$2"); }
APT_UPDATED=0
apt_install() {
  [ "$APT_UPDATED" -eq 1 ] || { apt-get update; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

do_cuda_repo() {
  curl -fsSL "$CUDA_REPO/cuda-keyring_1.1-1_all.deb" -o /tmp/cuda-keyring.deb
  dpkg -i /tmp/cuda-keyring.deb
  APT_UPDATED=0
}
installed cuda-keyring || step "add NVIDIA's CUDA repository ($CUDA_REPO) with cuda-keyring" do_cuda_repo

do_ctk_repo() {
  mkdir -p "$(dirname "$CTK_KEY")" "$(dirname "$CTK_LIST")"
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey -o "$CTK_KEY"
  echo "deb [signed-by=${CTK_KEY#"$SYSROOT"}] https://nvidia.github.io/libnvidia-container/stable/deb/\$(ARCH) /" > "$CTK_LIST"
  APT_UPDATED=0
}
[ -f "$CTK_LIST" ] || step "add the NVIDIA Container Toolkit repository" do_ctk_repo

missing_driver=()
for pkg in "${DRIVER_PKGS[@]}"; do installed "$pkg" || missing_driver+=("$pkg"); done
do_driver() { apt_install "${missing_driver[@]}"; }
[ ${#missing_driver[@]} -eq 0 ] || step "install driver branch $DRIVER_BRANCH: ${missing_driver[*]}" do_driver

unheld=()
for pkg in "${DRIVER_PKGS[@]}"; do held "$pkg" || unheld+=("$pkg"); done
do_hold() { apt-mark hold "${unheld[@]}"; }
[ ${#unheld[@]} -eq 0 ] || step "hold the driver packages (apt upgrade must not move the driver): ${unheld[*]}" do_hold

do_toolkit() { apt_install "$TOOLKIT_PKG"; }
installed "$TOOLKIT_PKG" || step "install the CUDA toolkit: $TOOLKIT_PKG" do_toolkit

do_ctk() { apt_install nvidia-container-toolkit; }
installed nvidia-container-toolkit || step "install nvidia-container-toolkit" do_ctk

do_runtime() {
  nvidia-ctk runtime configure --runtime="$RUNTIME"
  systemctl restart "$RUNTIME"
}
grep -qs nvidia "$RUNTIME_CONFIG" ||
  step "configure $RUNTIME for the nvidia runtime (nvidia-ctk runtime configure), restart $RUNTIME" do_runtime

do_dcgm() { apt_install "$DCGM_PKG"; }
installed "$DCGM_PKG" || step "install DCGM: $DCGM_PKG" do_dcgm
do_dcgm_service() { systemctl enable --now nvidia-dcgm; }
active nvidia-dcgm || step "enable and start nvidia-dcgm (the DCGM host engine)" do_dcgm_service

exporter_unit() {
  cat <<EOF
[Unit]
Description=dcgm-exporter: DCGM metrics for Prometheus on :9400
After=docker.service nvidia-dcgm.service
Requires=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f dcgm-exporter
ExecStart=/usr/bin/docker run --rm --name dcgm-exporter --gpus all --cap-add SYS_ADMIN -p 9400:9400 $EXPORTER_IMAGE
ExecStop=/usr/bin/docker stop dcgm-exporter
Restart=always

[Install]
WantedBy=multi-user.target
EOF
}
if [ "$EXPORTER" = systemd ]; then
  do_exporter_unit() {
    mkdir -p "$(dirname "$EXPORTER_UNIT")"
    exporter_unit > "$EXPORTER_UNIT"
    systemctl daemon-reload
  }
  [ "$(cat "$EXPORTER_UNIT" 2>/dev/null)" = "$(exporter_unit)" ] ||
    step "write the dcgm-exporter systemd unit ($EXPORTER_IMAGE)" do_exporter_unit
  do_exporter_service() { systemctl enable --now dcgm-exporter; }
  active dcgm-exporter || step "enable and start dcgm-exporter" do_exporter_service
fi

# ---- run it --------------------------------------------------------------------------------------------------
echo "$ME: Ubuntu $OS_VERSION, driver branch $DRIVER_BRANCH, CUDA $CUDA_VERSION, runtime $RUNTIME, exporter $EXPORTER"
[ "$EXPORTER" = none ] && echo "$ME: dcgm-exporter: deploy it as the GPU Operator's (or its Helm chart's) DaemonSet"
if [ ${#STEPS[@]} -eq 0 ]; then
  echo "$ME: nothing to do: the node is provisioned"
else
  echo "plan:"
  for i in "${!STEPS[@]}"; do echo "  $((i + 1)). ${STEPS[$i]}"; done
  if [ "$DRY_RUN" -eq 1 ]; then
    echo "$ME: --dry-run: ${#STEPS[@]} change(s) planned, none made"
    exit 0
  fi
  for i in "${!STEPS[@]}"; do
    echo "==> $((i + 1)). ${STEPS[$i]}"
    "${ACTIONS[$i]}" || { echo "$ME: step $((i + 1)) failed: ${STEPS[$i]}" >&2; exit 1; }
  done
fi

# ---- verify ---------------------------------------------------------------------------------------------------
if [ -z "$RUNNING" ]; then
  echo "$ME: the driver is installed but not loaded: reboot, then run this script again to verify"
  exit 0
fi
problems=()
for pkg in "${DRIVER_PKGS[@]}"; do held "$pkg" || problems+=("$pkg is not held"); done
for pkg in "${DRIVER_PKGS[@]}" "$TOOLKIT_PKG" nvidia-container-toolkit "$DCGM_PKG"; do
  installed "$pkg" || problems+=("$pkg is not installed")
done
active nvidia-dcgm || problems+=("nvidia-dcgm is not running")
if [ ${#problems[@]} -gt 0 ]; then
  echo "$ME: verification failed: ${problems[*]}" >&2
  exit 1
fi
echo "$ME: verified: driver $RUNNING (branch $DRIVER_BRANCH, held), $TOOLKIT_PKG, nvidia-container-toolkit, $DCGM_PKG, nvidia-dcgm running"
