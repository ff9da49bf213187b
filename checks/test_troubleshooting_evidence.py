"""The evidence bundle captures what an RMA needs, from the same scenario the checks read, and survives missing tools."""
import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from troubleshooting_matrix import environment

BUNDLE = Path(__file__).resolve().parent.parent / "snippets" / "troubleshooting" / "evidence" / "01_evidence_bundle.py"


def bundle(spec, cwd, *args, path_with_stand_ins=True, extra_path=None, timeout=120):
    env = environment(spec)
    if not path_with_stand_ins:
        env["PATH"] = os.pathsep.join(["/usr/bin", "/bin"])  # no nvidia-smi stand-in: as on a broken node
    if extra_path:
        env["PATH"] = f"{extra_path}{os.pathsep}{env['PATH']}"
    proc = subprocess.run([sys.executable, str(BUNDLE), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    [archive] = Path(cwd).glob("gpu-evidence-*.tar.gz")
    with tarfile.open(archive) as tar:
        return {Path(m.name).name: (lambda data, name: data if name.endswith(".gz") else data.decode())(
            tar.extractfile(m).read(), m.name) for m in tar.getmembers()}


def test_bundle_of_a_failed_remap_holds_the_rma_evidence(tmp_path):
    files = bundle("ecc-errors@200", tmp_path)
    assert re.search(r"Remapping Failure Occurred +: Yes", files["nvidia-smi-q.txt"])
    assert "Xid (PCI:0000:18:00): 95" in files["dmesg.txt"] and "Xid (PCI:0000:18:00): 64" in files["dmesg.txt"]
    gpu = json.loads(files["nvml.json"])["gpus"][0]
    assert gpu["recovery_action"] == 1 and gpu["remapped_rows"][3] == 1 and gpu["serial"] == "simulated-0"
    assert gpu["sram_threshold_exceeded"] is False  # NVIDIA's SRAM RMA flag, kept for the RMA
    assert "Yes, Yes" in files["nvidia-smi-query.csv"].splitlines()[1]  # remap pending, remap failure
    manifest = json.loads(files["MANIFEST.json"])
    assert manifest["items"]["nvidia-smi-q.txt"]["exit"] == 0


def test_bundle_keeps_the_health_report_run_beside_it(tmp_path):
    (tmp_path / "gpu_health.json").write_text('{"exit": 2}', encoding="utf-8")
    assert json.loads(bundle("healthy-idle", tmp_path)["gpu_health.json"]) == {"exit": 2}


def test_bundle_records_a_lost_gpu_as_its_error(tmp_path):
    files = bundle("8gpu-one-lost@25", tmp_path)
    gpus = json.loads(files["nvml.json"])["gpus"]
    assert len(gpus) == 8 and "GPU is lost" in gpus[3]["error"] and "error" not in gpus[2]
    assert json.loads(files["MANIFEST.json"])["items"]["nvidia-smi-query.csv"]["exit"] == 15


def test_missing_tools_are_recorded_not_fatal(tmp_path):
    files = bundle("nvml-unknown-error", tmp_path, path_with_stand_ins=False)
    manifest = json.loads(files["MANIFEST.json"])
    assert manifest["items"]["nvidia-smi-q.txt"]["error"] == "nvidia-smi: not installed"
    assert json.loads(files["nvml.json"]) == {"init_error": "Unknown Error"}
    assert not list(tmp_path.glob("*.tmp")), "a partial archive was left behind"


def test_a_wedged_gpu_costs_one_deadline_not_a_hang(tmp_path):
    """gsp.md sends a wedged GPU (Xid 119, every NVML call blocks) to the bundle first: it must still be written,
    the GPU recorded as wedged, and the nvidia-smi calls that hang recorded as timed out, in about one --timeout."""
    started = time.monotonic()
    files = bundle("gsp-timeout@25", tmp_path, "--timeout", "2", "--nvml-timeout", "2", timeout=60)
    assert time.monotonic() - started < 30, "the bundle waited on the wedged GPU"
    assert "wedged" in json.loads(files["nvml.json"])["gpus"][0]["error"]
    manifest = json.loads(files["MANIFEST.json"])
    assert "timed out after 2 s" in manifest["items"]["nvidia-smi-q.txt"]["error"]
    assert manifest["stuck"], "the blocked NVML call is not named"
    assert "Xid (PCI:0000:18:00): 119" in files["dmesg.txt"]


def test_the_bug_report_file_itself_is_archived(tmp_path):
    """nvidia-bug-report.sh writes its report to --output-file plus .gz and only progress to stdout: the archive
    must hold the report, not the progress lines."""
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "nvidia-bug-report.sh"
    script.write_text('#!/bin/sh\necho "Running nvidia-bug-report.sh..."\n'
                      '[ "$1" = --output-file ] || exit 2\necho "NVIDIA bug report body" | gzip -c > "$2.gz"\n',
                      encoding="utf-8")
    script.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    files = bundle("healthy-idle", work, "--bug-report", extra_path=fake)
    assert gzip.decompress(files["nvidia-bug-report.log.gz"]) == b"NVIDIA bug report body\n"
    item = json.loads(files["MANIFEST.json"])["items"]["nvidia-bug-report.log.gz"]
    assert item["exit"] == 0 and "Running nvidia-bug-report.sh" in item["console"]
