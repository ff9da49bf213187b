"""GPU simulator: a stand-in for nvidia-ml-py's `pynvml` that plays a scenario, so NVML code runs without a GPU.

    from handbook import gpusim
    with gpusim.activate("thermal-throttle"):   # sys.modules["pynvml"] is the simulator until the block ends
        import pynvml
        pynvml.nvmlInit()

    python -m handbook.gpusim list                              # scenarios, one line each
    python -m handbook.gpusim run busy-training -- python exporter.py --port 9445

A scenario is a TOML file in scenarios/ (see scenario.py for the format) or a path to one. Its values are
functions of the seconds since the program's first nvmlInit: `SCENARIO@SECONDS` (or HANDBOOK_GPUSIM_AT) starts
that many seconds in, HANDBOOK_GPUSIM_SPEED=N plays N times faster than the wall clock.
It never pretends to be real: every device name ends in "(simulated)" and activation prints a banner on stderr.
"""
import contextlib
import math
import os
import re
import sys

from handbook.gpusim import live, real
from handbook.gpusim.real import SHIM_DIR
from handbook.gpusim.scenario import SCENARIO_DIR, ScenarioError, available, load, shown

ENV_SCENARIO = "HANDBOOK_GPUSIM"
ENV_SPEED = "HANDBOOK_GPUSIM_SPEED"
ENV_AT = "HANDBOOK_GPUSIM_AT"
SPEC = re.compile(r"^(?P<name>[^@]+?)(?:@(?P<at>[^@]*))?$")

__all__ = ["activate", "simulated_module", "scenarios", "ScenarioError", "SCENARIO_DIR"]


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """`OPTIONS -- COMMAND ...` -> (OPTIONS, COMMAND): the command is passed on untouched, never parsed."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def run_tool(main) -> None:
    """Exit with what a stand-in tool's `main()` returns; a reader that closed the pipe (`| head`) ends it quietly,
    as it does a real tool."""
    try:
        sys.exit(main())
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


def _number(text: str, what: str, minimum_exclusive: float | None = None) -> float:
    try:
        value = float(text.removesuffix("s"))
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value) or value < 0 or (minimum_exclusive is not None and value <= minimum_exclusive):
        raise ScenarioError(f"{what}={text!r}: use a number of seconds >= 0" if minimum_exclusive is None
                            else f"{what}={text!r}: use a number > 0, e.g. 10")
    return value


def split_spec(spec: str) -> tuple[str, float | None]:
    """'thermal-throttle@240' -> ('thermal-throttle', 240.0); 'healthy-idle' -> ('healthy-idle', None)."""
    m = SPEC.match(spec.strip())
    if not m:
        raise ScenarioError(f"GPU scenario {spec!r}: write NAME or NAME@SECONDS, e.g. thermal-throttle@240")
    at = m["at"]
    return m["name"], None if at is None else _number(at, f"{m['name']}@")


def simulated_module(scenario: str, *, speed: float | None = None, at: float | None = None, banner: bool = True):
    """A new `pynvml` module object playing `scenario` (nothing is installed in sys.modules)."""
    from handbook.gpusim import nvml

    name, spec_at = split_spec(scenario)
    if speed is None:
        speed = _number(os.environ[ENV_SPEED], ENV_SPEED, 0) if os.environ.get(ENV_SPEED) else 1.0
    if at is None:
        at = spec_at if spec_at is not None else (_number(os.environ[ENV_AT], ENV_AT) if os.environ.get(ENV_AT) else 0.0)
    if speed <= 0 or at < 0:
        raise ScenarioError(f"speed={speed}, at={at}: speed must be > 0 and at >= 0")
    played = load(name)
    module = nvml.build(played, speed, at)
    follow_from = live.epoch() if spec_at is None else None  # HANDBOOK_GPUSIM_FOLLOW: a file written as it plays
    if follow_from is not None:
        live.follow(module, played.path, follow_from)
    if banner:
        details = "" if (speed, at) == (1.0, 0.0) else f", starting {at:g}s in, {speed:g}x speed"
        gpus = f"{len(played.gpus)} GPU(s)" if not played.init_error else f"nvmlInit fails: {played.init_error}"
        print(f"gpusim: SIMULATED NVML playing {played.name!r} ({gpus}{details}; {shown(played.path)}). "
              "No real GPU is read; device names end in '(simulated)'.", file=sys.stderr)
    return module


@contextlib.contextmanager
def activate(scenario: str, *, speed: float | None = None, at: float | None = None):
    """Make `import pynvml` give the simulator playing `scenario` inside the block; restore what was there after."""
    module = simulated_module(scenario, speed=speed, at=at)  # a bad scenario fails before anything changes
    missing = object()
    previous = sys.modules.get("pynvml", missing)
    saved_env = dict(os.environ)
    sys.modules["pynvml"] = module
    os.environ.update(child_env(scenario, speed))  # Python programs the block starts get the simulator too
    try:
        yield module
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        if previous is missing:
            sys.modules.pop("pynvml", None)
        else:
            sys.modules["pynvml"] = previous


def child_env(scenario: str, speed: float | None = None, base=None) -> dict:
    """The environment under which a Python program imports the simulator as `pynvml` (see shim/pynvml.py)."""
    env = dict(os.environ if base is None else base)
    env[ENV_SCENARIO] = scenario
    if speed is not None:
        env[ENV_SPEED] = str(speed)
    env.pop(ENV_AT, None)  # NAME@SECONDS in the scenario carries the start offset
    env.pop(live.ENV_FOLLOW, None)  # a scenario of its own is not the fleet node's file (see live.py)
    package_root = SHIM_DIR.parent.parent.parent  # the directory holding the `handbook` package
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SHIM_DIR), str(package_root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def scenarios() -> list[tuple[str, str]]:
    """(name, description) of every scenario file; a malformed file raises ScenarioError naming it."""
    return [(name, load(name).description) for name in available()]


def module_for_shim():
    """What `import pynvml` gives a program started by `python -m handbook.gpusim run` (see shim/pynvml.py)."""
    spec = os.environ.get(ENV_SCENARIO)
    if not spec:  # the shim directory is on PYTHONPATH without a scenario: behave as the real module
        return real.real_pynvml()
    try:
        return simulated_module(spec)
    except ScenarioError as err:
        raise ImportError(f"gpusim: {err}") from None
