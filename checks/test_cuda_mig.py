"""The MIG reader (snippets/cuda/mig/01_mig_layout.py) on the simulator's MIG scenarios: every instance declared in
the scenario file is reported with its profile, its own memory and UUID, and the compute slices add up; a GPU with
MIG on but no instances, and one with MIG off, are told apart. Expected values come from the scenario files."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from handbook.gpusim.scenario import MIG_PROFILES, SCENARIO_DIR

ROOT = Path(__file__).resolve().parent.parent
READER = ROOT / "snippets/cuda/mig/01_mig_layout.py"


def layout(tmp_path: Path, scenario: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run([sys.executable, "-m", "handbook.gpusim", "run", scenario, "--", sys.executable,
                           str(READER)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done, json.loads((tmp_path / "mig_layout.json").read_text())


@pytest.mark.parametrize("scenario", ["mig-h200-mixed", "mig-h200-seven"])
def test_every_declared_instance_is_reported(tmp_path, scenario):
    spec = tomllib.loads((SCENARIO_DIR / f"{scenario}.toml").read_text())
    gpu_spec = {**spec.get("gpu_defaults", {}), **spec["gpus"][0]}
    declared = [m["profile"] for m in gpu_spec["mig"]]
    _, result = layout(tmp_path, scenario)
    gpu = result["gpus"][0]
    assert gpu["mig_mode"] == "enabled"
    assert [i["profile"] for i in gpu["instances"]] == declared
    assert gpu["compute_slices_used"] == sum(MIG_PROFILES[p][0] for p in declared) <= 7
    for inst, profile in zip(gpu["instances"], declared):
        assert inst["memory_total_mib"] == gpu_spec["memory_total_mib"] * MIG_PROFILES[profile][1] // 8
        assert inst["uuid"].startswith("MIG-")
    assert len({i["uuid"] for i in gpu["instances"]}) == len(declared)


def test_mig_on_without_instances(tmp_path):
    done, result = layout(tmp_path, "mig-h200-enabled-empty")
    assert result["gpus"][0]["mig_mode"] == "enabled" and result["gpus"][0]["instances"] == []
    assert "CUDA sees no device" in done.stdout


def test_mig_off(tmp_path):
    done, result = layout(tmp_path, "healthy-idle")
    assert result["gpus"][0]["mig_mode"] == "disabled" and "compute slices" not in done.stdout
