"""Snippets that pair CUDA with NVML read the GPU CUDA runs on, not NVML's GPU of the same index.

NVML numbers every GPU of the node (by PCI bus) and ignores CUDA_VISIBLE_DEVICES; CUDA numbers only the GPUs
CUDA_VISIBLE_DEVICES lets it see, in that order. On a shared node a job given GPU 5 sees it as cuda:0, and NVML's
index 0 is somebody else's GPU. Each check plays an eight-GPU simulator scenario with CUDA_VISIBLE_DEVICES set,
and stands in for CUDA with what CUDA would report there (handbook.harness.requirements.visible_devices applies CUDA's
rules to the simulator's GPUs): the snippet must land on the GPU CUDA_VISIBLE_DEVICES named.
"""
import re
import runpy
import types
from pathlib import Path

import pytest

from handbook import gpusim
from handbook.harness.requirements import physical_gpu, visible_devices

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "snippets"
BUSY = SNIPPETS / "fundamentals/compute/02_busy_vs_utilized.py"
TOPOLOGY = SNIPPETS / "distributed/topology/01_topology.py"
CLOCKS = SNIPPETS / "troubleshooting/throttling/01_clock_reasons.py"
DDP_TRAIN = SNIPPETS / "labs/lab3/01_ddp_train.py"


class Stop(Exception):
    """Raised by a stand-in once the snippet has shown which GPU it reads."""


def cuda_as_it_would_see(pynvml, visible: str) -> list:
    """The devices CUDA would enumerate on the simulated node under CUDA_VISIBLE_DEVICES=visible."""
    gpus = [physical_gpu(pynvml, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(pynvml.nvmlDeviceGetCount())]
    return visible_devices(gpus, visible)


def fake_cuda(monkeypatch, torch, devices):
    """torch.cuda answering like a CUDA runtime that sees `devices` (requirements.Device objects)."""
    def properties(device=None):
        index = 0 if device is None else int(getattr(device, "index", device) or 0)
        uuid = devices[index].uuid.split("-", 1)[1]  # torch prints the UUID without NVML's GPU-/MIG- prefix
        return types.SimpleNamespace(uuid=uuid, name=devices[index].name, multi_processor_count=132,
                                     total_memory=devices[index].mem_bytes)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(devices))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: properties(device).name)


def gpu_nvml_reads_first(monkeypatch, snippet: Path, run_name: str, nvml_call: str, visible) -> int:
    """The GPU whose handle `snippet`'s main() first passes to NVML's `nvml_call`, on the simulated 8-GPU node with
    CUDA_VISIBLE_DEVICES=visible (a callable takes pynvml and gives the value, e.g. a GPU's UUID)."""
    import torch

    with gpusim.activate("8gpu-one-hot") as pynvml:
        pynvml.nvmlInit()
        visible = visible(pynvml) if callable(visible) else visible
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        fake_cuda(monkeypatch, torch, cuda_as_it_would_see(pynvml, visible))
        read = []

        def first_read(handle):
            read.append(pynvml.nvmlDeviceGetIndex(handle))
            raise Stop

        monkeypatch.setattr(pynvml, nvml_call, first_read)
        program = runpy.run_path(str(snippet), run_name=run_name)
        with pytest.raises(Stop):
            program["main"]()
    assert len(read) == 1
    return read[0]


def uuid_of_gpu_3(pynvml) -> str:  # a UUID in CUDA_VISIBLE_DEVICES, as the handbook's GPU runner sets it
    return pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(3))


@pytest.mark.parametrize("visible, physical", [("5", 5), (uuid_of_gpu_3, 3), ("6,2", 6)])
def test_busy_vs_utilized_reads_the_gpu_cuda_runs_on(monkeypatch, visible, physical):
    read = gpu_nvml_reads_first(monkeypatch, BUSY, "busy_vs_utilized", "nvmlGpmQueryDeviceSupport", visible)
    assert read == physical, f"CUDA_VISIBLE_DEVICES={visible}: NVML read GPU {read}, CUDA runs on GPU {physical}"


def test_clock_reasons_reads_the_gpu_cuda_runs_on(monkeypatch):
    assert gpu_nvml_reads_first(monkeypatch, CLOCKS, "clock_reasons", "nvmlDeviceGetEnforcedPowerLimit", "5") == 5


def test_lab3_rank_reads_its_own_gpu(monkeypatch):
    import torch

    with gpusim.activate("8gpu-one-hot") as pynvml:
        pynvml.nvmlInit()
        devices = cuda_as_it_would_see(pynvml, "7,4")
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,4")
        fake_cuda(monkeypatch, torch, devices)
        program = runpy.run_path(str(DDP_TRAIN), run_name="ddp_train")
        handles = [program["nvml_handle"](torch.device("cuda", rank)) for rank in (0, 1)]
        assert [pynvml.nvmlDeviceGetIndex(h) for h in handles] == [7, 4]


def test_topology_asks_cuda_about_the_pair_nvml_names(monkeypatch):
    """nvidia-smi topo -m and NVML number GPUs 0..7; CUDA under CUDA_VISIBLE_DEVICES=5,2 knows GPU 5 as 0 and GPU 2
    as 1. Peer access for NVML's pair (2, 5) must be CUDA's (1, 0); pairs with a GPU CUDA cannot see get None."""
    import torch

    with gpusim.activate("8gpu-one-hot") as pynvml:
        pynvml.nvmlInit()
        devices = cuda_as_it_would_see(pynvml, "5,2")
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,2")
        fake_cuda(monkeypatch, torch, devices)
        asked = []
        monkeypatch.setattr(torch.cuda, "can_device_access_peer", lambda a, b: asked.append((a, b)) or True)
        program = runpy.run_path(str(TOPOLOGY), run_name="topology")
        gpus = program["nvml_gpus"]()
        pairs = {tuple(p["gpus"]): p for p in program["gpu_pairs"](gpus, {})}
    assert [g["cuda_device"] for g in gpus] == [None, None, 1, None, None, 0, None, None]
    assert pairs[(2, 5)]["peer_access"] is True and asked == [(1, 0)]
    assert pairs[(0, 1)]["peer_access"] is None and pairs[(2, 3)]["peer_access"] is None


CUDA_DEVICE_USE = re.compile(r'device="cuda|\.cuda\(|torch\.device\("cuda|current_device\(|can_device_access_peer'
                             r'|get_device_properties')


def pairing_snippets() -> list:
    """Snippets that read NVML and run CUDA work on a device."""
    return [pytest.param(path, id=str(path.relative_to(SNIPPETS))) for path in sorted(SNIPPETS.rglob("*.py"))
            if "pynvml" in (text := path.read_text()) and CUDA_DEVICE_USE.search(text)]


@pytest.mark.parametrize("path", pairing_snippets())
def test_no_snippet_pairs_cuda_with_nvml_by_index(path):
    """Every snippet that runs CUDA work and reads NVML per GPU ties the two together by UUID. (A snippet that
    only reads every GPU of the node, an exporter or a health check, pairs nothing with CUDA.)"""
    text = path.read_text()
    # A snippet may take its NVML handle from a sibling it loads (Lab 2's experiment from 03_sampler.py): then the
    # sibling must resolve it by UUID.
    siblings = [path.parent / name for name in re.findall(r'load_sibling\("([\w.]+\.py)"', text)]
    resolved = [t for t in [text, *(s.read_text() for s in siblings)] if "nvmlDeviceGetHandleByUUID" in t
                or "nvmlDeviceGetUUID" in t]
    assert resolved, f"{path.relative_to(ROOT)} pairs CUDA with NVML by index: resolve the GPU by UUID"
