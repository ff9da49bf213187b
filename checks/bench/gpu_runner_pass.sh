#!/usr/bin/env bash
# Issue 12 on a real GPU runner (the lead's H200): the GPU-runner pass with GPU blocks serialised, timed; the
# planted crashes with the CUDA device-side assert; CUDA_VISIBLE_DEVICES against the real NVML; the nvidia-smi
# help recording. Run from the repository root: bash checks/bench/gpu_runner_pass.sh [OUT_DIR]
set -uo pipefail
out=${1:-artifacts}
mkdir -p "$out"
py=.venv/bin/python
[ -x "$py" ] || py=python3
status=0

echo "== 1. the GPU-runner pass (xdist -n auto; GPU blocks one at a time per GPU)"
start=$(date +%s)
HANDBOOK_GPU_RUNNER=1 "$py" -m pytest --gpu-runner docs instructor 2>&1 | tee "$out/gpu-runner-pass.log" || status=1
echo "wall: $(( $(date +%s) - start )) s" | tee -a "$out/gpu-runner-pass.log"

echo "== 2. planted crashes (os._exit, segfault, CUDA device-side assert) and real-NVML CUDA_VISIBLE_DEVICES"
"$py" -m pytest -n0 -q -rA checks/test_isolation.py checks/test_gpusim.py::test_detection_on_real_nvml_honours_cuda_visible_devices \
  2>&1 | tee "$out/isolation.log" || status=1

echo "== 3. CUDA_VISIBLE_DEVICES=\"\" on the runner: GPU blocks fail in GPU-runner mode (expected: 1 failed)"
CUDA_VISIBLE_DEVICES="" "$py" -m pytest -n0 -q --gpu-runner docs/fundamentals/architecture.md 2>&1 \
  | tee "$out/cvd-empty.log" | grep -E 'hides every GPU|GPU-runner mode, but' || status=1

echo "== 4. the nvidia-smi field and section lists, recorded with provenance"
HANDBOOK_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown) \
  "$py" -m handbook.record docs/authors/index.md --only 01_nvidia_smi_help.py 2>&1 | tee "$out/record-nvidia-smi-help.log" || status=1
"$py" -m pytest -n0 -q checks/test_shell_blocks.py 2>&1 | tee -a "$out/record-nvidia-smi-help.log" || status=1
exit $status
