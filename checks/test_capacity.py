"""Section 7's calculators reproduce published cases and this handbook's own recordings, and render on their pages.

Bad inputs, fuzzing and run-time bounds are in test_capacity_inputs.py.
"""
import base64
import importlib.util
import json
import math
import random
import re
import tomllib
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError

from handbook import DOCS, ROOT, SNIPPETS
from handbook.site import calculators, hooks

CAPACITY = SNIPPETS / "capacity"
TRAINING = CAPACITY / "training-sizing/01_gpu_days.py"
SERVING = CAPACITY / "inference-sizing/01_serving_memory.py"
FAILURES = CAPACITY / "failures-and-checkpoints/01_failure_plan.py"
SIMULATION = CAPACITY / "failures-and-checkpoints/02_goodput_sim.py"
COST = CAPACITY / "cost/01_cost_per_useful_hour.py"
PRICES = CAPACITY / "cost/prices.toml"
MFU_RECORDING = SNIPPETS / "optimization/metrics/01_mfu.rec.json"
LAB2_RECORDING = SNIPPETS / "labs/lab2/04_experiment.rec.json"

# Published figures, each from the source its page cites.
LLAMA3_FLOPS = 3.8e25            # Llama 3 paper (arXiv 2407.21783), section 3
LLAMA3_MFU = (0.38, 0.43)        # same paper, Table 4
MODEL_CARD_GPU_HOURS = 30.84e6   # Llama 3.1 model card, 405B row
LLAMA3_UNEXPECTED, LLAMA3_DAYS, LLAMA3_GPUS = 419, 54, 16384  # paper, section 3.3.4
# ZeRO paper (arXiv 1910.02054), Figure 1: Ψ = 7.5B parameters, N_d = 64, K = 12: GB per device
ZERO_FIGURE_1 = {"ddp": 120, "zero1": 31.4, "zero2": 16.6, "zero3": 1.9}
KV_BYTES_PER_TOKEN_70B = 327_680  # 2 · 80 layers · 8 KV heads · 128 head_dim · 2 bytes (the model's config.json)
# Spheron's KV cache guide, Llama 3.1 70B in BF16: (tokens per sequence, sequences) -> GB, as rounded there
KV_TABLE_70B = [(4096, 1, 1.3), (16384, 1, 5.4), (32768, 1, 10.7), (131072, 1, 42.9), (131072, 8, 343)]
DALY_CASES = [(24 * 60, 117), (6 * 60, 57), (15, 9.1)]  # Daly 2006, Figs. 3-5: M (min) -> τ_opt (min), δ = 5 min

# Published serving measurements: output tokens/s of whole systems. The bound the calculator gives for the same
# model, hardware and lengths must never be below them. MLPerf logs give output tokens/s and samples/s (about 290
# output tokens a sample); they give no prompt lengths, so the bound takes none (a prompt only lowers it).
H100 = ["--gpu-mem-gb", "80", "--hbm-tbps", "3.35", "--peak-tflops", "1979"]   # H100 SXM datasheet, dense FP8
H200 = ["--gpu-mem-gb", "141", "--hbm-tbps", "4.8", "--peak-tflops", "1979"]   # H200 SXM datasheet, dense FP8
LLAMA2_70B_FP8 = ["--params", "68.98e9", "--weight-bytes", "1", "--kv-bytes", "1",
                  "--prompt-tokens", "0", "--output-tokens", "290", "--users", "1000000"]
MLPERF = "https://github.com/mlcommons/inference_results_v{}/blob/main/closed/{}/llama2-70b-99/Offline/performance/run_1/mlperf_log_summary.txt"
PUBLISHED = [
    ("MLPerf Inference v4.1 (2024-08-28), NVIDIA DGX H100, 8× H100, Llama 2 70B offline",
     MLPERF.format("4.1", "NVIDIA/results/DGX-H100_H100-SXM-80GBx8_TRT"), LLAMA2_70B_FP8 + H100 + ["--gpus", "8"], 24524.9),
    ("MLPerf Inference v4.1 (2024-08-28), NVIDIA 8× H200, Llama 2 70B offline",
     MLPERF.format("4.1", "NVIDIA/results/H200-SXM-141GBx8_TRT"), LLAMA2_70B_FP8 + H200 + ["--gpus", "8"], 31302.7),
    ("MLPerf Inference v4.1 (2024-08-28), NVIDIA 8× H200 at 1000 W, Llama 2 70B offline",
     MLPERF.format("4.1", "NVIDIA/results/H200-SXM-141GB-CTSx8_TRT"), LLAMA2_70B_FP8 + H200 + ["--gpus", "8"], 34864.2),
    ("MLPerf Inference v5.1 (2025-09-09), Dell XE9680, 8× H200, Llama 2 70B offline",
     MLPERF.format("5.1", "Dell/results/XE9680_H200_SXM_141GBx8_TRT"), LLAMA2_70B_FP8 + H200 + ["--gpus", "8"], 35316.7),
    ("MLPerf Inference v5.1 (2025-09-09), Cisco, 16× H100 in two nodes, Llama 2 70B offline",
     MLPERF.format("5.1", "Cisco/results/HGX-H100_H100-SXM-80GBx16_TRT"), LLAMA2_70B_FP8 + H100 + ["--gpus", "16"], 62351.6),
    ("vLLM blog (2024-07-23), Llama 3.1 405B FP8 on 8× H100, 1024 tokens in, 128 out",
     "https://blog.vllm.ai/2024/07/23/llama31.html",
     ["--params", "405.9e9", "--layers", "126", "--heads", "128", "--weight-bytes", "1", "--kv-bytes", "1",
      "--prompt-tokens", "1024", "--output-tokens", "128", "--users", "1000000", "--gpus", "8"] + H100, 291.53),
]


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def t():
    return load(TRAINING)


@pytest.fixture(scope="module")
def s():
    return load(SERVING)


@pytest.fixture(scope="module")
def f():
    return load(FAILURES)


def call(module, *argv, capsys=None):
    """main() in this process: (exit status, stdout, stderr)."""
    code = module.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def defaults(module) -> dict:
    values, _ = module.inputs([])
    return values


# --- training: time -------------------------------------------------------------------------------------------

def test_6nd_matches_the_llama3_paper(t):
    v = defaults(t)
    assert t.flops_per_token(v)["weights"] * v["tokens"] == pytest.approx(LLAMA3_FLOPS, rel=0.01)


def test_attention_flops_are_palms_12_l_h_s_per_token(t):
    v = defaults(t)
    assert t.flops_per_token(v)["attention"] == 12 * 126 * 16384 * 8192
    longer = t.flops_per_token(v | {"seq_len": 131072})
    assert longer["attention"] == 16 * t.flops_per_token(v)["attention"]  # linear in s per token
    assert t.time_to_train(v)["flops"] == pytest.approx((6 * 405e9 + 12 * 126 * 16384 * 8192) * 15.6e12)


def test_model_card_gpu_hours_lie_inside_the_published_mfu_and_goodput(t):
    v = defaults(t)
    fastest = t.time_to_train(v | {"mfu": LLAMA3_MFU[1], "goodput": 1.0})["gpu_hours"]
    slowest = t.time_to_train(v | {"mfu": LLAMA3_MFU[0], "goodput": 0.85})["gpu_hours"]
    assert fastest < MODEL_CARD_GPU_HOURS < slowest
    assert t.time_to_train(v)["gpu_hours"] == pytest.approx(MODEL_CARD_GPU_HOURS, rel=0.15)


def test_days_give_whole_replicas_that_finish_in_time(t):
    v = defaults(t) | {"goodput": 1.0}
    need = t.time_to_train(v | {"days": 60})
    replica = v["tp"] * v["pp"]
    assert need["gpus"] % replica == 0 and need["days"] <= 60
    fewer = need["gpus"] - replica
    assert need["gpu_hours"] / fewer / 24 > 60  # one replica fewer would not finish
    days = t.time_to_train(v)["days"]
    assert days == pytest.approx(t.time_to_train(v)["flops"] / (LLAMA3_GPUS * 989e12 * 0.40) / 86400)


# --- training: memory -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sharding, published_gb", ZERO_FIGURE_1.items())
def test_model_states_match_the_zero_paper(t, sharding, published_gb):
    v = defaults(t) | {"params": 7.5e9, "weight_bytes": 2, "grad_bytes": 2, "optimizer_bytes": 12, "tp": 1, "pp": 1,
                       "sharding": sharding}
    m = t.memory_per_gpu(v, 64)
    assert (m["weights"] + m["grads"] + m["optimizer"]) / 1e9 == pytest.approx(published_gb, abs=0.05)


def per_layer(t, v):
    """Activation bytes of one layer, from the calculator: the difference one more layer makes."""
    return t.memory_per_gpu(v | {"layers": 2}, 64)["activations"] - t.memory_per_gpu(v | {"layers": 1}, 64)["activations"]


@pytest.mark.parametrize("tp", [1, 2, 8])
def test_activations_match_korthikanti_table_2(t, tp):
    s, b, h, a = 2048, 4, 12288, 96  # a GPT-3-shaped layer, f = 4h as in the paper
    v = defaults(t) | {"seq_len": s, "micro_batch": b, "hidden": h, "heads": a, "ffn_hidden": 4 * h, "tp": tp, "pp": 2}
    sbh = s * b * h
    table = {  # (recompute, sequence parallel): bytes per layer, Table 2 of arXiv 2205.05198
        ("none", False): sbh * (10 + 24 / tp + 5 * a * s / (h * tp)),
        ("none", True): sbh / tp * (34 + 5 * a * s / h),
        ("selective", False): sbh * (10 + 24 / tp),
        ("selective", True): sbh * 34 / tp,
    }
    if tp == 1:
        table[("full", True)] = 2 * sbh  # full recomputation keeps each layer's input
    for (recompute, sp), expected in table.items():
        got = per_layer(t, v | {"recompute": recompute, "sequence_parallel": sp})
        assert got == pytest.approx(expected), (recompute, sp)


def test_llama3_layout_fits_80gb_and_plain_data_parallel_does_not(t):
    """Meta trained the 405B model with TP 8 × PP 16 and FSDP sharding optimizer states and gradients on H100 80GB."""
    v = defaults(t)
    assert t.memory_per_gpu(v, 16384)["fits"]
    assert not t.memory_per_gpu(v | {"sharding": "ddp"}, 16384)["fits"]
    assert not t.memory_per_gpu(v | {"recompute": "none", "sequence_parallel": False}, 16384)["fits"]


def recorded_mfu(path):
    """(achieved FLOP/s, datasheet FLOP/s) as the recording stores them, whatever the snippet."""
    artifacts = json.loads(path.read_text())["artifacts"]
    for artifact in artifacts.values():
        j = artifact.get("json") or {}
        if "achieved_flops" in j:
            return j["achieved_flops"], j["datasheet_flops"]
        if isinstance(j.get("stages"), list):
            best = max(j["stages"], key=lambda s: s.get("achieved_tflops") or 0)
            return best["achieved_tflops"] * 1e12, j["datasheet"]["tflops"] * 1e12
    pytest.fail(f"{path.name}: no achieved FLOP/s in the recording")


def another_program(path) -> bool:
    """A recording kept, awaiting a re-recording, while its snippet became another program: it describes nothing."""
    return bool((json.loads(path.read_text()).get("awaiting") or {}).get("another_program"))


@pytest.mark.parametrize("recording", [MFU_RECORDING, LAB2_RECORDING], ids=lambda p: p.parent.name)
def test_from_recording_reports_mfu_against_the_datasheet(t, recording, tmp_path, capsys):
    if not recording.exists():
        pytest.skip(f"{recording.name} not recorded yet")
    if another_program(recording):  # its MFU is another program's: refused, never used to size a fleet
        code, out, err = call(t, "--from-recording", recording, capsys=capsys)
        assert code == 2 and "awaits a re-recording" in err and not out, err
        return
    achieved, datasheet = recorded_mfu(recording)
    code, out, err = call(t, "--from-recording", recording, "--params", "8e9", "--layers", "32", "--hidden", "4096",
                          "--heads", "32", "--tp", "1", "--pp", "1", "--gpus", "64", "--goodput", "1",
                          "--json", tmp_path / "out.json", capsys=capsys)
    assert code == 0, err
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["inputs"]["peak_tflops"] * 1e12 == pytest.approx(datasheet)
    assert data["inputs"]["mfu"] == pytest.approx(achieved / datasheet)
    assert data["results"]["sustained_tflops_per_gpu"] * 1e12 == pytest.approx(achieved)
    assert re.search(rf"MFU \(of the datasheet peak\) +{achieved / datasheet:.1%}", out), out


def lab2_results():
    artifacts = json.loads(LAB2_RECORDING.read_text())["artifacts"]
    return next(a["json"] for a in artifacts.values() if isinstance((a.get("json") or {}).get("stages"), list))


def pick(mapping: dict, *names):
    return next((mapping[n] for n in names if isinstance(mapping.get(n), (int, float))), None)


def lab2_shape(config: dict) -> dict | None:
    """A Lab 2 stage's transformer shape from its recorded config, under the names the lab's 02_train.py uses
    (layers, width, heads, seq, batch) or older ones; None where any is missing (not a transformer)."""
    shape = {"layers": pick(config, "layers", "n_layer", "n_layers"),
             "hidden": pick(config, "width", "d_model", "hidden", "n_embd", "dim"),
             "heads": pick(config, "heads", "n_head", "n_heads"),
             "seq": pick(config, "seq", "seq_len", "block_size", "context", "sequence_length"),
             "batch": pick(config, "batch", "batch_size", "micro_batch")}
    return shape if all(shape.values()) else None


def test_model_states_against_lab2s_recorded_peak_memory(t):
    """Lab 2 trains with AdamW in FP32 master weights (autocast keeps them): 4 + 4 + 8 bytes per parameter. The
    calculator's model states must be a lower bound of every recorded peak, and, with its activation estimate where
    the model is a transformer, within a factor of 2 of the peak of the smallest-batch stage (autocast keeps some
    activations in FP32; allocator workspaces add more). Values are read from whatever recording exists."""
    if not LAB2_RECORDING.exists() or another_program(LAB2_RECORDING):
        pytest.skip("Lab 2 not recorded yet for the lab as it now stands")
    results, checked = lab2_results(), []
    for stage in results["stages"]:
        config = stage.get("config", {})
        params = pick(stage, "params", "parameters", "n_params") or pick(results, "params", "parameters")
        peak_gib = pick(stage, "peak_memory_gib", "peak_gib")
        if not params or not peak_gib:
            continue
        shape = lab2_shape(config) or {}
        layers, hidden, heads, seq, batch = (shape.get(k) for k in ("layers", "hidden", "heads", "seq", "batch"))
        transformer = bool(shape)
        v = defaults(t) | {"params": params, "tp": 1, "pp": 1, "sharding": "ddp", "weight_bytes": 4, "grad_bytes": 4,
                           "optimizer_bytes": 8}
        if transformer:
            v |= {"layers": layers, "hidden": hidden, "heads": heads, "ffn_hidden": 4 * hidden, "seq_len": seq,
                  "micro_batch": batch, "recompute": "none", "sequence_parallel": False,
                  "vocab": pick(config, "vocab", "vocab_size") or 50257}
        m = t.memory_per_gpu(v, 1)
        states = m["weights"] + m["grads"] + m["optimizer"]
        peak = peak_gib * 2 ** 30
        assert states <= peak, (stage.get("name"), states / 2 ** 30, peak_gib)
        checked.append((batch or 0, peak, states + (m["activations"] if transformer else 0)))
    assert checked, "no stage of the Lab 2 recording states its parameters and peak memory"
    _, peak, estimate = min(checked)
    assert 0.5 <= peak / estimate <= 2, (peak / 2 ** 30, estimate / 2 ** 30)


# --- serving --------------------------------------------------------------------------------------------------

def test_kv_cache_per_token_matches_llama_70b(s):
    v = defaults(s)
    assert s.capacity(v, 1, 1)[1] == KV_BYTES_PER_TOKEN_70B
    assert s.capacity(v, 8, 1)[1] * 8 == KV_BYTES_PER_TOKEN_70B  # TP 8: one KV head on each GPU
    assert s.capacity(v, 8, 2)[1] * 16 == KV_BYTES_PER_TOKEN_70B  # and half the layers on each stage


@pytest.mark.parametrize("tokens, sequences, published_gb", KV_TABLE_70B)
def test_kv_cache_matches_the_published_table(s, tokens, sequences, published_gb):
    gb = s.capacity(defaults(s), 1, 1)[1] * tokens * sequences / 1e9
    digits = len(str(published_gb).partition(".")[2])
    # half a unit of the last published digit, or 0.5 % (343 is 8 × the rounded 42.9, not 8 × 42.95)
    assert gb == pytest.approx(published_gb, abs=0.5 * 10 ** -digits, rel=0.005)


def test_the_issue_case_deploys_three_replicas_of_tp8(s):
    """Llama 3.1 70B, 100 users at 32K tokens on H100 80GB: 17 GPUs per replica is not deployable; 3 × TP 8 is."""
    choice = s.plan(defaults(s))["choice"]
    assert (choice["tp"], choice["pp"], choice["replicas"], choice["gpus"]) == (8, 1, 3, 24)
    assert choice["served"] == 100


@pytest.mark.parametrize("heads, kv_heads, expected", [(64, 8, [1, 2, 4, 8]), (52, 52, [1, 2, 4]),
                                                       (40, 40, [1, 2, 4, 8]), (28, 4, [1, 2, 4]), (96, 96, [1, 2, 4, 8]),
                                                       (32, 8, [1, 2, 4, 8]), (24, 24, [1, 2, 4, 8]), (14, 2, [1, 2])])
def test_tensor_parallel_degrees_are_what_vllm_accepts(s, heads, kv_heads, expected):
    v = defaults(s) | {"heads": heads, "kv_heads": kv_heads}
    assert s.degrees(v) == expected
    for t in expected:  # vLLM: heads % tp == 0; KV heads split evenly or replicated; a node's NVLink domain
        assert heads % t == 0 and (kv_heads % t == 0 or t % kv_heads == 0) and t <= 8


def test_every_layout_fits_its_gpus_memory(s):
    rng = random.Random(7)
    for _ in range(100):
        v = defaults(s) | {"params": 10 ** rng.uniform(9, 11.7), "prompt_tokens": rng.randint(0, 200_000),
                           "output_tokens": rng.randint(1, 8000), "users": rng.randint(1, 5000),
                           "weight_bytes": rng.choice([0.5, 1, 2]), "kv_bytes": rng.choice([1, 2]),
                           "gpu_mem_gb": rng.choice([80, 141]), "block_size": rng.choice([1, 16, 32])}
        result = s.plan(v)
        for o in result["options"]:
            t, p = o["tp"], o["pp"]
            _, kv = s.capacity(v, t, p)
            blocks = math.ceil((v["prompt_tokens"] + v["output_tokens"]) / v["block_size"])
            used = v["params"] * v["weight_bytes"] / (t * p) + o["seqs_per_replica"] * blocks * v["block_size"] * kv
            assert used <= v["gpu_mem_gb"] * 1e9 * v["usable_memory"] + 1, (v, o)
            assert o["gpus"] == o["replicas"] * t * p and t in s.degrees(v)
            assert o["replicas"] * o["seqs_per_replica"] >= v["users"]  # everyone served at once
        if result["choice"]:
            assert result["choice"]["gpus"] == min(o["gpus"] for o in result["options"])


def test_bounds_at_batch_one_are_bytes_over_bandwidth_and_flops_over_peak(s):
    v = defaults(s) | {"prompt_tokens": 1000, "output_tokens": 2}
    b = s.bounds(v, 4, 1, 1, KV_BYTES_PER_TOKEN_70B)
    weights, context = 70.6e9 * 2, 1000 + 2 / 2
    assert b["tpot_ms"] == pytest.approx((weights + context * KV_BYTES_PER_TOKEN_70B) / (4 * 3.35e12) * 1e3)
    prefill = 2 * 70.6e9 * 1000 + 2 * 80 * 1000 ** 2 * 64 * 128
    assert b["ttft_s"] == pytest.approx(prefill / (4 * 989e12))
    assert b["ttft_last_of_batch_s"] == b["ttft_s"]


def test_batching_trades_latency_for_throughput(s):
    v = defaults(s) | {"prompt_tokens": 2000, "output_tokens": 500}
    points = [s.bounds(v, 8, 1, batch, KV_BYTES_PER_TOKEN_70B) for batch in (1, 8, 64, 256)]
    assert [p["tokens_per_s_per_replica"] for p in points] == sorted(p["tokens_per_s_per_replica"] for p in points)
    assert [p["tpot_ms"] for p in points] == sorted(p["tpot_ms"] for p in points)


def test_405b_in_bf16_needs_pipeline_stages_across_nodes(s):
    """vLLM's Llama 3.1 announcement serves the BF16 405B model on 16 H100s as TP 8 × PP 2."""
    v = defaults(s) | {"params": 405.9e9, "layers": 126, "heads": 128, "prompt_tokens": 1024, "output_tokens": 128,
                       "users": 10}
    choice = s.plan(v)["choice"]
    assert (choice["tp"], choice["pp"], choice["gpus"]) == (8, 2, 16)


@pytest.mark.parametrize("what, source, args, measured", PUBLISHED, ids=[p[0][:40] for p in PUBLISHED])
def test_the_bound_is_never_below_a_published_measurement(s, what, source, args, measured, capsys):
    code, out, err = call(s, *args, "--measured-tokens-per-s", measured, capsys=capsys)
    assert code == 0, err  # 1 with "exceeds the bound" would mean the model is wrong
    bound = float(re.search(r"of the bound ([\d,]+):", out)[1].replace(",", ""))
    assert bound >= measured
    assert re.search(rf"the bound is {bound / measured:.1f}× above it", out), out


# --- failures, spares and checkpoints -------------------------------------------------------------------------

def test_interruption_rate_and_job_mtbf_match_llama3(f):
    r = f.plan(defaults(f))
    assert f"{r['per_gpu_hour']:.1e}" == "2.0e-05"
    assert 2.5 < r["job_mtbf_hours"] < 3.5  # "one failure every three hours" (DataCenterDynamics)
    assert r["expected_failures"] == pytest.approx(LLAMA3_UNEXPECTED)


@pytest.mark.parametrize("mtbf, published", DALY_CASES)
def test_daly_interval_reproduces_his_published_optima(f, mtbf, published):
    assert f.daly(5, mtbf) == pytest.approx(published, rel=0.01)


def poisson_cdf(mean, k):
    return sum(math.exp(i * math.log(mean) - mean - math.lgamma(i + 1)) for i in range(k + 1))


@pytest.mark.parametrize("mean", [0.3, 7.8, 120.0, 4000.0])
def test_spares_cover_the_asked_confidence_and_no_more(f, mean):
    for confidence in (0.9, 0.99, 0.999999):
        k = f.poisson_quantile(mean, confidence)
        assert poisson_cdf(mean, k) >= confidence > poisson_cdf(mean, k - 1)


def test_a_large_fleets_spares_need_no_underflowing_loop(f):
    """exp(-mean) underflows past a mean of ~745: the old loop never ended. The normal limit checks the answer."""
    mean = 2_000_000.0
    k = f.poisson_quantile(mean, 0.99)
    assert k == pytest.approx(mean + 2.3263 * math.sqrt(mean), abs=5)


def test_repair_time_covered_inverts_the_spare_count(f):
    v = defaults(f)
    r = f.plan(v)
    job_rate = r["per_gpu_hour"] * v["job_gpus"]
    for share, hours in r["repair_hours_covered"].items():
        spares = math.ceil(float(share.rstrip("%")) / 100 * r["nodes"])
        assert f.poisson_quantile(job_rate * hours, 0.99) <= spares < f.poisson_quantile(job_rate * hours * 1.01, 0.99)


def test_goodput_stays_a_share_for_any_mtbf(f):
    for mtbf in (1e-6, 0.05, 3, 1e3, 1e9):
        g = f.goodput(f.daly(5, mtbf), 5, 10, mtbf)
        assert 0 <= g <= 1
    assert f.goodput(40, 5, 10, 186) == pytest.approx(40 / (186 * math.exp(10 / 186) * math.expm1(45 / 186)))


def test_the_page_and_the_calculator_give_the_same_spare_shares(f):
    """The page cites 5 % (Delta) and 5-10 % (ml-engineering); the calculator translates exactly those shares."""
    page = " ".join((DOCS / "capacity/failures-and-checkpoints.md").read_text().split())
    assert f.SHARES == (0.05, 0.10) and '"significant overprovisioning of 5 %"' in page and "5–10 % spare nodes" in page
    assert "3–10 %" not in page and "3-10 %" not in page  # the unsourced early-failure claim is gone


# --- the goodput simulation -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim():
    return load(SIMULATION)


def test_simulated_goodput_agrees_with_dalys_model(sim):
    """Within four standard errors of the 20 seeded runs (and 0.5 %): the long intervals, few segments retried many
    times, are the noisiest."""
    results = sim.sweep(sim.inputs([]))
    for mtbf, r in results.items():
        for p in r["points"]:
            allowed = max(4 * p["relative_standard_error"], 0.005)
            assert abs(p["goodput_sim"] / p["goodput_model"] - 1) <= allowed, (mtbf, p)
        assert r["model_goodput_at_daly"] >= r["best_sim_goodput"] - 0.005, mtbf


@pytest.mark.parametrize("need_over_mtbf", [0.1, 1.0, 6.0])
def test_one_segments_simulated_wall_time_has_dalys_mean(sim, need_over_mtbf):
    """Drawn without loops over failures (geometric counts, inverse-CDF times, normal sums past 16): the mean wall
    time of a segment must still be Daly's M·e^(R/M)·(e^((τ+δ)/M) − 1), here with up to thousands of failures."""
    rng, mtbf, delta, restart = random.Random(3), 60.0, 5.0, 30.0
    seg = need_over_mtbf * mtbf - delta
    walls = [sim.segment_wall(rng, seg, delta, restart, mtbf) for _ in range(8000)]
    expected = mtbf * math.exp(restart / mtbf) * math.expm1((seg + delta) / mtbf)
    assert sum(walls) / len(walls) == pytest.approx(expected, rel=0.03)


def test_sampled_segments_keep_the_mean(sim):
    """Past its budget the simulation draws a share of the identical segments and scales up: no bias."""
    rng = random.Random(5)
    walls = [sim.simulate(3000, 30, 5, 10, 180, rng, sample=20) for _ in range(400)]
    assert sum(walls) / len(walls) == pytest.approx(sim.expected_wall(3000, 30, 5, 10, 180), rel=0.03)


# --- cost ------------------------------------------------------------------------------------------------------

def test_every_price_has_a_source_url_and_an_iso_date():
    import datetime
    prices = tomllib.loads(PRICES.read_text())["prices"]
    for name, entry in prices.items():
        assert re.fullmatch(r"https://\S+", entry.get("source", "")), f"{name}: no source URL"
        assert isinstance(entry.get("as_of"), datetime.date), f"{name}: as_of is not an ISO date"


def test_on_demand_is_the_launch_price_less_the_2025_cut():
    c = load(COST)
    p, a = c.load_prices(PRICES)
    a = {name: entry["value"] for name, entry in a.items()}
    raw = tomllib.loads(PRICES.read_text())["prices"]
    launch, cut = raw["aws_p5_on_demand_launch"], raw["aws_p5_price_cut"]
    assert c.options(p, a)[0]["paid_per_gpu_hour"] == pytest.approx(launch["value"] / launch["gpus"] * (1 - cut["value"]))


def test_break_even_is_where_owning_and_renting_cost_the_same_per_useful_hour(capsys):
    c = load(COST)
    p, a = c.load_prices(PRICES)
    a = {name: entry["value"] for name, entry in a.items()}
    owned = sum(c.on_prem_hourly(p, a).values())
    for rented in (r for r in c.options(p, a) if not r["pays_when_idle"]):
        u = owned * rented["useful_share"] / (rented["paid_per_gpu_hour"] * a["goodput"])
        if u <= 1:
            at_u = {r["option"]: r for r in c.options(p, a | {"utilization": u})}
            assert at_u["on-prem, owned"]["per_useful_gpu_hour"] == pytest.approx(rented["per_useful_gpu_hour"])
    code, out, _ = call(c, capsys=capsys)
    assert code == 0 and re.search(r"breaks even with neocloud on-demand at utilization \d+%", out)


# --- the pages: outputs and charts rendered at build time ------------------------------------------------------

def expanded(page):
    path = DOCS / "capacity" / page
    return calculators.expand(path.read_text(), path, SNIPPETS)


@pytest.mark.parametrize("page, charts", [("training-sizing.md", 0), ("inference-sizing.md", 1),
                                          ("failures-and-checkpoints.md", 1), ("cost.md", 1)])
def test_pages_show_calculator_output_and_charts(page, charts):
    markdown = expanded(page)
    assert "<!-- calculator:" not in markdown and "<!-- price-table:" not in markdown
    assert markdown.count('```console title="Run when this page was built"') >= 1
    uris = re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", markdown)
    assert len(uris) == charts
    assert all(b"<svg" in base64.b64decode(u) for u in uris)


@pytest.mark.parametrize("page", ["training-sizing.md", "inference-sizing.md", "failures-and-checkpoints.md", "cost.md"])
def test_pages_lead_with_the_answer_and_fold_the_whole_program(page):
    """What the calculator answers, the command and its output come before any code; programs over ~60 lines are
    shown whole only folded, after the few lines that matter (named snippet sections)."""
    text = (DOCS / "capacity" / page).read_text()
    first_fence = text.index("```")
    assert "<!-- calculator:" in text[:first_fence], f"{page}: no calculator output before the first code block"
    for include in re.findall(r'^```python([^\n]*)\n--8<-- "([^"]+)"', text, re.M):
        options, target = include
        path = SNIPPETS / target.partition(":")[0]
        if ":" not in target and len(path.read_text().splitlines()) > 60:
            assert "fold" in options.split(), f"{page}: {target} is over 60 lines and not folded"
    assert re.search(r'^```python[^\n]*\n--8<-- "[^"]+:[a-z-]+"', text, re.M), f"{page}: no excerpt of what matters"


def test_price_table_shows_every_date_and_source():
    markdown = expanded("cost.md")
    for entry in tomllib.loads(PRICES.read_text())["prices"].values():
        assert f"| {entry['as_of']}" in markdown and f"]({entry['source']})" in markdown


def test_a_failing_calculator_fails_the_build_naming_the_line():
    page = DOCS / "capacity" / "training-sizing.md"
    with pytest.raises(PluginError, match=r"docs/capacity/training-sizing.md:2: .*exited 2: error: --mfu = 0"):
        calculators.expand("# t\n<!-- calculator: capacity/training-sizing/01_gpu_days.py --mfu 0 -->", page, SNIPPETS)


def test_a_price_without_a_source_fails_the_build(tmp_path):
    (tmp_path / "prices.toml").write_text('[prices.x]\nlabel = "x"\nvalue = 1\nunit = "USD"\nas_of = 2025-01-01\n')
    with pytest.raises(PluginError, match="has no source"):
        calculators.price_tables(tmp_path / "prices.toml", "docs/capacity/cost.md:3")


def test_the_pages_examples_are_what_the_calculators_do(t, tmp_path, capsys, monkeypatch):
    """index.md shows a bad-input line, training-sizing.md a job.toml: both must hold for the code as it is."""
    command, shown = re.search(r"^\$ python \S+01_gpu_days.py (--mfu \S+)\n(error: .*)$",
                               (DOCS / "capacity/index.md").read_text(), re.M).groups()
    assert call(t, *command.split(), capsys=capsys)[2].strip() == shown
    job = re.search(r'```toml title="job.toml"\n--8<-- "(.*?)"', (DOCS / "capacity/training-sizing.md").read_text())[1]
    monkeypatch.chdir(tmp_path)
    code, out, err = call(t, "--config", SNIPPETS / job, "--days", "30", capsys=capsys)
    assert code == 0 and "GPUs to finish in 30 days" in out and "fits" in out, err


def test_the_mkdocs_hook_expands_calculator_markers():
    page = DOCS / "capacity" / "training-sizing.md"
    fake_page = SimpleNamespace(file=SimpleNamespace(abs_src_path=str(page), src_path="capacity/training-sizing.md"))
    config = SimpleNamespace(docs_dir=str(DOCS), config_file_path=str(ROOT / "mkdocs.yml"))
    shown = hooks.on_page_markdown("# t\n\n<!-- calculator: capacity/training-sizing/01_gpu_days.py -->\n",
                                          fake_page, config, None)
    assert "$ python snippets/capacity/training-sizing/01_gpu_days.py" in shown and "GPU-hours" in shown
