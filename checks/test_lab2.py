"""Lab 2 and the utilization chapter: the numbers the report, the sampler and the MFU program compute, on inputs with
known answers, and the experiment end to end on CPU (tiny sizes), with and without the GPU simulator.

The lab's files (the page shows 05_report.py, 06_ncu.py and 03_sampler.py in notest blocks, 04_experiment.py in a
GPU block):
  snippets/labs/lab2/01_starter.py  snippets/labs/lab2/02_train.py  snippets/labs/lab2/03_sampler.py
  snippets/labs/lab2/04_experiment.py  snippets/labs/lab2/05_report.py  snippets/labs/lab2/06_ncu.py
"""
import gzip
import json
import os
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
EXPERIMENT, REPORT, NCU = LAB2 / "04_experiment.py", LAB2 / "05_report.py", LAB2 / "06_ncu.py"
OPT = ROOT / "snippets" / "optimization"
BUBBLE = OPT / "pipeline-parallelism" / "01_bubble.py"  # snippets/optimization/pipeline-parallelism/01_bubble.py
ROOFLINE = OPT / "bottlenecks" / "02_roofline.py"  # snippets/optimization/bottlenecks/02_roofline.py
MFU = OPT / "metrics" / "01_mfu.py"  # snippets/optimization/metrics/01_mfu.py
STEADY = "busy-training@10"  # the scenario after its ramp: NVML 100 %, GPM values from the H200 recording below
# busy-training's GPM values are read from this recording (handbook/gpusim/from_recordings.py); read it here directly.
RECORDED_BUSY = json.loads((ROOT / "snippets" / "fundamentals" / "compute" / "02_busy_vs_utilized.rec.json").read_text(
    encoding="utf-8"))["artifacts"]["busy_vs_utilized.json"]["json"]["busy bf16 matmul"]
STRAGGLER, STRAGGLER_GPU = "8gpu-straggler", 6  # GPU 6 computes (SM activity 96 %), its seven peers wait (41 %)


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


@pytest.fixture(scope="module")
def experiment_module():
    return load(EXPERIMENT)


# ---- the sampler ----------------------------------------------------------------------------------------------

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


def test_sampler_reads_nvml_gpm_clock_and_power_through_the_simulator(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpusim.activate(STEADY):
        sampler_module = load(SAMPLER)
        with sampler_module["UtilSampler"](interval=0.05) as sampler:
            time.sleep(0.4)
    assert sampler.gpm and sampler.name.endswith("(simulated)") and "CUDA_VISIBLE_DEVICES is unset" in sampler.source
    assert len(sampler.samples) >= 4
    assert sampler_module["summarize"](sampler.values("nvml_util"))["mean"] == pytest.approx(100.0)
    assert sampler_module["summarize"](sampler.values("sm_activity"))["mean"] == pytest.approx(RECORDED_BUSY["sm_activity"])
    assert sampler_module["summarize"](sampler.values("tensor_activity"))["mean"] == pytest.approx(
        RECORDED_BUSY["tensor_activity"])
    assert all(s["sm_clock_mhz"] > 0 and s["power_w"] > 0 for s in sampler.samples)


def straggler_uuid() -> str:
    with gpusim.activate(STRAGGLER) as pynvml:
        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(STRAGGLER_GPU))
        finally:
            pynvml.nvmlShutdown()


def sampled_sm_activity(monkeypatch, visible: str | None, cuda_uuid: str | None = None) -> tuple[float, str]:
    """Mean SM activity the sampler reads on the simulated 8-GPU node, and the UUID it chose."""
    import torch

    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    if cuda_uuid:  # a process with CUDA: torch reports its device's UUID, without the GPU- prefix
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("P", (), {"uuid": cuda_uuid})())
    with gpusim.activate(STRAGGLER):
        sampler_module = load(SAMPLER)
        with sampler_module["UtilSampler"](interval=0.05) as sampler:
            time.sleep(0.2)
    return sampler_module["summarize"](sampler.values("sm_activity"))["mean"], sampler.gpu_uuid


@pytest.mark.parametrize("how", ["cuda", "uuid", "prefix", "index"])
def test_sampler_reads_the_gpu_cuda_computes_on_not_nvml_gpu_0(monkeypatch, how):
    """NVML ignores CUDA_VISIBLE_DEVICES: by index 0 the sampler read a peer (41 %) instead of GPU 6 (96 %)."""
    uuid = straggler_uuid()
    visible, cuda = {"cuda": (uuid, uuid.removeprefix("GPU-")), "uuid": (uuid, None), "prefix": (uuid[:13], None),
                     "index": (str(STRAGGLER_GPU), None)}[how]
    sm, chosen = sampled_sm_activity(monkeypatch, visible, cuda)
    assert chosen == uuid and sm == pytest.approx(96.0)


def test_sampler_refuses_an_ambiguous_or_unknown_gpu(monkeypatch):
    for visible, cuda, message in (("GPU-", None, "names 8 GPUs in NVML, not one"),
                                   (None, "00000000-0000-0000-0000-000000000000", "NVML has no GPU with UUID")):
        with pytest.raises(RuntimeError, match=message):
            sampled_sm_activity(monkeypatch, visible, cuda)


def test_sampler_without_a_driver_says_so():
    with gpusim.activate("driver-not-loaded"):
        sampler = load(SAMPLER)["UtilSampler"]()
        with pytest.raises(RuntimeError, match="NVML cannot start"):
            sampler.start()


def test_sampler_script_summarizes_and_writes_a_chart(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # as the handbook's CPU blocks run on a GPU host
    with gpusim.activate(STEADY):
        run_main(SAMPLER, monkeypatch=monkeypatch)
    out = json.loads((tmp_path / "utilization_samples.json").read_text())
    assert out["summary"]["sm_activity"]["busy"]["mean"] == pytest.approx(RECORDED_BUSY["sm_activity"])
    assert set(out["chart"]["series"]) == {"nvml_util", "sm_activity", "tensor_activity"}
    assert out["uuid"].startswith("GPU-") and "CUDA_VISIBLE_DEVICES is empty" in out["source"]
    assert "describe some other workload, or a simulator" in capsys.readouterr().out


# ---- FLOP counts and model sizes --------------------------------------------------------------------------------

def counted_flops_per_token(model, cfg) -> float:
    """FlopCounterMode's FLOPs of one training step on one sequence, per token, with the math attention it can see."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    tokens = torch.randint(cfg.vocab, (1, cfg.seq))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(tokens, tokens).backward()
    return counter.get_total_flops() / cfg.seq


@pytest.mark.parametrize("sdpa", [False, True])
def test_palm_flops_match_pytorchs_counter(train, sdpa):
    """6·N + 12·L·H·Q·T counts every matrix product of a step, written-out attention or SDPA, except that N also
    holds the LayerNorm weights, which do no matrix product."""
    import torch

    cfg = train["stage_config"](2 if sdpa else 0, "cpu")
    torch.manual_seed(0)
    model = train["GPT"](cfg)
    norms = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters())
    assert counted_flops_per_token(model, cfg) == train["flops_per_token"](model, cfg) - 6 * norms


def test_full_size_model_has_the_stated_size(train):
    import torch

    cfg = train["stage_config"](7, "cuda")
    size = train["FULL"]
    with torch.device("meta"):  # no memory, no initialization: shapes only
        model = train["GPT"](cfg)
        starter = load(STARTER)["GPT"](*(size[k] for k in ("layers", "width", "heads", "seq", "vocab")))
    params = sum(p.numel() for p in model.parameters())
    # 50,304·2048 (tied embedding) + 2048·2048 (positions) + 24·(12·2048² + 2·2048) + 2048 (final LayerNorm)
    assert params == sum(p.numel() for p in starter.parameters()) == 1_315_276_800
    # N leaves out the positions: 1,311,082,496; then 6·N + 12·24·2048·2048
    assert train["flops_per_token"](model, cfg) == 6 * 1_311_082_496 + 1_207_959_552


def test_mfu_snippet_and_lab_count_flops_alike(train):
    import torch

    mfu = load(MFU)
    cfg = train["stage_config"](2, "cpu")
    torch.manual_seed(0)
    lab_model = train["GPT"](cfg)
    mfu_model = mfu["GPT"](**{k: getattr(cfg, k) for k in ("layers", "width", "heads", "seq", "vocab")})
    assert mfu["flops_per_token"](mfu_model, cfg.layers, cfg.width, cfg.seq) == train["flops_per_token"](lab_model, cfg)
    full = train["FULL"]
    assert {k: mfu["GPU"][k] for k in ("width", "heads", "seq", "vocab")} == {k: full[k] for k in ("width", "heads", "seq", "vocab")}


def test_activation_formula_matches_the_tensors_a_block_saves(train, experiment_module):
    """36·s·b·h + 4·a·s·b + 16·s·b bytes per block, counted from the tensors autograd saves (unique storages, the
    block's input included and its output not, less the bf16 copies of its weights), in bf16 autocast with SDPA."""
    import torch

    cfg = train["stage_config"](6, "cpu")
    cfg.layers, cfg.width, cfg.heads, cfg.seq, cfg.batch = 2, 96, 3, 40, 2  # s·b != h: activations and weights differ
    model = train["GPT"](cfg)
    weight_shapes = {tuple(p.shape[::-1]) for p in model.parameters()} | {tuple(p.shape) for p in model.parameters()}
    saved, per_block = {}, []
    model.blocks[1].register_forward_pre_hook(lambda *_: saved.clear())
    model.blocks[1].register_forward_hook(lambda *_: per_block.append(dict(saved)))

    def pack(t):
        if tuple(t.shape) not in weight_shapes:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    tokens = torch.randint(cfg.vocab, (cfg.batch, cfg.seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(tokens, tokens)
    assert sum(per_block[0].values()) == experiment_module["activation_formula"](cfg) == cfg.seq * cfg.batch * (36 * 96 + 4 * 3 + 16)
    cfg.checkpoint = True
    assert experiment_module["activation_formula"](cfg) == 4 * cfg.seq * cfg.batch * 96
    cfg.bf16 = False
    assert experiment_module["activation_formula"](cfg) is None  # the formula is for bf16 autocast with SDPA only


# ---- the stages and the data ----------------------------------------------------------------------------------

def test_the_capacity_check_reads_the_shape_this_lab_records(train):
    """checks/test_capacity.py bounds Lab 2's recorded peak memory with the training calculator; it must find the
    transformer's shape under the names this lab's config writes, or it checks model states alone."""
    from dataclasses import asdict

    from test_capacity import lab2_shape

    for stage in (0, 3, 7):
        config = asdict(train["stage_config"](stage, "cuda"))
        assert lab2_shape(config) == {"layers": 24, "hidden": 2048, "heads": 16, "seq": 2048,
                                      "batch": 8 if stage >= 3 else 1}


def test_stage_0_is_the_starter_and_stages_accumulate(train):
    c = [train["stage_config"](s, "cuda") for s in range(8)]
    flags = lambda k: (k.bf16, k.sdpa, k.batch, k.fused_adamw, k.workers, k.pin_memory, k.log_every, k.compile)  # noqa: E731
    assert flags(c[0]) == (False, False, 1, False, 0, False, 1, False)
    assert flags(c[1]) == (True, False, 1, False, 0, False, 1, False)
    assert flags(c[2])[:2] == (True, True) and c[3].batch == 8 and c[4].fused_adamw and not c[3].fused_adamw
    assert (c[5].workers, c[5].pin_memory, c[5].log_every) == (2, True, 1) and c[6].log_every == 100
    assert flags(c[7]) == (True, True, 8, True, 2, True, 100, True)
    cpu = train["stage_config"](7, "cpu")
    assert not cpu.compile and not cpu.pin_memory and cpu.batch == train["TINY"]["big_batch"]
    with pytest.raises(ValueError, match="stage 8: choose 0..7"):
        train["stage_config"](8, "cpu")


def test_synthetic_tokens_are_learnable_and_reproducible(train):
    data = train["SyntheticTokens"](512, 1000)
    tokens, targets = data[3]
    again, _ = data[3]
    assert tokens.shape == targets.shape == (512,) and (tokens == again).all() and not (tokens == data[4][0]).all()
    assert (tokens[1:] == targets[:-1]).all() and 0 <= int(tokens.min()) and int(tokens.max()) < 1000
    follows = ((targets - tokens) % 1000 == 7).float().mean().item()  # the rule holds except at restarts
    assert 0.8 < follows < 0.97


def test_worker_processes_make_the_same_batches(train):
    cfg = train["stage_config"](5, "cpu")
    assert cfg.workers == 2
    data = train["SyntheticTokens"](cfg.seq, cfg.vocab)
    tokens, targets = next(train["make_batches"](cfg, data))
    assert tokens.shape == targets.shape == (cfg.batch, cfg.seq) and str(tokens.dtype) == "torch.int64"
    assert (tokens[0] == data[0][0]).all() and (tokens[1] == data[1][0]).all()


def test_train_script_rejects_bad_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args, message in ((("--stage", "9"), "stage 9: choose 0..7"), (("--batch", "0"), "--batch 0: must be >= 1"),
                          (("--seconds", "-1"), "--seconds -1.0: must be > 0")):
        with pytest.raises(SystemExit) as exit_:
            run_main(TRAIN, *args, monkeypatch=monkeypatch)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


# ---- the ceiling sweep and the telemetry ------------------------------------------------------------------------

def test_the_lab_and_the_mfu_page_sweep_the_same_products(train, experiment_module):
    mfu = load(MFU)
    cfg = train["stage_config"](7, "cuda")
    assert experiment_module["gemm_shapes"](cfg, "cuda") == mfu["gemm_shapes"](mfu["GPU"], "cuda")
    assert (16384, 2048, 50304) in mfu["gemm_shapes"](mfu["GPU"], "cuda")  # the output layer's own product
    rows = mfu["gemm_sweep"]([(64, 64, 64), (128, 128, 128)], "cpu", seconds=0.01)
    result = experiment_module["gemm_sweep"]([(64, 64, 64), (128, 128, 128)], "cpu", seconds=0.01)
    assert [r["shape"] for r in rows] == [r["shape"] for r in result["rows"]] == [[64, 64, 64], [128, 128, 128]]
    assert result["tflops"] == max(r["tflops"] for r in result["rows"]) > 0 and result["best_reasons"] == "not read"


def test_telemetry_reads_clock_power_and_the_power_cap(experiment_module):
    mfu = load(MFU)
    with gpusim.activate("power-cap@30") as pynvml:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        reading = experiment_module["telemetry"](handle)
        clock, power, capped = mfu["read_clock_power"](handle)
        limits = experiment_module["board_limits"](handle)
        pynvml.nvmlShutdown()
    assert "sw_power_cap" in reading["reasons"] and capped is True
    assert reading["sm_clock_mhz"] == clock < limits["max_sm_clock_mhz"] and reading["power_w"] == power > 0
    assert limits["power_limit_w"] == pytest.approx(400.0)
    assert experiment_module["telemetry"](None) == {}


def test_datasheet_tables_agree_and_name_cards_exactly(experiment_module):
    table = experiment_module["DATASHEET_BF16_TFLOPS"]
    assert table["NVIDIA H200"] == table["NVIDIA H100 80GB HBM3"] == 989.0
    assert {name: tflops * 1e12 for name, tflops in table.items()} == load(MFU)["DATASHEET_BF16"]
    assert load(STARTER)["DATASHEET_BF16_TFLOPS"] == table


# ---- the experiment, end to end on CPU ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Every stage, the memory and the kernels, tiny, without NVML (as on a machine without a GPU)."""
    import torch

    out = tmp_path_factory.mktemp("lab2")
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(torch.cuda, "is_available", lambda: False)
        with gpusim.activate("no-gpu"):
            run_main(EXPERIMENT, "--out", str(out), monkeypatch=mp)
    finally:
        mp.undo()
    return out, json.loads((out / "lab2_results.json").read_text())


def test_experiment_measures_every_stage(experiment):
    out, results = experiment
    assert [s["stage"] for s in results["stages"]] == list(range(8))
    assert results["ceiling"]["tflops"] > 0 and results["nvml_gpu"] is None
    for s in results["stages"]:
        tokens = s["config"]["batch"] * s["config"]["seq"]
        assert s["tokens_per_s"] == pytest.approx(s["steps"] * tokens / s["seconds"])
        assert s["achieved_tflops"] == pytest.approx(s["tokens_per_s"] * s["flops_per_token"] / 1e12)
        assert s["mfu"] == pytest.approx(s["achieved_tflops"] / results["ceiling"]["tflops"])
        assert s["mfu_datasheet"] is None  # a CPU has no datasheet peak in the table: no guessed MFU
        assert s["window"][1] > s["window"][0] and s["utilization"] == {} and s["wall_s"] >= s["seconds"]
    memory = results["memory"]
    assert memory["stage"] == 7 and memory["per_layer"]["measured_bytes"] is None  # the allocator is read on CUDA only
    assert memory["per_layer"]["formula_bytes"] > memory["per_layer_checkpointed"]["formula_bytes"] > 0
    assert memory["checkpointing"]["throughput_ratio"] > 0
    assert results["ncu"] == {"skipped": "no CUDA GPU: ncu profiles GPU kernels"}
    for name in ("REPORT.md", "stage_gains.png", "stage0.trace.json.gz", "stage7.ops.txt"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "util_timeline.png").exists()  # no samples, no timeline


def test_experiment_report_reads_its_own_traces(experiment, report):
    out, results = experiment
    text = (out / "REPORT.md").read_text()
    assert "| n/a | NVML utilization >= 90 % (final stage, mean) | not measured: no NVML |" in text
    assert "## Memory (stage 7" in text and "Not measured: no CUDA GPU" in text
    speedup = results["stages"][-1]["tokens_per_s"] / results["stages"][0]["tokens_per_s"]
    assert f"| {speedup:.1f}x (" in text
    summary = report["trace_summary"](out / "stage0.trace.json.gz", 2)
    assert summary["where"] == "CPU operators" and 0 < summary["busy_fraction"] <= 1


def test_experiment_under_the_simulator_refuses_foreign_utilization(tmp_path, monkeypatch, report):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with gpusim.activate(STEADY):
        run_main(EXPERIMENT, "--stages", "0", "--seconds", "0.5", "--out", str(tmp_path), monkeypatch=monkeypatch)
    results = json.loads((tmp_path / "lab2_results.json").read_text())
    assert results["gpm"] and "do not describe this workload" in results["note"] and results["nvml_uuid"].startswith("GPU-")
    for stage in results["stages"]:
        assert stage["utilization"]["nvml_util"]["mean"] == pytest.approx(100.0)
        assert stage["utilization"]["sm_activity"]["mean"] == pytest.approx(RECORDED_BUSY["sm_activity"])
    rows = report["evaluate"](results)
    assert [r["passed"] for r in rows[:3]] == [None, None, None]  # simulated numbers never pass the lab
    assert (tmp_path / "util_timeline.png").exists() and "**Warning:**" in (tmp_path / "REPORT.md").read_text()


def test_experiment_rejects_bad_stages(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_main(EXPERIMENT, "--stages", "0", "9", "--out", str(tmp_path), monkeypatch=monkeypatch)
    assert exit_.value.code == 2 and "--stages [9]: stages are 0..7" in capsys.readouterr().err


# ---- the report's arithmetic on known inputs ------------------------------------------------------------------

def stage(number, tokens_per_s, nvml=None, sm=None, tensor=None, mfu=0.8, achieved=600.0, mfu_datasheet=0.6):
    util = {}
    for key, value in (("nvml_util", nvml), ("sm_activity", sm), ("tensor_activity", tensor)):
        if value is not None:
            util[key] = {"mean": value, "p5": value}
    return {"stage": number, "name": f"stage {number}", "tokens_per_s": tokens_per_s, "utilization": util, "mfu": mfu,
            "mfu_datasheet": mfu_datasheet, "achieved_tflops": achieved, "config": {"batch": 1, "seq": 2048}}


def known_results(**final):
    args = {"nvml": 95.0, "sm": 85.0, "mfu": 0.8, "mfu_datasheet": 0.6} | final
    return {"gpm": True, "datasheet": {"tflops": 989.0}, "ceiling": {"tflops": 750.0, "dtype": "bf16", "rows": [{}] * 9},
            "stages": [stage(0, 100.0, nvml=60.0, sm=20.0, mfu=0.01, mfu_datasheet=0.008), stage(7, 400.0, **args)]}


def test_criteria_pass_on_a_good_run(report):
    rows = report["evaluate"](known_results())
    assert [r["passed"] for r in rows] == [True, True, True, True, True]
    assert [r["value"] for r in rows] == [95.0, 85.0, 0.6, 4.0, 0.8]
    assert report["passed"](rows)


def test_busy_sms_with_idle_tensor_cores_do_not_pass(report):
    """The old criteria passed fp32 with tensor activity 0.0 % and MFU 4.9 %: utilization is not useful work."""
    results = known_results(nvml=99.8, sm=90.9, tensor=0.0, mfu=0.07, achieved=48.4, mfu_datasheet=0.049)
    rows = report["evaluate"](results)
    assert rows[0]["passed"] and rows[1]["passed"] and rows[2]["passed"] is False
    assert "4.9% (48 of 989 TFLOP/s; tensor activity 0.0 %)" in rows[2]["shown"] and not report["passed"](rows)


@pytest.mark.parametrize("final, index, expected", [
    ({"nvml": 89.9}, 0, False),                 # just under 90 % utilization
    ({"sm": 79.0}, 1, False),                   # SM activity under 80 %
    ({"sm": None}, 1, None),                    # no GPM reading: not measured, not passed
    ({"mfu_datasheet": 0.549}, 2, False),       # just under 55 % MFU
    ({"mfu_datasheet": None}, 2, None),         # a card without a datasheet peak: no MFU, no pass
    ({"mfu": 1.2}, 4, False),                   # above the ceiling: the FLOP count or the ceiling is wrong
])
def test_criteria_fail_or_abstain(report, final, index, expected):
    rows = report["evaluate"](known_results(**final))
    assert rows[index]["passed"] is expected and not report["passed"](rows)


def test_speedup_criterion_needs_3x_over_stage_0(report):
    results = known_results()
    results["stages"][1]["tokens_per_s"] = 299.0
    assert report["evaluate"](results)[3]["passed"] is False
    results["stages"][0]["stage"] = 1  # the first stage run is not the baseline
    assert report["evaluate"](results)[3]["passed"] is None


PAGES_STATING_TARGETS = ["docs/labs/lab2.md", "instructor/labs/lab2.md", "docs/optimization/metrics.md"]


def test_the_pages_state_the_targets_the_report_applies(report):
    """The criteria table, and every MFU or SM-activity target a page states, is what 05_report.py passes on:
    a target changed in one place and not the other would grade learners against a number they never read."""
    import re

    page = (ROOT / "docs/labs/lab2.md").read_text(encoding="utf-8")
    table = page[page.index("## Completion criteria"):page.index("## Step 1")]
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", table, re.M))
    assert rows["MFU, against the card's dense bf16 datasheet peak"] == f"≥ {report['MFU_TARGET'] * 100:.0f} %"
    assert rows["NVML utilization, mean"] == f"≥ {report['NVML_TARGET']:.0f} %"
    assert rows["GPM SM activity, mean"] == f"≥ {report['SM_TARGET']:.0f} %"
    assert rows["Throughput"] == f"≥ {report['SPEEDUP_TARGET']:.0f}× the starter's tokens/s"
    targets = {"MFU": report["MFU_TARGET"] * 100, "SM activity": report["SM_TARGET"]}
    for name in PAGES_STATING_TARGETS:
        text = " ".join((ROOT / name).read_text(encoding="utf-8").split())
        for what, target in targets.items():
            for stated in re.findall(rf"{what}[^.;|]{{0,60}}?(?:≥|at least) (\d+) %", text):
                assert float(stated) == pytest.approx(target), f"{name}: states a {what} target of {stated} %, the report {target:g} %"


def test_union_and_gaps(report):
    intervals = [(0, 10), (5, 15), (20, 25), (21, 22)]
    assert report["union_length"](intervals) == 20
    assert report["gaps"](intervals) == [(15, 5)]


def write_trace(path: Path, events: list[dict]) -> Path:
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    return path


def test_trace_summary_on_a_known_trace(report, tmp_path):
    events = [{"ph": "X", "cat": "cpu_op", "name": "step", "ts": 0, "dur": 100},
              {"ph": "X", "cat": "kernel", "name": "a", "ts": 10, "dur": 20},
              {"ph": "X", "cat": "kernel", "name": "b", "ts": 20, "dur": 20},
              {"ph": "X", "cat": "gpu_memcpy", "name": "c", "ts": 60, "dur": 10},
              {"ph": "i", "cat": "kernel", "name": "instant", "ts": 90}]
    s = report["trace_summary"](write_trace(tmp_path / "t.trace.json.gz", events), steps=3)
    assert s["where"] == "GPU" and s["busy_fraction"] == pytest.approx(0.4) and s["events_per_step"] == 1
    assert s["gaps"] == [{"at_ms": pytest.approx(0.04), "ms": pytest.approx(0.02)}]


GEMM = "nvjet_tst_256x128_64x4_1x2_h_bz_coopA_TNT"
FLASH = "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, cutlass::bfloat16_t>, true>(Flash_fwd_params)"
TRITON = "triton_per_fused_add_native_layer_norm_0"
OTHER = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, std::array<char*, 1ul> >(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)"


def test_top_kernels_add_up_time_by_kernel_and_kind(report, tmp_path):
    events = [{"ph": "X", "cat": "kernel", "name": n, "ts": 0, "dur": d}
              for n, d in ((GEMM, 300), (GEMM, 300), (FLASH, 200), (TRITON, 150), (OTHER, 50))]
    events.append({"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 5000})  # not a kernel
    k = report["top_kernels"](write_trace(tmp_path / "k.trace.json.gz", events), steps=2)
    assert k["kernel_ms_per_step"] == pytest.approx(0.5)
    assert k["by_category"] == {"gemm": 0.6, "attention": 0.2, "triton": 0.15, "other": 0.05}
    assert [(t["name"], t["category"], t["calls_per_step"]) for t in k["top"]][:2] == [
        (GEMM, "gemm", 1.0), ("pytorch_flash::flash_fwd_kernel", "attention", 0.5)]
    assert k["top"][0]["ms_per_step"] == pytest.approx(0.3) and k["top"][-1]["name"] == "at::native::vectorized_elementwise_kernel"


def test_the_report_and_ncu_name_kernels_alike(report):
    ncu = load(NCU)
    for name in (GEMM, FLASH, TRITON, OTHER, "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_cublas"):
        assert report["category"](name) == ncu["category"](name) and report["short"](name) == ncu["short"](name)
    assert ncu["SHAPES"] == {k: load(TRAIN)["FULL"][k] for k in ("seq", "width", "heads", "vocab")} | {
        "batch": load(TRAIN)["FULL"]["big_batch"]}


def test_report_cli_errors_name_the_file(report, tmp_path):
    missing = tmp_path / "lab2_results.json"
    with pytest.raises(SystemExit, match=f"{missing}: not found; run 04_experiment.py first"):
        report["main"]([str(missing)])
    missing.write_text("{not json")
    with pytest.raises(SystemExit, match="not valid JSON"):
        report["main"]([str(missing)])
    missing.write_text(json.dumps({"device": "x"}))
    with pytest.raises(SystemExit, match="missing ceiling, stages, timeline, t_start"):
        report["main"]([str(missing)])


def test_report_cli_exit_status_and_sections_follow_the_results(report, tmp_path, capsys):
    results = known_results() | {"device": "test GPU", "nvml_gpu": "test GPU", "nvml_uuid": "GPU-1", "torch": "x",
                                 "timeline": [], "t_start": 0.0}
    results["ceiling"].update(best={"shape": [4096, 4096, 4096], "sm_clock_mhz": 1650.0, "power_w": 690.0})
    for s in results["stages"]:
        s.update(params=1000, flops_per_token=6000, window=[0.0, 1.0], peak_memory_gib=None,
                 config={"batch": 1, "seq": 2048, "layers": 2, "width": 8, "heads": 2, "vocab": 16})
    results["memory"] = {"stage": 6, "config": {"batch": 8, "seq": 2048},
                         "per_layer": {"measured_bytes": 2**30, "formula_bytes": 2**30},
                         "per_layer_checkpointed": {"measured_bytes": 2**27, "formula_bytes": 2**27},
                         "checkpointing": {"tokens_per_s": 75.0, "tokens_per_s_without": 100.0, "throughput_ratio": 0.75,
                                           "peak_memory_gib": 30.0, "peak_memory_gib_without": 60.0}}
    results["ncu"] = {"command": "ncu ...", "kernels": [
        {"name": GEMM, "category": "gemm", "duration_ns": 5e6, "sm_throughput_pct": 90.1, "achieved_occupancy_pct": 12.0,
         "dram_throughput_pct": 20.0}]}
    path = tmp_path / "lab2_results.json"
    path.write_text(json.dumps(results))
    assert report["main"]([str(path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "**Overall: PASS**" in text and "| kept for the backward pass | 1,024.0 | 1,024.0 |" in text
    assert f"| `{GEMM}` | gemm | 5.00 | 90.1 | 12.0 | 20.0 |" in text and "SM clock 1650 MHz, 690 W" in text
    results["stages"][1]["utilization"]["nvml_util"]["mean"] = 50.0
    path.write_text(json.dumps(results))
    assert report["main"]([str(path)]) == 1
    assert "FAIL NVML utilization >= 90 % (final stage, mean): 50.0 %" in capsys.readouterr().out


# ---- Nsight Compute -----------------------------------------------------------------------------------------

NCU_CSV = """==PROF== Connected to process 4242 (/usr/bin/python3)
==PROF== Profiling "nvjet_tst_256x128": 0%....50%....100% - 1 pass
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","4242","python3","127.0.0.1","{gemm}","1","7","(384, 1, 1)","(132, 1, 1)","0","9.0","Command line profiler metrics","dram__throughput.avg.pct_of_peak_sustained_elapsed","%","21.35"
"0","4242","python3","127.0.0.1","{gemm}","1","7","(384, 1, 1)","(132, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","ns","7,312,448"
"0","4242","python3","127.0.0.1","{gemm}","1","7","(384, 1, 1)","(132, 1, 1)","0","9.0","Command line profiler metrics","sm__throughput.avg.pct_of_peak_sustained_elapsed","%","88.70"
"0","4242","python3","127.0.0.1","{gemm}","1","7","(384, 1, 1)","(132, 1, 1)","0","9.0","Command line profiler metrics","sm__warps_active.avg.pct_of_peak_sustained_active","%","18.61"
"1","4242","python3","127.0.0.1","{flash}","1","7","(128, 1, 1)","(16, 16, 8)","0","9.0","Command line profiler metrics","sm__throughput.avg.pct_of_peak_sustained_elapsed","%","61.02"
"1","4242","python3","127.0.0.1","{flash}","1","7","(128, 1, 1)","(16, 16, 8)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","ns","2,101,000"
==PROF== Disconnected from process 4242
""".format(gemm=GEMM, flash=FLASH.replace('"', '""'))


def fake_ncu(tmp_path: Path, log: str, status: int = 0, stderr: str = "") -> str:
    """An `ncu` that writes `log` where --log-file says and exits with `status`, without running the program."""
    (tmp_path / "ncu.log.txt").write_text(log)
    script = tmp_path / "ncu"
    script.write_text(f"""#!/bin/sh
while [ "$#" -gt 0 ]; do [ "$1" = "--log-file" ] && cp "{tmp_path}/ncu.log.txt" "$2"; shift; done
printf '%s' '{stderr}' >&2
exit {status}
""")
    script.chmod(0o755)
    return str(script)


def test_ncu_csv_is_read_per_kernel():
    kernels = load(NCU)["parse_csv"](NCU_CSV)
    assert [(k["name"], k["category"]) for k in kernels] == [(GEMM, "gemm"), ("pytorch_flash::flash_fwd_kernel", "attention")]
    assert kernels[0]["duration_ns"] == 7_312_448 and kernels[0]["achieved_occupancy_pct"] == pytest.approx(18.61)
    assert "dram_throughput_pct" not in kernels[1]  # a metric ncu did not report stays absent, not zero


def test_ncu_profile_picks_the_gemm_and_the_attention_kernel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ncu = load(NCU)
    result = ncu["profile"](dict(ncu["SHAPES"]), ncu=fake_ncu(tmp_path, NCU_CSV))
    assert result["gemm"]["name"] == GEMM and result["attention"]["sm_throughput_pct"] == pytest.approx(61.02)
    assert result["command"].startswith(str(tmp_path / "ncu")) and "--profile-from-start off" in result["command"]


@pytest.mark.parametrize("log, status, stderr, message", [
    ("==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU Performance Counters", 1, "",
     "may not read the GPU's performance counters here \\(ERR_NVGPUCTRPERM\\)"),
    ("==WARNING== No kernels were profiled.\n", 0, "", "exited with status 0 and profiled 0 kernels"),
    ("", 9, "==ERROR== The application returned an error code (1)", "exited with status 9"),
])
def test_ncu_failures_say_what_to_do(tmp_path, monkeypatch, log, status, stderr, message):
    monkeypatch.chdir(tmp_path)
    ncu = load(NCU)
    with pytest.raises(ncu["NcuUnavailable"], match=message):
        ncu["profile"](dict(ncu["SHAPES"]), ncu=fake_ncu(tmp_path, log, status, stderr))


def test_ncu_missing_or_no_gpu_is_one_clear_line(tmp_path, monkeypatch):
    import torch

    ncu = load(NCU)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NCU", raising=False)
    monkeypatch.setitem(ncu["find_ncu"].__globals__, "glob", type("G", (), {"glob": staticmethod(lambda p: [])}))
    monkeypatch.setattr(os.path, "isfile", lambda p: False)
    with pytest.raises(ncu["NcuUnavailable"], match="ncu \\(Nsight Compute CLI\\) not found: install Nsight Compute"):
        ncu["find_ncu"]()
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="06_ncu.py: no CUDA GPU here"):
        ncu["main"]([])
    with pytest.raises(SystemExit):
        ncu["main"](["--heads", "3"])  # 2048 is not a multiple of 3


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
