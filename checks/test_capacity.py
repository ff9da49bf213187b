"""Section 7's calculators reproduce published cases, refuse bad inputs in one line, and render on their pages."""
import base64
import importlib.util
import json
import math
import re
import subprocess
import sys
import tomllib
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError

from handbook import DOCS, ROOT, SNIPPETS, calculators, mkdocs_hooks

CAPACITY = SNIPPETS / "capacity"
TRAINING = CAPACITY / "training-sizing/01_gpu_days.py"
INFERENCE = CAPACITY / "inference-sizing/01_serving_memory.py"
FAILURES = CAPACITY / "failures-and-checkpoints/01_failure_plan.py"
SIMULATION = CAPACITY / "failures-and-checkpoints/02_goodput_sim.py"
COST = CAPACITY / "cost/01_cost_per_useful_hour.py"
PRICES = CAPACITY / "cost/prices.toml"
MFU_RECORDING = SNIPPETS / "optimization/metrics/01_mfu.rec.json"

# Published figures, each from the source its page cites.
LLAMA3_FLOPS = 3.8e25            # Llama 3 paper (arXiv 2407.21783), section 3
LLAMA3_MFU = (0.38, 0.43)        # same paper, Table 4
MODEL_CARD_GPU_HOURS = 30.84e6   # Llama 3.1 model card, 405B row
LLAMA3_UNEXPECTED, LLAMA3_DAYS, LLAMA3_GPUS = 419, 54, 16384  # paper, section 3.3.4
KV_BYTES_PER_TOKEN_70B = 327_680  # 2 · 80 layers · 8 KV heads · 128 head_dim · 2 bytes (the model's config.json)
# Spheron's KV cache guide, Llama 3.1 70B in BF16: (tokens per sequence, sequences) -> GB, as rounded there
KV_TABLE_70B = [(4096, 1, 1.3), (16384, 1, 5.4), (32768, 1, 10.7), (131072, 1, 42.9), (131072, 8, 343)]
DALY_CASES = [(24 * 60, 117), (6 * 60, 57), (15, 9.1)]  # Daly 2006, Figs. 3-5: M (min) -> τ_opt (min), δ = 5 min


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(path, *args, cwd=None):
    return subprocess.run([sys.executable, str(path), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def defaults(module) -> dict:
    return {name: default for name, (default, _, _) in module.FIELDS.items()}


# --- training sizing -------------------------------------------------------------------------------------------

def test_training_flops_match_the_llama3_paper():
    t = load(TRAINING)
    assert t.size(defaults(t))["training_flops"] == pytest.approx(LLAMA3_FLOPS, rel=0.01)


def test_training_gpu_hours_match_the_model_card_within_15_percent():
    t = load(TRAINING)
    v = defaults(t) | {"mfu": 0.40, "goodput": 0.90}
    assert t.size(v)["gpu_hours"] == pytest.approx(MODEL_CARD_GPU_HOURS, rel=0.15)


def test_model_card_lies_inside_the_range_of_published_mfu_and_goodput():
    t = load(TRAINING)
    fastest = t.size(defaults(t) | {"mfu": LLAMA3_MFU[1], "goodput": 1.0})["gpu_hours"]
    slowest = t.size(defaults(t) | {"mfu": LLAMA3_MFU[0], "goodput": 0.85})["gpu_hours"]
    assert fastest < MODEL_CARD_GPU_HOURS < slowest


def test_training_days_agree_with_the_hand_computation_and_invert():
    t = load(TRAINING)
    v = defaults(t) | {"mfu": 0.40, "goodput": 1.0}
    days = t.size(v)["days"]
    assert days == pytest.approx(LLAMA3_FLOPS / (LLAMA3_GPUS * 989e12 * 0.40) / 86400, rel=0.01)  # about 68
    back = t.size(v | {"days": days})
    assert abs(back["gpus"] - LLAMA3_GPUS) <= 1  # rounded up to whole GPUs


def test_from_recording_uses_our_measured_ceiling_and_mfu(tmp_path):
    """The recording's mfu × ceiling must come back as its separately stored achieved FLOP/s."""
    mfu = json.loads(MFU_RECORDING.read_text())["artifacts"]["mfu.json"]["json"]
    result = run(TRAINING, "--from-recording", MFU_RECORDING, "--goodput", "1", "--json", tmp_path / "out.json")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["results"]["sustained_tflops_per_gpu"] * 1e12 == pytest.approx(mfu["achieved_flops"], rel=1e-3)


# --- inference sizing ------------------------------------------------------------------------------------------

def test_kv_cache_per_token_matches_llama_70b():
    i = load(INFERENCE)
    assert i.size(defaults(i))["kv_bytes_per_token"] == KV_BYTES_PER_TOKEN_70B


@pytest.mark.parametrize("tokens, sequences, published_gb", KV_TABLE_70B)
def test_kv_cache_matches_the_published_table(tokens, sequences, published_gb):
    i = load(INFERENCE)
    r = i.size(defaults(i) | {"context_tokens": tokens, "concurrency": sequences})
    digits = len(str(published_gb).partition(".")[2])
    # half a unit of the last published digit, or 0.5 % (343 is 8 × the rounded 42.9, not 8 × 42.95)
    assert r["kv_gb_per_seq"] * sequences == pytest.approx(published_gb, abs=0.5 * 10 ** -digits, rel=0.005)


def test_decode_bound_at_batch_one_is_bytes_over_bandwidth():
    i = load(INFERENCE)
    r = i.size(defaults(i))
    gpus = math.ceil((70.6e9 * 2 + 327_680 * 131_072) / (80e9 * 0.9))
    assert r["gpus"] == gpus == 3
    step = (70.6e9 * 2 + 327_680 * 131_072) / (gpus * 3.35e12)
    assert r["decode"][0]["batch"] == 1 and r["decode"][0]["step_ms"] == pytest.approx(step * 1e3)


def test_bigger_batches_trade_latency_for_throughput():
    i = load(INFERENCE)
    d = i.size(defaults(i) | {"context_tokens": 8192, "concurrency": 48, "gpus": 4})["decode"]
    assert [p["tokens_per_s"] for p in d] == sorted(p["tokens_per_s"] for p in d)
    assert [p["tokens_per_s_per_seq"] for p in d] == sorted((p["tokens_per_s_per_seq"] for p in d), reverse=True)


# --- failures, spares and checkpoints --------------------------------------------------------------------------

def test_interruption_rate_and_job_mtbf_match_llama3():
    f = load(FAILURES)
    r = f.plan(defaults(f))
    assert f"{r['per_gpu_hour']:.1e}" == "2.0e-05"
    assert 2.5 < r["job_mtbf_hours"] < 3.5  # "one failure every three hours" (DataCenterDynamics)
    assert r["expected_failures"] == pytest.approx(LLAMA3_UNEXPECTED)


@pytest.mark.parametrize("mtbf, published", DALY_CASES)
def test_daly_interval_reproduces_his_published_optima(mtbf, published):
    assert load(FAILURES).daly(5, mtbf) == pytest.approx(published, rel=0.01)


def test_spares_cover_the_asked_confidence_and_no_more():
    f = load(FAILURES)
    r = f.plan(defaults(f))
    cdf = lambda k: sum(math.exp(-r["nodes_down_mean"]) * r["nodes_down_mean"] ** i / math.factorial(i) for i in range(k + 1))
    assert cdf(r["spare_nodes"]) >= 0.99 > cdf(r["spare_nodes"] - 1)


def test_simulated_goodput_agrees_with_dalys_model():
    s = load(SIMULATION)
    results = s.sweep(s.inputs([]))
    for mtbf, r in results.items():
        for p in r["points"]:
            # 20 seeded runs a point: the long intervals, few segments retried many times, are the noisiest
            assert p["goodput_sim"] == pytest.approx(p["goodput_model"], rel=0.025), (mtbf, p)
        assert r["model_goodput_at_daly"] >= r["best_sim_goodput"] - 0.005, mtbf


# --- cost ------------------------------------------------------------------------------------------------------

def test_every_price_has_a_source_url_and_a_date():
    prices = tomllib.loads(PRICES.read_text())["prices"]
    for name, entry in prices.items():
        assert re.fullmatch(r"https://\S+", entry.get("source", "")), f"{name}: no source URL"
        assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", entry.get("as_of", "")), f"{name}: no as_of date"


def test_on_demand_is_the_launch_price_less_the_2025_cut():
    c = load(COST)
    p, a = c.load_prices(PRICES)
    a = {name: entry["value"] for name, entry in a.items()}
    assert c.options(p, a)[0]["paid_per_gpu_hour"] == pytest.approx(98.32 / 8 * (1 - 0.45))


def test_break_even_is_where_owning_and_renting_cost_the_same_per_useful_hour():
    c = load(COST)
    p, a = c.load_prices(PRICES)
    a = {name: entry["value"] for name, entry in a.items()}
    owned = sum(c.on_prem_hourly(p, a).values())
    for rented in (r for r in c.options(p, a) if not r["pays_when_idle"]):
        u = owned * rented["useful_share"] / (rented["paid_per_gpu_hour"] * a["goodput"])
        if u <= 1:
            at_u = {r["option"]: r for r in c.options(p, a | {"utilization": u})}
            assert at_u["on-prem, owned"]["per_useful_gpu_hour"] == pytest.approx(rented["per_useful_gpu_hour"])
    result = run(COST)
    assert result.returncode == 0 and re.search(r"breaks even with neocloud on-demand at utilization \d+%", result.stdout)


def test_a_price_without_its_date_is_refused(tmp_path):
    bad = tmp_path / "prices.toml"
    bad.write_text(PRICES.read_text().replace('as_of = "2024-12"\n', "", 1))
    result = run(COST, "--prices", bad)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {bad}: [prices.aws_capacity_block_p5] has no as_of; add as_of = \"...\""


# --- bad inputs: one line, exit 2, never a traceback -----------------------------------------------------------

BAD_INPUTS = [
    (TRAINING, ["--mfu", "0"], "--mfu = 0"),
    (TRAINING, ["--gpus", "-8"], "--gpus = -8"),
    (TRAINING, ["--mfu", "high"], "--mfu"),
    (TRAINING, ["--from-recording", "nowhere.json"], "nowhere.json"),
    (INFERENCE, ["--context-tokens", "-1"], "--context-tokens = -1"),
    (INFERENCE, ["--usable-memory", "1.5"], "--usable-memory = 1.5"),
    (FAILURES, ["--fleet-days", "0"], "--fleet-days = 0"),
    (FAILURES, ["--spare-confidence", "1"], "--spare-confidence = 1"),
    (SIMULATION, ["--checkpoint-minutes", "-5"], "--checkpoint-minutes = -5"),
    (SIMULATION, ["--mtbf-hours", "6", "0"], "--mtbf-hours 0"),
    (COST, ["--utilization", "0"], "--utilization = 0"),
    (COST, ["--capex-per-gpu", "-1"], "--capex-per-gpu = -1"),
    (COST, ["--prices", "missing.toml"], "missing.toml: no such file"),
]


def assert_one_line_error(result, names):
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], result.stderr


@pytest.mark.parametrize("program, args, names", BAD_INPUTS, ids=lambda x: x.name if hasattr(x, "name") else None)
def test_bad_input_gets_one_line(program, args, names, tmp_path):
    assert_one_line_error(run(program, *args, cwd=tmp_path), names)


@pytest.mark.parametrize("program", [TRAINING, INFERENCE, FAILURES], ids=lambda p: p.name)
def test_config_file_problems_get_one_line(program, tmp_path):
    module = load(program)
    complete = {name: default for name, default in defaults(module).items() if default is not None}
    first = next(iter(complete))
    cases = {"missing": {k: v for k, v in complete.items() if k != first},
             "unknown": complete | {"typo_field": 1},
             "not a number": complete | {first: "many"}}
    for what, fields in cases.items():
        config = tmp_path / f"{what.replace(' ', '_')}.toml"
        config.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in fields.items()))
        assert_one_line_error(run(program, "--config", config), f"{config}: ")
    broken = tmp_path / "broken.toml"
    broken.write_text("params = = 3\n")
    assert_one_line_error(run(program, "--config", broken), "not valid TOML")
    ok = tmp_path / "ok.toml"
    ok.write_text("".join(f"{k} = {v!r}\n" for k, v in complete.items()))
    assert run(program, "--config", ok).returncode == 0


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


def test_price_table_shows_every_date_and_source():
    markdown = expanded("cost.md")
    for entry in tomllib.loads(PRICES.read_text())["prices"].values():
        assert f"| {entry['as_of']} |" in markdown and f"]({entry['source']})" in markdown


def test_a_failing_calculator_fails_the_build_naming_the_line(tmp_path):
    page = DOCS / "capacity" / "training-sizing.md"
    with pytest.raises(PluginError, match=r"docs/capacity/training-sizing.md:2: .*exited 2: error: --mfu = 0"):
        calculators.expand("# t\n<!-- calculator: capacity/training-sizing/01_gpu_days.py --mfu 0 -->", page, SNIPPETS)


def test_a_price_without_a_source_fails_the_build(tmp_path):
    (tmp_path / "prices.toml").write_text('[prices.x]\nlabel = "x"\nvalue = 1\nunit = "USD"\nas_of = "2025-01"\n')
    with pytest.raises(PluginError, match="has no source"):
        calculators.price_tables(tmp_path / "prices.toml", "docs/capacity/cost.md:3")


def test_the_pages_examples_are_what_the_calculators_do(tmp_path):
    """index.md shows a bad-input line, training-sizing.md a job.toml: both must hold for the code as it is."""
    shown = re.search(r"^(error: --mfu = 0.*)$", (DOCS / "capacity/index.md").read_text(), re.M)[1]
    assert run(TRAINING, "--mfu", "0").stderr.strip() == shown
    job = re.search(r'```toml title="job.toml"\n(.*?)```', (DOCS / "capacity/training-sizing.md").read_text(), re.S)[1]
    (tmp_path / "job.toml").write_text(job)
    result = run(TRAINING, "--config", "job.toml", "--days", "30", cwd=tmp_path)
    assert result.returncode == 0 and "GPUs to finish in 30 days" in result.stdout, result.stderr


def test_the_mkdocs_hook_expands_calculator_markers():
    page = DOCS / "capacity" / "training-sizing.md"
    fake_page = SimpleNamespace(file=SimpleNamespace(abs_src_path=str(page), src_path="capacity/training-sizing.md"))
    config = SimpleNamespace(docs_dir=str(DOCS), config_file_path=str(ROOT / "mkdocs.yml"))
    shown = mkdocs_hooks.on_page_markdown("# t\n\n<!-- calculator: capacity/training-sizing/01_gpu_days.py -->\n",
                                          fake_page, config, None)
    assert "$ python snippets/capacity/training-sizing/01_gpu_days.py" in shown and "GPU-hours" in shown
