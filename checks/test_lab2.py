"""Lab 2 and the utilization chapter: the numbers the report and the sampler compute, on inputs with known answers,
and the experiment end to end on CPU (tiny sizes), with and without the GPU simulator.

The lab's files (the page shows 05_report.py and 03_sampler.py in notest blocks, 04_experiment.py in a GPU block):
  snippets/labs/lab2/01_starter.py  snippets/labs/lab2/02_train.py  snippets/labs/lab2/03_sampler.py
  snippets/labs/lab2/04_experiment.py  snippets/labs/lab2/05_report.py
"""
import gzip
import json
import runpy
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from handbook import gpusim

ROOT = Path(__file__).resolve().parents[1]
LAB2 = ROOT / "snippets" / "labs" / "lab2"
STARTER, TRAIN, SAMPLER = LAB2 / "01_starter.py", LAB2 / "02_train.py", LAB2 / "03_sampler.py"
EXPERIMENT, REPORT = LAB2 / "04_experiment.py", LAB2 / "05_report.py"
OPT = ROOT / "snippets" / "optimization"
BUBBLE = OPT / "pipeline-parallelism" / "01_bubble.py"  # snippets/optimization/pipeline-parallelism/01_bubble.py
ROOFLINE = OPT / "bottlenecks" / "02_roofline.py"  # snippets/optimization/bottlenecks/02_roofline.py
MFU = OPT / "metrics" / "01_mfu.py"  # snippets/optimization/metrics/01_mfu.py
STEADY = "busy-training@10"  # the scenario after its ramp: NVML 100 %, GPM values from the H200 recording below
# busy-training's GPM values are read from this recording (handbook/gpusim/from_recordings.py); read it here directly.
RECORDED_BUSY = json.loads((ROOT / "snippets" / "fundamentals" / "compute" / "02_busy_vs_utilized.rec.json").read_text(
    encoding="utf-8"))["artifacts"]["busy_vs_utilized.json"]["json"]["busy bf16 matmul"]


def load(path: Path) -> dict:
    return runpy.run_path(str(path), run_name=f"lab2_check_{path.stem}")


def run_main(path: Path, *args: str, monkeypatch) -> None:
    """Run a snippet as `python path args...` does, in this process (the working directory is the caller's)."""
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    runpy.run_path(str(path), run_name="__main__")


@pytest.fixture(scope="module")
def report():
    return load(REPORT)


@pytest.fixture(scope="module")
def train():
    return load(TRAIN)


# ---- the sampler's arithmetic ---------------------------------------------------------------------------------

def test_percentile_matches_numpy():
    sampler = load(SAMPLER)
    values = [float(v) for v in np.random.default_rng(0).uniform(0, 100, 37)]
    for q in (0, 5, 50, 95, 100):
        assert sampler["percentile"](values, q) == pytest.approx(float(np.percentile(values, q)))
    assert sampler["summarize"]([10.0, 20.0, 30.0, 40.0]) == {
        "n": 4, "mean": 25.0, "p5": pytest.approx(11.5), "p50": 25.0, "p95": pytest.approx(38.5), "min": 10.0, "max": 40.0}
    assert sampler["summarize"]([]) is None


def test_window_keeps_only_samples_whose_interval_is_inside():
    window = load(SAMPLER)["window"]
    # Samples every 0.2 s; the workload ran from t=1.0 to t=2.0 at 100 %, idle (0 %) otherwise.
    timeline = [{"t": round(0.2 * k, 1), "nvml_util": 100.0 if 1.0 < 0.2 * k <= 2.0 + 1e-9 else 0.0} for k in range(1, 16)]
    inside = window(timeline, "nvml_util", 1.0, 2.0, 0.2)
    assert inside == [100.0] * 5  # t = 1.2 ... 2.0; the sample at 1.0 covers 0.8-1.0, outside
    assert window(timeline, "sm_activity", 0, 10, 0.2) == []  # a key the samples lack


def test_sampler_reads_nvml_and_gpm_through_the_simulator():
    with gpusim.activate(STEADY):
        sampler_module = load(SAMPLER)
        with sampler_module["UtilSampler"](interval=0.05) as sampler:
            time.sleep(0.4)
    assert sampler.gpm and sampler.name.endswith("(simulated)")
    assert len(sampler.samples) >= 4
    assert sampler_module["summarize"](sampler.values("nvml_util"))["mean"] == pytest.approx(100.0)
    assert sampler_module["summarize"](sampler.values("sm_activity"))["mean"] == pytest.approx(RECORDED_BUSY["sm_activity"])
    assert sampler_module["summarize"](sampler.values("tensor_activity"))["mean"] == pytest.approx(
        RECORDED_BUSY["tensor_activity"])


def test_sampler_without_a_driver_says_so():
    with gpusim.activate("driver-not-loaded"):
        sampler = load(SAMPLER)["UtilSampler"]()
        with pytest.raises(RuntimeError, match="NVML cannot read GPU 0"):
            sampler.start()


def test_sampler_script_summarizes_and_writes_a_chart(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with gpusim.activate(STEADY):
        run_main(SAMPLER, monkeypatch=monkeypatch)
    out = json.loads((tmp_path / "utilization_samples.json").read_text())
    assert out["summary"]["sm_activity"]["busy"]["mean"] == pytest.approx(RECORDED_BUSY["sm_activity"])
    assert set(out["chart"]["series"]) == {"nvml_util", "sm_activity", "tensor_activity"}
    assert "describe some other workload, or a simulator" in capsys.readouterr().out


# ---- FLOP counts ----------------------------------------------------------------------------------------------

def test_flop_count_matches_pytorchs_counter(train):
    import torch  # here, not at the top: every xdist worker imports this file to collect it

    from torch.utils.flop_counter import FlopCounterMode

    model = train["mlp"](64, 128, 3, 10)
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    assert counter.get_total_flops() == 16 * train["train_flops_per_sample"](model)


def test_full_size_model_has_the_stated_size(train):
    import torch

    with torch.device("meta"):  # no memory, no initialization: shapes only
        model = train["mlp"](1024, 4096, 8, 1000)
        starter = load(STARTER)["mlp"](1024, 4096, 8, 1000)
    # forward 2·(1024·4096 + 8·4096² + 4096·1000) = 285,016,064; ×3 minus the first layer's input gradient
    assert train["train_flops_per_sample"](model) == 846_659_584
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in starter.parameters()) == 142_545_896


def test_mfu_snippet_and_lab_count_flops_alike(train):
    mfu = load(MFU)
    model = train["mlp"](32, 64, 2, 5)
    assert mfu["train_flops_per_sample"](model) == train["train_flops_per_sample"](model)


# ---- the stages -----------------------------------------------------------------------------------------------

def test_stage_0_is_the_starter_and_stages_accumulate(train):
    c = [train["stage_config"](s, "cuda") for s in range(6)]
    assert (c[0].batch_size, c[0].workers, c[0].batched, c[0].pin_memory, c[0].bf16, c[0].log_every, c[0].compile) == (
        32, 0, False, False, False, 1, False)
    assert c[1].batch_size == 8192 and not c[1].batched
    assert c[2].batched and c[2].pin_memory and c[2].workers == 4 and not c[2].bf16
    assert c[3].bf16 and c[3].log_every == 1
    assert c[4].log_every == 100 and not c[4].compile
    assert c[5].compile and c[5].bf16 and c[5].batch_size == 8192
    cpu = train["stage_config"](5, "cpu")
    assert not cpu.compile and not cpu.pin_memory and cpu.batch_size == 512
    with pytest.raises(ValueError, match="stage 6: choose 0..5"):
        train["stage_config"](6, "cpu")


def test_batched_loader_ships_uint8_batches(train):
    import torch

    cfg = train["stage_config"](2, "cpu")
    cfg.workers = 0
    data = train["SyntheticImages"](256, 16, 4)
    x, y = next(iter(train["make_loader"](data, cfg)))
    assert x.dtype == torch.uint8 and x.shape == (cfg.batch_size, 16) and y.shape == (cfg.batch_size,)
    cfg0 = train["stage_config"](0, "cpu")
    x, _ = next(iter(train["make_loader"](data, cfg0)))
    assert x.dtype == torch.float32 and x.shape == (32, 16) and x.abs().max() <= 1.0


def test_train_script_rejects_a_bad_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_main(TRAIN, "--stage", "9", monkeypatch=monkeypatch)
    assert exit_.value.code == 2 and "stage 9: choose 0..5" in capsys.readouterr().err


# ---- the experiment, end to end on CPU ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    import torch

    """All stages and the sweep, tiny, without NVML (as on a machine without a GPU)."""
    out = tmp_path_factory.mktemp("lab2")
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(torch.cuda, "is_available", lambda: False)
        with gpusim.activate("no-gpu"):
            run_main(EXPERIMENT, "--seconds", "0.15", "--out", str(out), monkeypatch=mp)
    finally:
        mp.undo()
    return out, json.loads((out / "lab2_results.json").read_text())


def test_experiment_measures_every_stage(experiment):
    out, results = experiment
    assert [s["stage"] for s in results["stages"]] == [0, 1, 2, 3, 4, 5]
    assert results["ceiling"]["tflops"] > 0 and results["nvml_gpu"] is None
    for s in results["stages"] + results["sweep"]:
        assert s["samples_per_s"] == pytest.approx(s["steps"] * s["config"]["batch_size"] / s["seconds"])
        assert s["achieved_tflops"] == pytest.approx(s["samples_per_s"] * s["flops_per_sample"] / 1e12)
        assert s["mfu"] == pytest.approx(s["achieved_tflops"] / results["ceiling"]["tflops"])
        assert s["mfu_datasheet"] is None  # a CPU has no datasheet peak in the table: no guessed MFU
        assert s["window"][1] > s["window"][0] and s["utilization"] == {}
    assert [s["config"]["batch_size"] for s in results["sweep"]] == [64, 512]
    for name in ("REPORT.md", "stage_gains.png", "batch_sweep.png", "stage0.trace.json.gz", "stage5.ops.txt"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "util_timeline.png").exists()  # no samples, no timeline


def test_experiment_report_reads_its_own_traces(experiment, report):
    out, results = experiment
    text = (out / "REPORT.md").read_text()
    assert "| n/a | NVML utilization >= 90 % (final stage, mean) | not measured: no NVML |" in text
    speedup = results["stages"][-1]["samples_per_s"] / results["stages"][0]["samples_per_s"]
    assert f"| {speedup:.1f}x (" in text
    summary = report["trace_summary"](out / "stage0.trace.json.gz", 5)
    assert summary["where"] == "CPU operators" and 0 < summary["busy_fraction"] <= 1


def test_experiment_under_the_simulator_refuses_foreign_utilization(tmp_path, monkeypatch, report):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with gpusim.activate(STEADY):
        run_main(EXPERIMENT, "--stages", "4", "--no-sweep", "--seconds", "0.5", "--out", str(tmp_path),
                 monkeypatch=monkeypatch)
    results = json.loads((tmp_path / "lab2_results.json").read_text())
    assert results["gpm"] and "do not describe this workload" in results["note"]
    for stage in results["stages"]:
        assert stage["utilization"]["nvml_util"]["mean"] == pytest.approx(100.0)
        assert stage["utilization"]["sm_activity"]["mean"] == pytest.approx(RECORDED_BUSY["sm_activity"])
    rows = report["evaluate"](results)
    assert [r["passed"] for r in rows[:2]] == [None, None]  # simulated numbers never pass the lab
    assert (tmp_path / "util_timeline.png").exists() and "**Warning:**" in (tmp_path / "REPORT.md").read_text()


# ---- the report's arithmetic on known inputs ------------------------------------------------------------------

def stage(number, samples_per_s, nvml=None, sm=None, mfu=0.4, achieved=300.0, mfu_datasheet=None):
    util = {}
    if nvml is not None:
        util["nvml_util"] = {"mean": nvml, "p5": nvml}
    if sm is not None:
        util["sm_activity"] = {"mean": sm, "p5": sm}
    return {"stage": number, "name": f"stage {number}", "samples_per_s": samples_per_s, "utilization": util,
            "mfu": mfu, "mfu_datasheet": mfu_datasheet, "achieved_tflops": achieved, "config": {"batch_size": 32}}


def known_results(**final):
    args = {"nvml": 95.0, "sm": 85.0, "mfu": 0.4} | final
    return {"gpm": True, "ceiling": {"tflops": 750.0, "dtype": "bf16", "n": 8192},
            "stages": [stage(0, 100.0, nvml=60.0, sm=20.0, mfu=0.01), stage(5, 400.0, **args)]}


def test_mfu_is_shown_against_the_datasheet_first_then_the_ceiling(report):
    results = known_results(achieved=300.0, mfu=0.4, mfu_datasheet=300.0 / 989.0)
    results["datasheet"] = {"tflops": 989.0}
    shown = report["evaluate"](results)[3]["shown"]
    assert shown.startswith("MFU 30.3% of the 989 TFLOP/s dense bf16 datasheet peak; 40.0% of the ceiling")
    del results["datasheet"]
    results["stages"][1]["mfu_datasheet"] = None
    row = report["evaluate"](results)[3]
    assert row["shown"].startswith("MFU against the datasheet: unknown") and row["passed"] is True
    results["datasheet"], results["stages"][1]["mfu_datasheet"] = {"tflops": 200.0}, 1.5
    assert report["evaluate"](results)[3]["passed"] is False  # above the datasheet peak: a wrong FLOP count


def test_experiment_knows_the_datasheet_peak_by_exact_card_name():
    table = load(EXPERIMENT)["DATASHEET_BF16_TFLOPS"]
    mfu_table = load(MFU)["DATASHEET_BF16"]
    assert table["NVIDIA H200"] == 989.0 and table["NVIDIA H100 80GB HBM3"] == 989.0
    assert {name: tflops * 1e12 for name, tflops in table.items()} == mfu_table  # the lab and the page agree


def test_criteria_pass_on_a_good_run(report):
    rows = report["evaluate"](known_results())
    assert [r["passed"] for r in rows] == [True, True, True, True]
    assert [r["value"] for r in rows] == [95.0, 85.0, 4.0, 0.4]
    assert report["passed"](rows)


@pytest.mark.parametrize("final, index, expected", [
    ({"nvml": 89.9}, 0, False),                 # just under 90 % utilization
    ({"sm": 79.0}, 1, False),                   # SM activity under 80 %
    ({"sm": None}, 1, None),                    # no GPM reading: not measured, not passed
    ({"mfu": 1.2}, 3, False),                   # above the ceiling: the FLOP count or ceiling is wrong
])
def test_criteria_fail_or_abstain(report, final, index, expected):
    rows = report["evaluate"](known_results(**final))
    assert rows[index]["passed"] is expected and not report["passed"](rows)


def test_speedup_criterion_needs_3x_over_stage_0(report):
    results = known_results()
    results["stages"][1]["samples_per_s"] = 299.0
    assert report["evaluate"](results)[2]["passed"] is False
    results["stages"][0]["stage"] = 1  # the first stage run is not the baseline
    assert report["evaluate"](results)[2]["passed"] is None


def test_knee_and_memory_fit(report):
    def point(batch, rate, gib):
        return {"config": {"batch_size": batch}, "samples_per_s": rate, "peak_memory_gib": gib}
    sweep = [point(b, r, 2 + 0.001 * b) for b, r in ((256, 100.0), (512, 180.0), (1024, 190.0), (2048, 200.0))]
    assert report["knee"](sweep)["config"]["batch_size"] == 512  # 180 >= 0.9 * 200
    fit = report["memory_fit"](sweep, 80.0)
    assert fit["fixed_gib"] == pytest.approx(2.0) and fit["gib_per_sample"] == pytest.approx(0.001)
    assert fit["max_batch"] in (77999, 78000)  # (80 - 2) / 0.001, up to float rounding


def test_union_and_gaps(report):
    intervals = [(0, 10), (5, 15), (20, 25), (21, 22)]
    assert report["union_length"](intervals) == 20
    assert report["gaps"](intervals) == [(15, 5)]


def test_trace_summary_on_a_known_trace(report, tmp_path):
    events = [{"ph": "X", "cat": "cpu_op", "name": "step", "ts": 0, "dur": 100},
              {"ph": "X", "cat": "kernel", "name": "a", "ts": 10, "dur": 20},
              {"ph": "X", "cat": "kernel", "name": "b", "ts": 20, "dur": 20},
              {"ph": "X", "cat": "gpu_memcpy", "name": "c", "ts": 60, "dur": 10},
              {"ph": "i", "cat": "kernel", "name": "instant", "ts": 90}]
    path = tmp_path / "t.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    s = report["trace_summary"](path, steps=3)
    assert s["where"] == "GPU" and s["busy_fraction"] == pytest.approx(0.4) and s["events_per_step"] == 1
    assert s["gaps"] == [{"at_ms": pytest.approx(0.04), "ms": pytest.approx(0.02)}]


def test_report_cli_errors_name_the_file(report, tmp_path):
    missing = tmp_path / "lab2_results.json"
    with pytest.raises(SystemExit, match=f"{missing}: not found; run 04_experiment.py first"):
        report["main"]([str(missing)])
    missing.write_text("{not json")
    with pytest.raises(SystemExit, match="not valid JSON"):
        report["main"]([str(missing)])
    missing.write_text(json.dumps({"device": "x"}))
    with pytest.raises(SystemExit, match="missing ceiling, stages, sweep, timeline, t_start"):
        report["main"]([str(missing)])


def test_report_cli_exit_status_follows_the_criteria(report, tmp_path, capsys):
    results = known_results() | {"device": "test GPU", "nvml_gpu": "test GPU", "torch": "x", "sweep": [],
                                 "timeline": [], "t_start": 0.0}
    for s in results["stages"]:
        s.update(params=1000, flops_per_sample=6000, window=[0.0, 1.0], peak_memory_gib=None,
                 config={"batch_size": 32, "features": 4, "width": 8, "depth": 1, "classes": 2})
    path = tmp_path / "lab2_results.json"
    path.write_text(json.dumps(results))
    assert report["main"]([str(path)]) == 0
    assert "**Overall: PASS**" in (tmp_path / "REPORT.md").read_text()
    results["stages"][1]["utilization"]["nvml_util"]["mean"] = 50.0
    path.write_text(json.dumps(results))
    assert report["main"]([str(path)]) == 1
    assert "FAIL NVML utilization >= 90 % (final stage, mean): 50.0 %" in capsys.readouterr().out


# ---- chapter snippets with exact answers ----------------------------------------------------------------------

def test_pipeline_bubble_simulation(monkeypatch, tmp_path):
    bubble = load(BUBBLE)
    g = bubble["simulate"](bubble["gpipe"], 4, 8)
    f = bubble["simulate"](bubble["one_f_one_b"], 4, 8)
    assert g["total"] == f["total"] == (8 + 4 - 1) * 3  # (m + p - 1)(tf + tb)
    assert g["bubble_vs_ideal"] == pytest.approx(3 / 8) and g["peak_held"] == 8 and f["peak_held"] == 4
    assert bubble["simulate"](bubble["gpipe"], 1, 5)["idle_share"] == 0


def test_roofline_intensity():
    roofline = load(ROOFLINE)
    flops, moved = roofline["linear"](8192, 4096, 4096)
    assert (flops, moved) == (2 * 8192 * 4096 * 4096, 2 * (2 * 8192 * 4096 + 4096 * 4096))
    assert flops / moved == pytest.approx(1638.4)
