"""Lab 3: the scaling harness, the DDP script and the all-reduce benchmark, run for real on CPU with gloo.

The page's GPU blocks run the same programs with NCCL on the GPU runner; here every launch is a real
multi-process torchrun job on CPU (no mocks), kept tiny so the whole file stays fast.
"""
import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

LAB3 = Path(__file__).resolve().parents[1] / "snippets" / "labs" / "lab3"
TRAIN = LAB3 / "01_ddp_train.py"  # snippets/labs/lab3/01_ddp_train.py (shown in a notest block)
BENCH = LAB3 / "02_allreduce_bench.py"
HARNESS = LAB3 / "03_scaling_harness.py"
ESTIMATE = LAB3 / "04_comm_estimate.py"
CURVE = LAB3 / "05_scaling_curve.py"
COUNTS = (2, 4)  # 4 proves any N works, and a bus-bandwidth factor other than 1


def run(script, *args, cwd):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # CPU + gloo even on a machine with GPUs
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


# ---- the efficiency formulas, on hand-computed numbers ---------------------------------------------------

@pytest.fixture(scope="module")
def harness():
    return runpy.run_path(str(HARNESS), run_name="lab3_harness")


def test_weak_efficiency_on_known_numbers(harness):
    # 1 worker 100 samples/s, 2 workers 190 samples/s (same batch per worker): 190 / (2 * 100)
    assert harness["weak_efficiency"](100, 190, 2) == pytest.approx(0.95)
    assert harness["weak_efficiency"](100, 400, 4) == pytest.approx(1.0)
    assert harness["weak_efficiency"](250, 1000, 8) == pytest.approx(0.5)


def test_strong_efficiency_on_known_numbers(harness):
    # the same global batch: 1 worker 100 ms/step, 4 workers 30 ms/step -> speedup 3.33, efficiency 0.833
    assert harness["speedup"](0.100, 0.030) == pytest.approx(10 / 3)
    assert harness["strong_efficiency"](0.100, 0.030, 4) == pytest.approx(0.100 / (4 * 0.030))
    assert harness["strong_efficiency"](0.100, 0.050, 2) == pytest.approx(1.0)
    assert harness["strong_efficiency"](0.100, 0.100, 2) == pytest.approx(0.5)


def test_comm_share_on_known_numbers(harness):
    assert harness["comm_share"](0.010, 0.008) == pytest.approx(0.2)
    assert harness["comm_share"](0.010, 0.010) == 0.0
    assert harness["comm_share"](0.010, 0.011) == 0.0  # noise never makes a negative share


@pytest.mark.parametrize("call", ["weak_efficiency(0, 190, 2)", "strong_efficiency(0.1, 0.05, 0)",
                                  "comm_share(-1, 0.5)"])
def test_formulas_reject_impossible_inputs(harness, call):
    with pytest.raises(ValueError, match="must be > 0"):
        eval(call, dict(harness))


def test_analyse_uses_the_right_phase_for_each_kind(harness):
    # 1 worker: 100 samples/s at batch 32 (0.32 s/step). 2 workers: weak phase 190 samples/s, strong phase 0.2 s/step.
    def phase(batch, world, step_s, compute_s):
        return {"per_rank_batch": batch, "step_s": step_s, "compute_only_step_s": compute_s,
                "samples_per_s_total": batch * world / step_s}
    base = {"phases": [phase(32, 1, 0.32, 0.32)]}
    two = {"phases": [phase(32, 2, 64 / 190, 0.30), phase(16, 2, 0.20, 0.15)]}
    (row,) = harness["analyse"](base, {2: two})
    assert row["weak"]["efficiency"] == pytest.approx(0.95)
    assert row["strong"]["speedup"] == pytest.approx(1.6)
    assert row["strong"]["efficiency"] == pytest.approx(0.8)
    assert row["strong"]["comm_share"] == pytest.approx(0.25)


# ---- the harness, for real: 1, 2 and 4 gloo workers --------------------------------------------------------

@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory):
    """One working directory for the lab's runs, as a learner's folder: step 5 reads what steps 1 and 4 wrote."""
    return tmp_path_factory.mktemp("lab3")


@pytest.fixture(scope="module")
def curve(lab_dir):
    """One run of the scaling curve with 2 and 4 gloo workers. It runs the harness (1, 2 and 4 workers) and the
    benchmark (2 and 4 ranks) in the lab folder, as a learner's run would, and the checks of every step read those
    files: the CPU cost of the file is one launch per worker count, not one per check."""
    proc = run(CURVE, "--device", "cpu", "--counts", *map(str, COUNTS), "--max-bytes", str(2**16), cwd=lab_dir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return lab_dir, proc.stdout


@pytest.fixture(scope="module")
def scaling(curve):
    cwd, stdout = curve
    return cwd, stdout, json.loads((cwd / "scaling_report.json").read_text())


def test_harness_passes_its_criteria_on_cpu(scaling):
    cwd, stdout, report = scaling
    assert report["passed"] and all(report["criteria"].values())
    assert report["backend"] == "gloo" and report["device"] == "cpu"
    assert "FAIL" not in stdout and stdout.count("PASS") == len(report["criteria"])
    assert (cwd / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (cwd / "scaling_report.md").read_text()
    assert "![throughput and efficiency](scaling.png)" in md and "| 2 |" in md and "| 4 |" in md


@pytest.mark.parametrize("n", COUNTS)
def test_every_rank_trained_and_stayed_in_sync(scaling, n):
    cwd, _, _ = scaling
    run_n = json.loads((cwd / f"ddp_{n}w.json").read_text())
    assert run_n["world_size"] == n and run_n["backend"] == "gloo"
    weak, strong = run_n["phases"]
    assert (weak["per_rank_batch"], strong["per_rank_batch"]) == (32, 32 // n)
    for phase in (weak, strong):
        assert sorted(r["rank"] for r in phase["ranks"]) == list(range(n))
        assert phase["replicas_in_sync"] and len({r["checksum"] for r in phase["ranks"]}) == 1
        assert all(r["samples_per_s"] > 0 and math.isfinite(r["loss"]) for r in phase["ranks"])
        assert phase["samples_per_s_total"] == pytest.approx(phase["global_batch"] / phase["step_s"])


@pytest.mark.parametrize("n", COUNTS)
def test_compute_only_steps_really_skip_the_all_reduce(scaling, n):
    """Each rank trains on different data: without the all-reduce the replicas must drift apart. A forward pass
    outside no_sync() would still all-reduce, keep them identical, and book the communication as compute."""
    cwd, stdout, report = scaling
    for phase in json.loads((cwd / f"ddp_{n}w.json").read_text())["phases"]:
        after = [r["checksum_after_compute_only"] for r in phase["ranks"]]
        assert phase["compute_only_without_communication"] and len(set(after)) == n
        assert all(r["solo_compute_step_s"] > 0 for r in phase["ranks"])
    (row,) = [r for r in report["rows"] if r["workers"] == n]
    gap = row["weak"]["gap"]
    assert gap["compute_efficiency"] == pytest.approx(gap["baseline_compute_only_step_s"] / gap["compute_only_step_s"])
    assert gap["concurrency_slowdown"] == pytest.approx(gap["compute_only_step_s"] / gap["solo_compute_step_s"])
    assert f"{n} workers: compute-only step" in stdout


@pytest.mark.parametrize("n", COUNTS)
def test_reported_efficiencies_follow_from_the_raw_numbers(scaling, harness, n):
    cwd, _, report = scaling
    base = json.loads((cwd / "ddp_1w.json").read_text())["phases"][0]
    weak, strong = json.loads((cwd / f"ddp_{n}w.json").read_text())["phases"]
    (row,) = [r for r in report["rows"] if r["workers"] == n]
    assert row["weak"]["efficiency"] == pytest.approx(weak["samples_per_s_total"] / (n * base["samples_per_s_total"]))
    assert row["strong"]["efficiency"] == pytest.approx(base["step_s"] / (n * strong["step_s"]))
    # sane whatever else the CPU is doing: positive, and n workers never more than n times as efficient
    for kind in ("weak", "strong"):
        assert 0 < row[kind]["efficiency"] <= n
        assert 0 <= row[kind]["comm_share"] < 1


# ---- bad input: one line naming the program and the fix ------------------------------------------------------

def test_harness_rejects_a_batch_that_n_does_not_divide(tmp_path):
    proc = run(HARNESS, "--device", "cpu", "--workers", "3", "--batch", "32", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("03_scaling_harness.py: --batch 32 is not divisible by --workers 3: "
                                   "pick a batch that every N divides")


def test_train_script_outside_torchrun_says_how_to_start_it(tmp_path):
    proc = run(TRAIN, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "01_ddp_train.py: start me with torchrun, e.g. torchrun --standalone --nproc-per-node 2 01_ddp_train.py"


# ---- the all-reduce benchmark: right answers pass, a wrong one is caught ------------------------------------

@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(BENCH), run_name="lab3_bench")


def test_bandwidth_formulas_on_known_numbers(bench):
    assert bench["algbw_gbps"](2**30, 0.010) == pytest.approx(107.374182)  # 1 GiB in 10 ms
    assert [bench["busbw_factor"](n) for n in (2, 4, 8)] == [1.0, 1.5, 1.75]
    assert bench["busbw_factor"](8, "all_gather") == 0.875 and bench["busbw_factor"](8, "broadcast") == 1.0
    assert bench["sizes"](2**30) == [2**k for k in range(10, 31, 2)]  # 1 KiB .. 1 GiB, 11 sizes


def test_verification_counts_wrong_elements(bench):
    n = 3
    total = sum(bench["fill"](1000, r, "cpu") for r in range(n))  # what a correct SUM all-reduce returns
    assert bench["count_wrong"](total, n) == 0
    total[17] += 1
    total[500] -= 0.5
    assert bench["count_wrong"](total, n) == 2
    assert bench["count_wrong"](total[:10], n) == 0  # chunks keep their place: a shifted chunk is wrong
    assert bench["count_wrong"](total[1:11], n) == 10


@pytest.mark.parametrize("n", COUNTS)
def test_bench_on_gloo_ranks_is_correct(curve, n):
    cwd, stdout = curve
    result = json.loads((cwd / f"allreduce_bench_{n}.json").read_text())
    factor = 2 * (n - 1) / n
    assert result["correct"] and result["world_size"] == n and result["busbw_factor"] == factor
    assert [r["bytes"] for r in result["rows"]] == [1024, 4096, 16384, 65536]
    for r in result["rows"]:
        assert r["wrong_elements"] == 0 and r["time_us"] > 0
        assert r["algbw_gbps"] == pytest.approx(r["bytes"] / (r["time_us"] * 1e-6) / 1e9)
        assert r["busbw_gbps"] == pytest.approx(r["algbw_gbps"] * factor)  # 2(n-1)/n: 1 for 2 ranks, 1.5 for 4
    assert stdout.count(" ok") == 4 * len(COUNTS)
    chart = result["chart"]
    assert chart["x"]["unit"] == "bytes" and chart["y"]["unit"] == "GB/s" and len(chart["series"]["busbw"]) == 4


def test_bench_catches_a_wrong_all_reduce(tmp_path):
    proc = run(BENCH, "--device", "cpu", "--max-bytes", str(2**12), "--inject-fault", cwd=tmp_path)
    assert proc.returncode != 0
    assert "torchrun exited with 1" in proc.stderr
    result = json.loads((tmp_path / "allreduce_bench.json").read_text())
    assert result["correct"] is False
    assert [r["wrong_elements"] for r in result["rows"]] == [1, 1]  # one corrupted element per size, all caught
    assert proc.stdout.count("WRONG: 1 element(s)") == 2



# ---- step 5: the estimate joins the benchmark and the training run ------------------------------------------

@pytest.fixture(scope="module")
def estimate():
    return runpy.run_path(str(ESTIMATE), run_name="lab3_estimate")


def test_estimate_formulas_on_known_numbers(estimate):
    rows = [{"bytes": 1000, "time_us": 10.0, "algbw_gbps": 0.1}, {"bytes": 3000, "time_us": 20.0, "algbw_gbps": 0.15}]
    assert estimate["allreduce_time_s"](rows, 500) == pytest.approx(10e-6)       # below: the latency floor
    assert estimate["allreduce_time_s"](rows, 2000) == pytest.approx(15e-6)      # between: linear in size
    assert estimate["allreduce_time_s"](rows, 6000) == pytest.approx(6000 / 0.15e9)  # above: the largest algbw
    # DDP's assignment: reverse order, a bucket closes at its cap, the first one's cap is smaller
    assert estimate["buckets"]([10] * 6, 25, first_cap=5) == [10, 30, 20]
    # a parameter larger than the cap is never split (a 4096x4096 fp32 weight is 64 MiB against a 25 MiB cap)
    assert estimate["buckets"]([64, 64, 1], 25, first_cap=1) == [1, 64, 64]
    assert sum(estimate["buckets"]([3, 7, 11, 13], 9)) == 34


def test_estimate_reads_steps_1_and_4(curve):
    cwd = curve[0]
    proc = subprocess.run([sys.executable, str(ESTIMATE), "--bench", "allreduce_bench_2.json"], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((cwd / "comm_estimate.json").read_text())
    train = json.loads((cwd / "ddp_2w.json").read_text())
    assert result["world_size"] == 2 and result["gradient_bytes"] == train["parameters"] * 4
    assert result["buckets"] == 1 and result["predicted_allreduce_s"] > 0
    assert 0 <= result["hidden_share"] <= 1
    assert result["exposed_comm_s"] == pytest.approx(
        max(0.0, train["phases"][0]["step_s"] - train["phases"][0]["compute_only_step_s"]))


def test_estimate_refuses_runs_of_different_sizes(curve):
    proc = subprocess.run([sys.executable, str(ESTIMATE), "--bench", "allreduce_bench_2.json", "--train", "ddp_4w.json"],
                          cwd=curve[0], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("04_comm_estimate.py: allreduce_bench_2.json was measured on 2 ranks but "
                                   "ddp_4w.json ran on 4: rerun 02_allreduce_bench.py --ranks 4")


def test_the_scaling_curve_draws_what_the_harness_and_the_benchmark_measured(curve):
    """labs/lab3/05_scaling_curve.py with 2 and 4 gloo workers: the program the 4- and 8-GPU recordings run."""
    cwd, _ = curve
    efficiency = json.loads((cwd / "scaling_efficiency.json").read_text())["chart"]
    assert [point[0] for point in efficiency["series"]["weak"]] == [1, *COUNTS]
    curve_data = json.loads((cwd / "scaling_curve.json").read_text())
    assert curve_data["scaling"] == json.loads((cwd / "scaling_report.json").read_text())
    for i, n in enumerate(COUNTS, start=1):
        reported = curve_data["scaling"]["rows"][i - 1]["weak"]["efficiency"]
        assert abs(efficiency["series"]["weak"][i][1] - 100 * reported) < 1e-9
        bench = json.loads((cwd / f"allreduce_bench_{n}.json").read_text())["rows"]
        assert curve_data["busbw"][str(n)] == bench and all(row["wrong_elements"] == 0 for row in bench)
    busbw = json.loads((cwd / "busbw_by_gpus.json").read_text())["chart"]["series"]
    assert sorted(busbw) == [f"{n} GPUs" for n in COUNTS]
