"""GPU locks across processes: N-GPU holders never overlap a holder of the same GPU, and nobody deadlocks."""
import json
import multiprocessing
import time

from handbook.harness import requirements, scheduling

DEVICES = [requirements.Device(f"GPU-fake-{i}", "fake", 80 * 2**30, (9, 0)) for i in range(3)]


def hold_and_log(lock_dir, count, start, log):
    import os

    os.environ[scheduling.LOCK_DIR_ENV] = lock_dir
    with scheduling.hold(DEVICES, count, start=start) as got:
        began = time.monotonic()
        time.sleep(0.15)
        with open(log, "a") as f:
            f.write(json.dumps({"gpus": [d.uuid for d in got], "start": began, "end": time.monotonic()}) + "\n")


def test_holders_of_one_and_of_several_gpus_never_share_one_and_all_finish(tmp_path):
    log = tmp_path / "log.jsonl"
    jobs = [(1, i) for i in range(6)] + [(2, i) for i in range(3)] + [(3, 0)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=hold_and_log, args=(str(tmp_path / "locks"), n, s, str(log))) for n, s in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, "a holder deadlocked or failed"
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(len(r["gpus"]) for r in runs) == sorted(n for n, _ in jobs)
    for a in runs:
        for b in runs:
            if a is not b and set(a["gpus"]) & set(b["gpus"]):
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)
    assert len({tuple(r["gpus"]) for r in runs if len(r["gpus"]) == 1}) > 1  # 1-GPU holders spread out


def test_the_child_is_pinned_to_exactly_its_gpus():
    env = scheduling.pinned_env(DEVICES[1:], base={"CUDA_VISIBLE_DEVICES": "0,1,2", "PATH": "/bin"})
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-fake-1,GPU-fake-2" and env["PATH"] == "/bin"


# ---- Slurm: the scheduling page's configuration files and batch scripts, checked together ----------------------
# snippets/distributed/scheduling/02_slurm_gpu_check.py applies the rules of Slurm's gres.html, gres.conf(5),
# slurm.conf(5), cgroup.conf(5) and srun(1); the shipped files must pass, and each rule must catch a planted error.
import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SLURM = Path(__file__).resolve().parent.parent / "snippets/distributed/scheduling"


def slurm_checker():
    spec = importlib.util.spec_from_file_location("slurm_gpu_check", SLURM / "02_slurm_gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def slurm_problems(edit_file: str = "", old: str = "", new: str = "") -> list[str]:
    check = slurm_checker()
    texts = {p.name: p.read_text() for p in SLURM.iterdir() if p.suffix in (".conf", ".sbatch")}
    if edit_file:
        assert old in texts[edit_file], (edit_file, old)
        texts[edit_file] = texts[edit_file].replace(old, new)
    confs = {n: check.parse_conf(texts[n]) for n in ("slurm.conf", "gres.conf", "cgroup.conf")}
    problems = check.check_cluster(confs["slurm.conf"], confs["gres.conf"], confs["cgroup.conf"])
    for name in sorted(n for n in texts if n.endswith(".sbatch")):
        problems += check.check_script(name, texts[name])
    return problems


def test_the_shipped_slurm_files_pass():
    assert slurm_problems() == []


@pytest.mark.parametrize("file, old, new, words", [
    ("slurm.conf", "GresTypes=gpu", "GresTypes=license", "GresTypes does not list gpu"),
    ("slurm.conf", "SelectType=select/cons_tres", "SelectType=select/linear", "select/cons_tres"),
    ("slurm.conf", "TaskPlugin=task/cgroup,task/affinity", "TaskPlugin=task/affinity", "task/cgroup"),
    ("slurm.conf", "ProctrackType=proctrack/cgroup", "ProctrackType=proctrack/linuxproc", "ProctrackType"),
    ("slurm.conf", "AccountingStorageTRES=gres/gpu", "AccountingStorageTRES=cpu", "no GPU usage"),
    ("slurm.conf", "Gres=gpu:h100:8 ", "", "no NodeName line has Gres=gpu"),
    ("cgroup.conf", "ConstrainDevices=yes", "ConstrainDevices=no", "CUDA_VISIBLE_DEVICES is advice"),
    ("gres.conf", "AutoDetect=nvml", "AutoDetect=off", "slurmd cannot find the GPUs"),
    ("gres.conf", "AutoDetect=nvml", "Name=gpu Type=h100 File=/dev/nvidia[0-3]", "slurmd drains the node"),
    ("train-per-gpu.sbatch", "srun --gres-flags=allow-task-sharing", "srun", "allow-task-sharing"),
    ("train-per-gpu.sbatch", "#SBATCH --ntasks-per-node=8\n", "", "task count"),
    ("train.sbatch", "--nproc-per-node=8", "--nproc-per-node=4", "starts 4 workers per node"),
    ("train.sbatch", "#SBATCH --ntasks-per-node=1", "#SBATCH --ntasks-per-node=8", "one torchrun per node"),
    ("train.sbatch", "#SBATCH --gpus-per-node=8\n", "", "asks for no GPU"),
])
def test_each_slurm_rule_catches_a_planted_error(file, old, new, words):
    problems = slurm_problems(file, old, new)
    assert any(words in p for p in problems), problems


def test_a_malformed_line_or_a_missing_file_is_one_line(tmp_path, capsys, monkeypatch):
    check = slurm_checker()
    for name in ("slurm.conf", "gres.conf", "cgroup.conf"):
        (tmp_path / name).write_text((SLURM / name).read_text())
    (tmp_path / "gres.conf").write_text("AutoDetect nvml\n")
    monkeypatch.setattr("sys.argv", ["02_slurm_gpu_check.py", "--dir", str(tmp_path)])
    assert check.main() == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "gres.conf" in err[0] and "KEY=VALUE" in err[0]
    monkeypatch.setattr("sys.argv", ["02_slurm_gpu_check.py", "--dir", str(tmp_path / "nowhere")])
    assert check.main() == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: --dir: cannot read")
