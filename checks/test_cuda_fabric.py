"""The Fabric Manager page's program (snippets/cuda/fabric-manager/01_fabric_state.py) on the simulator's boards:
its verdict and --strict exit status follow each scenario's declared NVLink fabric state (an HGX board set up, the
same board with Fabric Manager down, a GPU outside any fabric), and NVML failing is one line and exit 2."""
import importlib.util
import io
import json
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from handbook import gpusim
from handbook.gpusim import scenario as scenarios

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "snippets/cuda/fabric-manager/01_fabric_state.py"


def run(tmp_path, name: str, *args: str):
    out, err, cwd, argv = io.StringIO(), io.StringIO(), os.getcwd(), sys.argv
    try:
        os.chdir(tmp_path)
        sys.argv = [str(PROGRAM), *args]
        with redirect_stdout(out), redirect_stderr(err), gpusim.activate(name):
            spec = importlib.util.spec_from_file_location("fabric_state", PROGRAM)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            code = module.main()
    finally:
        os.chdir(cwd)
        sys.argv = argv
    result = tmp_path / "fabric_state.json"
    return code, out.getvalue(), err.getvalue(), json.loads(result.read_text()) if result.exists() else None


@pytest.mark.parametrize("name", ["hgx-fabric-ready", "hgx-fabric-down", "healthy-idle"])
def test_the_verdict_follows_the_scenarios_fabric_state(tmp_path, name):
    declared = [g.static["fabric_state"] for g in scenarios.load(name).gpus]
    code, stdout, _, result = run(tmp_path, name, "--strict")
    in_fabric = [s for s in declared if s != "not_supported"]
    ready = all(s == "completed" for s in in_fabric)
    assert result["in_fabric"] == len(in_fabric)
    assert code == (0 if ready else 1), stdout
    if not in_fabric:
        assert "not needed" in result["verdict"]
    elif ready:
        assert result["verdict"].startswith("fabric ready") and result["ready"] == len(in_fabric)
    else:
        assert "NOT ready" in result["verdict"] and "802" in result["verdict"] and result["ready"] == 0


def test_nvml_failure_is_one_line(tmp_path):
    code, _, stderr, result = run(tmp_path, "driver-not-loaded")
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and result is None and len(errors) == 1 and "driver" in errors[0]
