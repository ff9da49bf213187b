"""GPU locks across processes: N-GPU holders never overlap a holder of the same GPU, and nobody deadlocks."""
import json
import multiprocessing
import time

from handbook import requirements, scheduling

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
