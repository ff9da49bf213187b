"""The CUDA compatibility checker (snippets/cuda/compatibility/01_compat_check.py) on simulator scenarios: its
verdicts follow NVIDIA's compatibility rules (per-major driver floors, minor-version compatibility without PTX
JIT, SASS per major, PTX for newer GPUs), and bad input gets one line and exit 2.

Expected verdicts come from the rules, not from the checker's output: a CUDA 12.x runtime needs a >= 525 driver
and 13.x a >= 580 one (CUDA Compatibility guide); sm_XY code runs on compute capability X.Z for Z >= Y; compute_XY
PTX is JIT-compiled for newer GPUs, except by a driver older than the PTX's compiler."""
import importlib.util
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest

from handbook import gpusim

_ABSENT = object()

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "snippets/cuda/compatibility/01_compat_check.py"
CU128 = "sm_70,sm_75,sm_80,sm_86,sm_90,sm_100,sm_120"
CU130 = "sm_75,sm_80,sm_86,sm_90,sm_100,sm_120,compute_120"  # a declared wheel, as the page's example
R535_H100 = """description = "H100 on an R535 driver (CUDA 12.2), written by checks/test_cuda_compat.py"
[system]
driver_version = "535.216.01"
cuda_driver_version = 12020
[[gpus]]
model = "NVIDIA H100 80GB HBM3"
memory_total_mib = 81559
compute_capability = [9, 0]
power_limit_w = 700
sm_clock_max_mhz = 1980
mem_clock_max_mhz = 2619
temperature_slowdown_c = 87
temperature_shutdown_c = 92
"""


def check(tmp_path: Path, scenario: str, *args: str) -> tuple[SimpleNamespace, dict | None]:
    """Run the checker's main() in this process, `import pynvml` playing the simulator and `import torch` failing
    (a machine without torch), in tmp_path: (returncode, stdout, stderr; compat_check.json or None). A process per
    case would cost a second each; the program as a program is run by the tests at the end of this file."""
    out, err, cwd, argv = io.StringIO(), io.StringIO(), os.getcwd(), sys.argv
    torch = sys.modules.get("torch", _ABSENT)
    sys.modules["torch"] = None  # `import torch` raises ImportError
    try:
        os.chdir(tmp_path)
        sys.argv = [str(CHECKER), *args]
        with redirect_stdout(out), redirect_stderr(err):
            with gpusim.activate(scenario):
                try:
                    code = load_checker().main()
                except SystemExit as exit_:
                    code = exit_.code
    finally:
        os.chdir(cwd)
        sys.argv = argv
        if torch is _ABSENT:
            sys.modules.pop("torch", None)
        else:
            sys.modules["torch"] = torch
    result = tmp_path / "compat_check.json"
    done = SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    return done, json.loads(result.read_text()) if result.exists() else None


def own_lines(stderr: str) -> list[str]:
    """stderr without the simulator's own 'gpusim: ...' lines."""
    return [line for line in stderr.splitlines() if not line.startswith("gpusim:")]


def load_checker():
    spec = importlib.util.spec_from_file_location("compat_check", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def r535(tmp_path) -> str:
    path = tmp_path / "r535-h100.toml"
    path.write_text(R535_H100)
    return str(path)


def test_driver_too_old_for_a_cuda12_wheel(tmp_path):
    done, result = check(tmp_path, "driver-too-old", "--wheel-cuda", "12.8", "--wheel-arches", CU128, "--strict")
    assert done.returncode == 1, done.stdout + done.stderr
    wheel = result["wheels"][0]
    assert not wheel["works"] and wheel["mode"] == "insufficient driver"
    assert "CUDA driver version is insufficient" in wheel["problems"][0]
    assert any(">= 525" in c for c in wheel["changes"])  # the CUDA 12.x floor
    assert any("cuda-compat-12-8" in c for c in wheel["changes"])
    assert "DOES NOT WORK" in done.stdout


def test_a_13x_wheel_needs_580_even_on_a_12x_driver(tmp_path, r535):
    done, result = check(tmp_path, r535, "--wheel-cuda", "13.0", "--wheel-arches", CU130, "--strict")
    assert done.returncode == 1
    assert result["mode"] == "insufficient driver"
    assert any(">= 580" in c for c in result["wheels"][0]["changes"])


def test_minor_version_compatibility_runs_a_newer_12x_wheel(tmp_path, r535):
    done, result = check(tmp_path, r535, "--wheel-cuda", "12.8", "--wheel-arches", CU128, "--strict")
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["works"] and result["mode"] == "minor-version compatibility"
    assert any("PTX" in note for note in result["wheels"][0]["notes"])


def test_minor_version_compatibility_cannot_jit_newer_ptx(tmp_path, r535):
    done, result = check(tmp_path, r535, "--wheel-cuda", "12.8", "--wheel-arches", "sm_80,compute_80", "--strict")
    assert done.returncode == 1
    assert "cudaErrorUnsupportedPtxVersion (222)" in result["wheels"][0]["problems"][0]


def test_new_gpu_old_wheel_has_no_kernel_image(tmp_path):
    done, result = check(tmp_path, "new-gpu-old-wheel", "--wheel", "cu126", "--strict")
    assert done.returncode == 1
    wheel = result["wheels"][0]
    assert wheel["mode"] == "native"  # the driver is fine; the wheel lacks the architecture
    assert "sm_120" in wheel["problems"][0] and "no kernel image is available" in wheel["problems"][0]
    assert any("cu128" in c for c in wheel["changes"])


def test_ptx_is_jit_compiled_for_a_newer_gpu_by_a_new_enough_driver(tmp_path):
    done, result = check(tmp_path, "new-gpu-old-wheel", "--wheel-cuda", "12.8", "--wheel-arches",
                         "sm_80,sm_90,compute_90", "--strict")
    assert done.returncode == 0, done.stdout + done.stderr
    assert any("JIT" in note and "compute_90" in note for note in result["wheels"][0]["notes"])


def test_arch_specific_sass_runs_only_on_its_own_compute_capability(tmp_path):
    done, result = check(tmp_path, "new-gpu-old-wheel", "--wheel-cuda", "12.8", "--wheel-arches",
                         "sm_100a,sm_120a", "--strict")
    assert done.returncode == 0 and result["works"]
    done, result = check(tmp_path, "new-gpu-old-wheel", "--wheel-cuda", "12.8", "--wheel-arches", "sm_90a", "--strict")
    assert done.returncode == 1  # sm_90a SASS is for 9.0 alone: nothing for a 12.0 GPU


def test_arch_specific_ptx_is_not_jit_compiled_for_another_gpu(tmp_path):
    """compute_90a PTX runs on 9.0 only (PTX ISA: 'a' targets do not follow the onion-layer model); plain
    compute_90 is JIT-compiled for the 12.0 GPU. Before the fix the checker treated both alike."""
    done, result = check(tmp_path, "new-gpu-old-wheel", "--wheel-cuda", "12.8", "--wheel-arches",
                         "sm_90a,compute_90a", "--strict")
    assert done.returncode == 1, done.stdout
    assert "no kernel image" in result["wheels"][0]["problems"][0]
    done, result = check(tmp_path, "healthy-idle", "--wheel-cuda", "13.0", "--wheel-arches", "compute_90a", "--strict")
    assert done.returncode == 0 and result["works"]  # on a 9.0 GPU it is JIT-compiled


def test_family_specific_code_runs_within_its_major_only():
    module = load_checker()
    assert module.runs_on("sm_100f", (10, 3)) and module.runs_on("compute_100f", (10, 3))
    assert not module.runs_on("sm_103f", (10, 0))          # the family goes up in minor, not down
    assert not module.runs_on("compute_100f", (12, 0))     # and never to another major
    assert module.runs_on("compute_100", (12, 0))          # plain PTX does


@pytest.mark.parametrize("arch, words", [("sm_80a", "no arch-specific"), ("sm_90f", "no family-specific"),
                                         ("compute_85", "does not exist"), ("sm_999", "does not exist")])
def test_targets_that_do_not_exist_are_refused_in_one_line(tmp_path, arch, words):
    done, _ = check(tmp_path, "healthy-idle", "--wheel-cuda", "12.8", "--wheel-arches", f"sm_90,{arch}")
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert len(own_lines(done.stderr)) == 1 and "--wheel-arches" in done.stderr and words in done.stderr, done.stderr


def test_pytorchs_cu130_wheel_is_known(tmp_path):
    done, result = check(tmp_path, "healthy-idle", "--wheel", "cu130", "--strict")
    assert done.returncode == 0, done.stderr
    assert result["wheel_cuda"] == "13.0" and result["mode"] == "native"
    done, result = check(tmp_path, "driver-too-old", "--wheel", "cu130", "--strict")
    assert done.returncode == 1 and any(">= 580" in c for c in result["wheels"][0]["changes"])


def test_mig_mode_without_instances_leaves_cuda_no_device(tmp_path):
    """mig-h200-enabled-empty: MIG on, no instance created, so CUDA enumerates nothing; the driver and the wheel
    being fine does not make it work."""
    done, result = check(tmp_path, "mig-h200-enabled-empty", "--wheel", "cu130", "--strict")
    assert done.returncode == 1, done.stdout
    wheel = result["wheels"][0]
    assert not wheel["works"] and "CUDA sees no device" in wheel["problems"][0]
    assert any("nvidia-smi mig -cgi" in c for c in wheel["changes"])
    assert result["gpus"][0]["mig_enabled"] is True and result["gpus"][0]["mig_devices"] == 0
    done, result = check(tmp_path, "mig-h200-mixed", "--wheel", "cu130", "--strict")
    assert done.returncode == 0 and result["gpus"][0]["mig_devices"] == 4  # instances exist: CUDA sees them


def test_healthy_stack_works(tmp_path):
    done, result = check(tmp_path, "healthy-idle", "--wheel-cuda", "13.0", "--wheel-arches", CU130, "--strict")
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["verdict"] == "works" and result["mode"] == "native"
    assert result["driver_cuda"] == "13.0" and result["gpus"][0]["compute_capability"] == [9, 0]


def test_without_a_cuda_torch_it_compares_pytorchs_wheels(tmp_path):
    done, result = check(tmp_path, "new-gpu-old-wheel")
    assert done.returncode == 0
    verdicts = {w["wheel"]: w["works"] for w in result["wheels"]}
    assert verdicts == {"PyTorch cu126": False, "PyTorch cu128": True, "PyTorch cu130": True}


@pytest.mark.parametrize("args, message", [
    (["--wheel-cuda", "12", "--wheel-arches", "sm_90"], "--wheel-cuda '12': write MAJOR.MINOR"),
    (["--wheel-cuda", "12.8", "--wheel-arches", "sm90"], "write sm_XY"),
    (["--wheel-cuda", "12.8"], "declare both"),
    (["--wheel", "cu999"], "choose from 'cu126', 'cu128', 'cu130'"),
])
def test_bad_arguments_get_one_line(tmp_path, args, message):
    done, _ = check(tmp_path, "healthy-idle", *args)
    assert done.returncode == 2 and message in done.stderr and len(own_lines(done.stderr)) == 1, done.stderr


def test_nvml_failure_is_one_line(tmp_path):
    done, result = check(tmp_path, "driver-not-loaded", "--wheel", "cu128")
    assert done.returncode == 2 and result is None
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "driver" in errors[0] and "Traceback" not in done.stderr


# ---- Lab 1's environment check applies the same rule to nvcc (issue 11: a newer minor version is not a failure)
VALIDATOR = ROOT / "snippets/labs/lab1/01_validate_environment.py"


@pytest.mark.parametrize("nvcc, status, words", [
    ("12.8", "OK", "minor-version compatibility"),   # same major as the driver's 12.2: runs (MVC)
    ("13.0", "WARN", "newer major version"),          # a newer major needs a newer driver
    ("12.2", "OK", "nvcc 12.2"),
])
def test_lab1_validator_judges_nvcc_by_major_version(tmp_path, r535, nvcc, status, words):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvcc").write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {nvcc}, V{nvcc}.0'\n")
    (fake / "nvcc").chmod(0o755)
    done = subprocess.run([sys.executable, "-m", "handbook.gpusim", "run", r535, "--", sys.executable,
                           str(VALIDATOR)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": f"{fake}:/usr/bin:/bin"})
    line = next(x for x in done.stdout.splitlines() if "CUDA toolkit" in x)
    assert line.startswith(status) and words in line, line


# ---- the default path: a CUDA build of torch declares the wheel itself ----------------------------------------
FAKE_TORCH = '''
"""A stand-in for a CUDA build of torch: what the checker reads, and nothing else."""
import types
__version__ = "2.11.0+cu130"
version = types.SimpleNamespace(cuda="13.0")
def _arch_list():
    return []  # what torch.cuda.get_arch_list() answers when no GPU is usable (e.g. the driver is too old)
cuda = types.SimpleNamespace(get_arch_list=_arch_list)
_C = types.SimpleNamespace(_cuda_getArchFlags=lambda: "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 sm_999x compute_120")
'''


@pytest.mark.parametrize("scenario, works, mode", [("driver-too-old", False, "insufficient driver"),
                                                   ("healthy-idle", True, "native")])
def test_a_cuda_torch_is_checked_by_default(tmp_path, scenario, works, mode):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch/__init__.py").write_text(FAKE_TORCH)
    done = subprocess.run([sys.executable, "-m", "handbook.gpusim", "run", scenario, "--", sys.executable,
                           str(CHECKER), "--strict"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"})
    result = json.loads((tmp_path / "compat_check.json").read_text())
    assert result["wheel"] == "installed torch 2.11.0+cu130" and result["wheel_cuda"] == "13.0"
    assert "sm_999x" not in result["wheels"][0]["arches"]  # an arch form the checker cannot read is skipped
    assert result["works"] is works and result["mode"] == mode and done.returncode == (0 if works else 1)
