"""Lab 1's environment check (snippets/labs/lab1/01_validate_environment.py) does not certify a node that cannot
run CUDA: it creates a CUDA context through libcuda, checks Fabric Manager where GPUs sit on NVSwitches (NVML's
fabric state, the PCI bus, the daemon), reads containerd's nvidia-ctk >= 1.18 drop-in, and wants the nvidia
runtime as the default or a RuntimeClass. Units with fakes for libcuda and the file system; the whole program on
the simulator's HGX scenarios."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / "snippets/labs/lab1/01_validate_environment.py"


@pytest.fixture
def lab(monkeypatch):
    spec = importlib.util.spec_from_file_location("validate_environment", VALIDATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.RESULTS.clear()
    return module


def lines(module) -> dict[str, tuple[str, str]]:
    return {layer: (status, detail) for status, layer, detail in module.RESULTS}


class FakeCuda:
    """libcuda's five calls the check makes; `fail` maps a call name to the CUresult it returns."""

    def __init__(self, devices=8, fail=None):
        self.devices, self.fail, self.released = devices, fail or {}, False

    def cuInit(self, flags):
        return self.fail.get("cuInit", 0)

    def cuDeviceGetCount(self, count):
        count._obj.value = self.devices
        return 0

    def cuDeviceGet(self, device, ordinal):
        device._obj.value = ordinal
        return 0

    def cuDevicePrimaryCtxRetain(self, context, device):
        return self.fail.get("cuDevicePrimaryCtxRetain", 0)

    def cuDevicePrimaryCtxRelease(self, device):
        self.released = True
        return 0

    def cuGetErrorString(self, code, text):
        text._obj.value = {802: b"system not yet initialized", 100: b"no CUDA-capable device is detected"}.get(code, b"x")
        return 0


def test_a_context_is_created_and_released(lab):
    fake = FakeCuda()
    lab.check_cuda(load=lambda name: fake)
    assert lines(lab)["cuda context"] == ("OK", "created on device 0 of 8 visible") and fake.released


def test_fabric_manager_down_fails_cuda_init_with_802_and_says_why(lab):
    lab.check_cuda(load=lambda name: FakeCuda(fail={"cuInit": 802}))
    status, detail = lines(lab)["cuda context"]
    assert status == "MISSING" and "802" in detail and "system not yet initialized" in detail
    assert "nvidia-fabricmanager" in detail


@pytest.mark.parametrize("fake, words", [(FakeCuda(devices=0), "no CUDA device"),
                                         (FakeCuda(fail={"cuDevicePrimaryCtxRetain": 999}), "cannot create a context")])
def test_no_device_or_no_context_is_missing(lab, fake, words):
    lab.check_cuda(load=lambda name: fake)
    status, detail = lines(lab)["cuda context"]
    assert status == "MISSING" and words in detail


def test_no_libcuda_is_missing(lab):
    def absent(name):
        raise OSError(f"{name}: cannot open shared object file")
    lab.check_cuda(load=absent)
    assert lines(lab)["cuda context"][0] == "MISSING"


@pytest.mark.parametrize("states, switches, fm, status", [
    ([2] * 8, 4, False, "MISSING"),     # H100/H200 HGX, FM down: fabric in progress
    ([1] * 8, 4, None, "MISSING"),      # not started
    ([3] * 8, 4, True, "OK"),
    ([3] * 8, 4, False, "WARN"),        # set up, but nobody handles NVLink errors now
    ([None] * 8, 6, False, "MISSING"),  # A100 HGX: no fabric state in NVML, NVSwitches on the bus, no daemon
    ([None] * 8, 6, True, "OK"),
    ([0], 0, False, "INFO"),            # a PCIe card: not needed
])
def test_fabric_manager_judgement(lab, states, switches, fm, status):
    lab.check_fabric(states, switches, fm)
    assert lines(lab)["fabric manager"][0] == status, lines(lab)


def test_nvswitches_are_counted_on_the_pci_bus(lab, tmp_path):
    for i, cls in enumerate(["0x068000", "0x068000", "0x030200", "0x060400"]):
        dev = tmp_path / f"0000:{i:02x}:00.0"
        dev.mkdir()
        (dev / "vendor").write_text("0x10de\n" if i < 3 else "0x8086\n")
        (dev / "class").write_text(cls + "\n")
    lab.SYS_PCI = tmp_path
    assert lab.nvswitch_count() == 2


def containerd(tmp_path, main: str | None, dropin: str | None) -> Path:
    root = tmp_path / "containerd"
    (root / "conf.d").mkdir(parents=True)
    if main is not None:
        (root / "config.toml").write_text(main)
    if dropin is not None:
        (root / "conf.d/99-nvidia.toml").write_text(dropin)
    return root


RUNTIME = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
DEFAULT = '[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "nvidia"\n'
IMPORTS = 'version = 2\nimports = ["/etc/containerd/conf.d/*.toml"]\n'


@pytest.mark.parametrize("main, dropin, status, words", [
    (IMPORTS, DEFAULT + RUNTIME, "OK", "99-nvidia.toml"),           # toolkit >= 1.18 with --set-as-default
    (IMPORTS, RUNTIME, "WARN", "runtimeClassName: nvidia"),           # without --set-as-default
    ("version = 2\n", DEFAULT + RUNTIME, "WARN", "not imported"),     # a drop-in containerd never reads
    ("version = 2\n" + DEFAULT + RUNTIME, None, "OK", "config.toml"),  # older toolkits edit config.toml
    ("version = 2\n", None, "MISSING", "--set-as-default"),
])
def test_containerd_drop_in_and_default_runtime(lab, tmp_path, main, dropin, status, words):
    lab.CONTAINERD = containerd(tmp_path, main, dropin)
    lab.check_containerd()
    got = lines(lab)["containerd runtime"]
    assert got[0] == status and words in got[1], got


def test_the_node_is_not_ready_without_a_cuda_context(lab, monkeypatch):
    """NVML and nvidia-smi fine, CUDA not: --strict fails (the validator used to say 'GPU node ready')."""
    ok = lambda layer: lambda *a, **k: lab.report("OK", layer, "fine")  # noqa: E731
    monkeypatch.setattr(lab, "check_driver", ok("driver"))
    monkeypatch.setattr(lab, "check_nvml", lambda: (lab.report("OK", "nvml", "fine"), ("13.0", [2] * 8))[1])
    monkeypatch.setattr(lab, "check_nvidia_smi", ok("nvidia-smi"))
    monkeypatch.setattr(lab, "nvswitch_count", lambda: 4)
    monkeypatch.setattr(lab, "fabric_manager_running", lambda: False)
    monkeypatch.setattr(lab, "check_cuda", lambda: lab.report("MISSING", "cuda context", "cuInit failed: 802"))
    for name in ("check_toolkit", "check_containers", "check_kubernetes", "check_monitoring"):
        monkeypatch.setattr(lab, name, lambda *a: None)
    monkeypatch.setattr(sys, "argv", ["01_validate_environment.py", "--strict"])
    assert lab.main() == 1


@pytest.mark.parametrize("scenario, status", [("hgx-fabric-down", "MISSING"), ("healthy-idle", "INFO")])
def test_the_program_on_the_simulator(tmp_path, scenario, status):
    done = subprocess.run([sys.executable, "-m", "handbook.gpusim", "run", scenario, "--", sys.executable,
                           str(VALIDATOR), "--strict"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    line = next(x for x in done.stdout.splitlines() if "fabric manager" in x)
    assert line.startswith(status), line
    assert done.returncode == 1 and "not a working GPU node" in done.stdout  # no CUDA here, whatever NVML says
