"""Section 7's calculators never crash, hang or lie: every bad input gets one line naming the flag (or file and
field) and what to accept, exit status 2; no input hangs (checks/bench/bench_calculators.py times the worst ones).
Hypothesis fuzzes every CLI over numbers, strings and files, calling main() in this process (a subprocess per
example would cost seconds)."""
import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from handbook import DOCS, SNIPPETS

CAPACITY = SNIPPETS / "capacity"
PROGRAMS = {
    "training": CAPACITY / "training-sizing/01_gpu_days.py",
    "serving": CAPACITY / "inference-sizing/01_serving_memory.py",
    "failures": CAPACITY / "failures-and-checkpoints/01_failure_plan.py",
    "simulation": CAPACITY / "failures-and-checkpoints/02_goodput_sim.py",
    "cost": CAPACITY / "cost/01_cost_per_useful_hour.py",
}
PRICES = CAPACITY / "cost/prices.toml"
HANG_S = 60  # a run still going after this hung (the per-input times are checks/bench/bench_calculators.py's)


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {name: load(path) for name, path in PROGRAMS.items()}


def run(name: str, *argv) -> tuple[int, str, str, float]:
    """main() in this process: (exit status, stdout, stderr, seconds). An escaping exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = MODULES[name].main([str(a) for a in argv])
        except SystemExit as exit_:  # --help, -h: argparse prints and exits 0
            code = exit_.code
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - start


def assert_one_line_error(result, *names):
    code, out, err, _ = result
    assert code == 2, (out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Files a user might wrongly pass: a directory, binary junk, non-UTF-8 text, JSON with nothing useful."""
    root = tmp_path_factory.mktemp("capacity-inputs")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.toml").write_bytes("params = 1 # caf\xe9\n".encode("latin-1"))
    (root / "empty.json").write_text("{}")
    (root / "list.json").write_text("[1, 2, 3]")
    (root / "no-datasheet.json").write_text(json.dumps({"artifacts": {"mfu.json": {"json": {"achieved_flops": 5e14}}}}))
    (root / "other-program.json").write_text(json.dumps({  # a recording kept while its snippet became another program
        "awaiting": {"gpus": 1, "another_program": True, "reason": "no GPU"},
        "artifacts": {"mfu.json": {"json": {"achieved_flops": 5.5e14, "datasheet_flops": 9.89e14}}}}))
    (root / "string-gpus.toml").write_text('gpus = "8"\n')
    (root / "typo.toml").write_text("parms = 7e9\n")
    (root / "broken.toml").write_text("params = = 3\n")
    (root / "subdir").mkdir()
    return root


# --- every class of bad input, with the words its one line must contain ------------------------------------------

BAD = [
    ("training", ["--mfu", "0"], ["--mfu = 0", "more than"]),
    ("training", ["--mfu", "40"], ["--mfu = 40", "percentage", "0.4"]),
    ("training", ["--mfu", "high"], ["--mfu", "not a number"]),
    ("training", ["--mfu", "inf"], ["--mfu = inf", "at most 1"]),
    ("training", ["--mfu", "nan"], ["--mfu = nan"]),
    ("training", ["--goodput", "1e400"], ["--goodput"]),
    ("training", ["--gpus", "-8"], ["--gpus = -8", "whole number"]),
    ("training", ["--gpus", "8.5"], ["--gpus = 8.5", "whole number"]),
    ("training", ["--gpus", "1000"], ["--gpus = 1000", "multiple", "--tp 8 × --pp 16"]),
    ("training", ["--peak-tflops", "9.89e14"], ["--peak-tflops", "looks like FLOP/s", "989"]),
    ("training", ["--gpu-mem-gb", "8e10"], ["--gpu-mem-gb", "looks like bytes", "80"]),
    ("training", ["--params", "70"], ["--params = 70", "billions", "70e9"]),
    ("training", ["--params", "7e9"], ["--params = 7e+09", "--layers", "--hidden"]),
    ("training", ["--tp", "3"], ["--tp = 3", "--heads 128"]),
    ("training", ["--pp", "200"], ["--pp = 200", "--layers 126"]),
    ("training", ["--days", "0"], ["--days = 0"]),
    ("training", ["--sharding", "zero4"], ["--sharding", "zero4"]),
    ("training", ["--from-recording", "nowhere.json"], ["--from-recording nowhere.json", "cannot read"]),
    ("training", ["--from-recording", "{subdir}"], ["--from-recording", "is a directory"]),
    ("training", ["--from-recording", "{binary.bin}"], ["--from-recording", "not UTF-8"]),
    ("training", ["--from-recording", "{list.json}"], ["--from-recording", "no achieved FLOP/s"]),
    ("training", ["--from-recording", "{no-datasheet.json}"], ["--from-recording", "datasheet"]),
    ("training", ["--from-recording", "{other-program.json}"], ["--from-recording", "re-recording", "--mfu"]),
    ("training", ["--config", "{subdir}"], ["--config", "is a directory"]),
    ("training", ["--config", "{latin1.toml}"], ["--config", "not UTF-8"]),
    ("training", ["--config", "{string-gpus.toml}"], ["gpus = '8'", "not a number"]),
    ("training", ["--config", "{typo.toml}"], ["unknown field 'parms'"]),
    ("training", ["--config", "{broken.toml}"], ["not valid TOML"]),
    ("training", ["--json", "{subdir}"], ["--json", "is a directory"]),
    ("training", ["--no-such-flag", "1"], ["unrecognized arguments: --no-such-flag"]),
    ("serving", ["--prompt-tokens", "-1"], ["--prompt-tokens = -1", "whole number"]),
    ("serving", ["--users", "1.5"], ["--users = 1.5", "whole number"]),
    ("serving", ["--usable-memory", "90"], ["--usable-memory = 90", "percentage", "0.9"]),
    ("serving", ["--hbm-tbps", "3350"], ["--hbm-tbps", "GB/s", "3.35"]),
    ("serving", ["--peak-tflops", "9.89e14"], ["--peak-tflops", "FLOP/s"]),
    ("serving", ["--gpu-mem-gb", "8e10"], ["--gpu-mem-gb", "bytes"]),
    ("serving", ["--weight-bytes", "16"], ["--weight-bytes = 16", "bits", "2"]),
    ("serving", ["--tp", "3"], ["--tp = 3", "1, 2, 4, 8", "64 heads"]),
    ("serving", ["--kv-heads", "7"], ["--kv-heads = 7", "--heads 64"]),
    ("serving", ["--gpus", "0"], ["--gpus = 0"]),
    ("serving", ["--config", "{subdir}"], ["--config", "is a directory"]),
    ("serving", ["--config", "{binary.bin}"], ["--config", "not UTF-8"]),
    ("failures", ["--fleet-days", "0"], ["--fleet-days = 0", "more than"]),
    ("failures", ["--fleet-interruptions", "0"], ["--fleet-interruptions = 0"]),
    ("failures", ["--spare-confidence", "1"], ["--spare-confidence = 1", "at most 0.999999"]),
    ("failures", ["--spare-confidence", "99"], ["--spare-confidence = 99", "percentage"]),
    ("failures", ["--job-gpus", "7.5"], ["--job-gpus = 7.5", "whole number"]),
    ("failures", ["--job-gpus", "1e9"], ["--job-gpus", "10,000,000"]),
    ("failures", ["--repair-hours", "90000"], ["--repair-hours = 90000", "nodes would be down"]),
    ("failures", ["--config", "{latin1.toml}"], ["--config", "not UTF-8"]),
    ("simulation", ["--checkpoint-minutes", "-5"], ["--checkpoint-minutes = -5"]),
    ("simulation", ["--mtbf-hours", "6", "0"], ["--mtbf-hours = 0"]),
    ("simulation", ["--runs", "2.5"], ["--runs = 2.5", "whole number"]),
    ("simulation", ["--runs", "100000"], ["--runs = 100000", "from 1 to 200"]),
    ("simulation", ["--work-hours", "inf"], ["--work-hours = inf"]),
    ("simulation", ["--mtbf-hours", *["1"] * 11], ["--mtbf-hours", "at most 10"]),
    ("simulation", ["--json", "{subdir}"], ["--json", "is a directory"]),
    ("cost", ["--utilization", "0"], ["--utilization = 0"]),
    ("cost", ["--utilization", "45"], ["--utilization = 45", "percentage", "0.45"]),
    ("cost", ["--capex-per-gpu", "-1"], ["--capex-per-gpu = -1"]),
    ("cost", ["--depreciation-years", "x"], ["--depreciation-years", "must be a number"]),
    ("cost", ["--prices", "missing.toml"], ["--prices missing.toml", "cannot read"]),
    ("cost", ["--prices", "{subdir}"], ["--prices", "is a directory"]),
    ("cost", ["--prices", "{binary.bin}"], ["--prices", "not UTF-8"]),
]


@pytest.mark.parametrize("name, argv, words", BAD, ids=[f"{b[0]}-{' '.join(b[1])[:30]}" for b in BAD])
def test_bad_input_gets_one_line_naming_it(files, name, argv, words, monkeypatch):
    monkeypatch.chdir(files)
    argv = [str(files / a[1:-1]) if a.startswith("{") else a for a in argv]
    assert_one_line_error(run(name, *argv), *words)


# --- the price file's schema ----------------------------------------------------------------------------------

TEXT = PRICES.read_text()
SCHEMA_BREAKS = {  # what to change in the real file -> words the one line must contain
    "as_of missing": (("as_of = 2024-12-31\n", ""), ["[prices.aws_capacity_block_p5] has no as_of"]),
    "a month for a date": (("as_of = 2024-12-31", 'as_of = "2024-12"'), ["as_of = '2024-12'", "YYYY-MM-DD"]),
    "a date in the future": (("as_of = 2024-12-31", "as_of = 2999-01-01"), ["as_of = 2999-01-01", "today"]),
    "zero GPUs": (("gpus = 8\nsource = \"https://www.nextplatform", "gpus = 0\nsource = \"https://www.nextplatform"),
                  ["[prices.aws_p5_on_demand_launch] gpus = 0", "whole number"]),
    "GPUs as text": (("gpus = 8\nsource = \"https://aws", 'gpus = "8"\nsource = "https://aws'),
                     ["[prices.aws_capacity_block_p5] gpus = '8'"]),
    "a percentage for a fraction": (("value = 0.45", "value = 45"),
                                    ["[prices.aws_p5_price_cut] value = 45", "percentage", "0.45"]),
    "watts for kilowatts": (("value = 0.70\nunit = \"kW per GPU\"", "value = 700\nunit = \"kW per GPU\""),
                            ["[prices.gpu_power] value = 700", "watts", "0.7"]),
    "cents for dollars": (("value = 0.0806", "value = 8.06"), ["[prices.electricity] value = 8.06", "cents"]),
    "a wrong unit": (('unit = "USD per kW-month"', 'unit = "USD per kW-year"'), ["unit = 'USD per kW-year'"]),
    "a source that is no URL": (('source = "https://encoradvisors.com/data-center-colocation-pricing/"',
                                 'source = "a colleague"'), ["source = 'a colleague'", "URL"]),
    "a number as text": (("value = 1.58", 'value = "1.58"'), ["[prices.pue] value = '1.58'", "a number"]),
    "an unknown field": (("value = 1.58", "value = 1.58\nvalu = 1.6"), ["unknown field 'valu'"]),
    "a missing price": (("[prices.pue]", "[prices.puee]"), ["no [prices.pue]"]),
    "a missing section": (("[assumptions.capex_per_gpu]", "[other.capex_per_gpu]"), ["unknown table [other]"]),
    "no assumptions at all": ((TEXT[TEXT.index("\n[assumptions."):], "\n"), ["no [assumptions] section"]),
}


@pytest.mark.parametrize("what", SCHEMA_BREAKS)
def test_a_price_file_that_breaks_the_schema_is_refused(tmp_path, what):
    (old, new), words = SCHEMA_BREAKS[what]
    assert old in TEXT, what
    bad = tmp_path / "prices.toml"
    bad.write_text(TEXT.replace(old, new, 1))
    assert_one_line_error(run("cost", "--prices", bad), str(bad), *words)


def test_the_cost_pages_example_is_what_the_calculator_prints(tmp_path, monkeypatch):
    page = (DOCS / "capacity/cost.md").read_text()
    command, shown = re.search(r"^\$ python \S+01_cost_per_useful_hour.py (--prices \S+)\n(error: .*)$", page, re.M).groups()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-prices.toml").write_text(TEXT.replace("value = 0.45", "value = 45", 1))
    assert run("cost", *command.split())[2].strip() == shown


# --- run time: no input hangs ---------------------------------------------------------------------------------

# Cases that used to hang: the Poisson quantile for a large fleet (exp underflow), the goodput simulation for a
# three-minute MTBF (0.05 h: failures were retried one by one), here with the most work and runs accepted.
WORST = [("failures", ["--job-gpus", "10000000", "--gpus-per-node", "1", "--repair-hours", "400"]),
         ("simulation", ["--work-hours", "1e7", "--runs", "200", "--mtbf-hours", "0.0002", "0.05", "0.1", "0.3", "1", "3",
                        "10", "100", "1e4", "1e6"]),
         ("serving", ["--users", "100000000", "--layers", "1000", "--params", "1e14", "--prompt-tokens", "10000000",
                      "--heads", "10000", "--kv-heads", "10000", "--head-dim", "10000"])]


@pytest.mark.timeout(HANG_S)
def test_the_largest_inputs_finish():
    for name, argv in WORST:
        code, out, err, _ = run(name, *argv)
        assert code == 0 and out, (name, argv, code, err)


# --- fuzzing ----------------------------------------------------------------------------------------------------

def flags(name):
    """The program's own flags, from its parser (so new flags are fuzzed too), plus near-misses."""
    module = MODULES[name]
    if name == "cost":
        parser_flags = ["--prices", "--json", *("--" + n.replace("_", "-") for n in module.ASSUMPTION_SCHEMA)]
    elif name == "simulation":
        parser_flags = ["--mtbf-hours", "--checkpoint-minutes", "--restart-minutes", "--json"]
    else:
        parser_flags = ["--" + n.replace("_", "-") for n in module.FIELDS] + ["--config", "--json"]
        parser_flags += ["--" + n for n in getattr(module, "CHOICES", {})]
        parser_flags += ["--from-recording"] if name == "training" else []
    return parser_flags + ["--no-such", "-x", "--mf", "--help"]


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10 ** 30, 10 ** 30).map(str),
    st.floats(min_value=1e-6, max_value=1e6).map(lambda x: f"{x:g}"),
    st.sampled_from(["0", "-0", "1e999", "-1e999", "nan", "1_000", "0x10", "١٢", " 8 ", "", "8.", ".5", "1e-400",
                     "5e-324", "9" * 400, "1/2", "True", "None", "45%", "8e10", "9.89e14", "3350"]))
TEXTS = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
TOML_VALUES = st.one_of(NUMBERS.filter(lambda s: re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", s or "x") is not None),
                        st.sampled_from(['"8"', "true", "[1, 2]", "{a = 1}", "1979-05-27", "nan", "inf", "-inf", "= =",
                                         '"ddp"', '"zero3"', '"none"', "1e400", "0", "-1"]))


@st.composite
def config_files(draw, name):
    module = MODULES[name]
    names = list(getattr(module, "FIELDS", {})) + list(getattr(module, "CHOICES", {})) + ["typo", "sequence_parallel"]
    lines = [f"{draw(st.sampled_from(names))} = {draw(TOML_VALUES)}" for _ in range(draw(st.integers(0, 5)))]
    return "\n".join(lines) + "\n"


@st.composite
def recordings(draw):
    leaf = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(-10, 10 ** 16), TEXTS)
    junk = st.recursive(leaf, lambda children: st.one_of(st.lists(children, max_size=3),
                                                        st.dictionaries(TEXTS, children, max_size=3)), max_leaves=8)
    mfu = st.fixed_dictionaries({}, optional={"achieved_flops": leaf, "datasheet_flops": leaf, "device": leaf})
    stage = st.fixed_dictionaries({}, optional={"achieved_tflops": leaf, "params": leaf})
    lab2 = st.fixed_dictionaries({"stages": st.lists(st.one_of(stage, junk), max_size=3)},
                                 optional={"datasheet": st.one_of(junk, st.fixed_dictionaries({"tflops": leaf}))})
    artifacts = st.dictionaries(st.sampled_from(["mfu.json", "lab2_results.json", "x"]),
                                st.fixed_dictionaries({"json": st.one_of(mfu, lab2, junk)}), max_size=2)
    return json.dumps(draw(st.one_of(junk, st.fixed_dictionaries({"artifacts": artifacts}))))


@st.composite
def price_files(draw):
    """The real price file with one to three lines changed: a value, a field's name, or a line gone."""
    lines = TEXT.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["value", "drop", "rename"]))
        if kind == "drop":
            lines[i] = ""
        elif "=" in lines[i] and kind == "value":
            lines[i] = lines[i].split("=")[0] + "= " + draw(TOML_VALUES)
        elif "=" in lines[i]:
            lines[i] = draw(st.sampled_from(["valu", "gpu", "as of", "source2"])) + " =" + lines[i].split("=", 1)[1]
    return "\n".join(lines) + "\n"


def arguments(name):
    value = st.one_of(NUMBERS, TEXTS, st.sampled_from(["{subdir}", "{binary.bin}", "{latin1.toml}", "{list.json}",
                                                       "{config}", "{recording}", "{prices}", "nowhere.toml"]))
    pairs = st.lists(st.tuples(st.sampled_from(flags(name)), value), max_size=4)
    return pairs.map(lambda ps: [w for pair in ps for w in pair])


def fuzz(name, files, argv, config="", recording="", prices=TEXT):
    (files / "config.toml").write_text(config)
    (files / "recording.json").write_text(recording)
    (files / "prices-fuzz.toml").write_text(prices)
    named = {"config": "config.toml", "recording": "recording.json", "prices": "prices-fuzz.toml"}
    argv = [str(files / named.get(a[1:-1], a[1:-1])) if a.startswith("{") and a.endswith("}") else a for a in argv]
    if "--json" in argv:  # write only inside the scratch folder
        argv[argv.index("--json") + 1:argv.index("--json") + 2] = [str(files / "out.json")]
    if name == "simulation":  # keep each example cheap; the largest runs are timed above
        argv = ["--work-hours", "2", "--runs", "2"] + [a for a in argv if a not in ("--work-hours", "--runs")]
    code, out, err, _ = run(name, *argv)
    assert code in (0, 1, 2), (argv, code)
    if code == 0:
        assert err == "" and out, (argv, err)
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
        assert code == 2 or (name == "serving" and "exceeds the bound" in err), (argv, err)


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@pytest.mark.parametrize("name", ["training", "serving", "failures", "simulation"])
@FUZZ
@given(data=st.data())
def test_fuzzed_flags_and_config_files(files, monkeypatch, name, data):
    monkeypatch.chdir(files)
    fuzz(name, files, data.draw(arguments(name)),
         config=data.draw(config_files(name)) if name != "simulation" else "",
         recording=data.draw(recordings()) if name == "training" else "")


@FUZZ
@given(argv=arguments("cost"), prices=price_files())
def test_fuzzed_cost_flags_and_price_files(files, monkeypatch, argv, prices):
    monkeypatch.chdir(files)
    fuzz("cost", files, argv + ["--prices", "{prices}"], prices=prices)


def test_every_program_answers_help_and_a_process_exits_2(files):
    """--help works for every program; one process proves the in-process exit statuses above are the CLI's."""
    for name in PROGRAMS:
        code, out, err, _ = run(name, "--help")
        assert code == 0 and "usage:" in out, (name, err)
    bad = subprocess.run([sys.executable, str(PROGRAMS["training"]), "--gpus", "8.5"], capture_output=True, text=True,
                         cwd=files)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
