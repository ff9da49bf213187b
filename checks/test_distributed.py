"""Chapter 5's GPU-only programs, checked on CPU where they have parts that do not need a GPU."""
import itertools
import json
import re
import runpy
from pathlib import Path

import pytest

SNIPPETS = Path(__file__).resolve().parents[1] / "snippets" / "distributed"

# The shape of `nvidia-smi topo -m` output: a header row of device columns, one row per GPU and NIC, a legend.
TOPO = """\
\tGPU0\tGPU1\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID
GPU0\t X \tNV18\tPIX\t0-31\t0\t\tN/A
GPU1\tNV18\t X \tSYS\t32-63\t1\t\tN/A
NIC0\tPIX\tSYS\t X \t\t\t\t

Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes
  NV#  = Connection traversing a bonded set of # NVLinks
"""


@pytest.fixture(scope="module")
def topology():
    return runpy.run_path(str(SNIPPETS / "topology" / "01_topology.py"), run_name="topology")


def test_topology_parser_reads_gpu_rows_and_device_columns(topology):
    links = topology["parse_topo_matrix"](TOPO)
    assert links == {("GPU0", "GPU0"): "X", ("GPU0", "GPU1"): "NV18", ("GPU0", "NIC0"): "PIX",
                     ("GPU1", "GPU0"): "NV18", ("GPU1", "GPU1"): "X", ("GPU1", "NIC0"): "SYS"}
    assert topology["describe"]("NV18") == "NVLink, 18 links bonded"
    assert topology["describe"]("SYS").startswith("PCIe plus")


def test_topology_parser_reads_real_driver_output_with_ansi_escapes(topology):
    """The recording keeps the raw `nvidia-smi topo -m` text of a real run (driver 580 underlines the header with
    ESC[4m ... ESC[0m); every GPU pair parses to a link, and an NV# bond is no wider than the GPU's active NVLinks,
    which NVML reported independently in the same run."""
    recording = json.loads((SNIPPETS / "topology" / "01_topology.rec.json").read_text(encoding="utf-8"))
    recorded = recording["artifacts"]["topology.json"]["json"]
    matrix, gpus = recorded["matrix"], recorded["gpus"]
    assert "\x1b[" in matrix, "the recorded matrix has no ANSI escapes: this test no longer covers them"
    links = topology["parse_topo_matrix"](matrix)
    for a, b in itertools.permutations(range(len(gpus)), 2):
        link = links[(f"GPU{a}", f"GPU{b}")]
        assert link == links[(f"GPU{b}", f"GPU{a}")] and re.fullmatch(r"NV\d+|PIX|PXB|PHB|NODE|SYS", link)
        if link.startswith("NV"):
            assert 0 < int(link[2:]) <= min(gpus[a]["active_nvlinks"], gpus[b]["active_nvlinks"])
    assert all(links[(f"GPU{i}", f"GPU{i}")] == "X" for i in range(len(gpus)))
    assert not any("\x1b" in key for pair in links for key in pair)


def test_topology_parser_rejects_other_output(topology):
    with pytest.raises(ValueError, match="no GPU0 column header"):
        topology["parse_topo_matrix"]("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


# ---- what ProcessGroupNCCL logs at start-up (03_watchdog_defaults.py) ----------------------------------------

# The shape of ProcessGroupNCCL's INFO lines (ProcessGroupNCCL.cpp: "ProcessGroupNCCL initialization options: ...",
# "ProcessGroupNCCL environments: ...", "HeartbeatMonitor environments: ..."), with glog's prefix.
NCCL_START_LOG = """\
I1206 10:00:00.000000 1 ProcessGroupNCCL.cpp:981] [PG ID 0 PG GUID 0 Rank 0] ProcessGroupNCCL initialization options: size: 1, global rank: 0, TIMEOUT(ms): 600000, USE_HIGH_PRIORITY_STREAM: 0, SPLIT_FROM: 0, SPLIT_COLOR: -3, PG Name: 0
I1206 10:00:00.000001 1 ProcessGroupNCCL.cpp:990] [PG ID 0 PG GUID 0 Rank 0] ProcessGroupNCCL environments: NCCL version: 2.27.7, TORCH_NCCL_ASYNC_ERROR_HANDLING: 3, TORCH_NCCL_ENABLE_TIMING: 0, TORCH_NCCL_BLOCKING_WAIT: 0, TORCH_DISTRIBUTED_DEBUG: OFF, TORCH_NCCL_TRACE_BUFFER_SIZE: 2000, TORCH_NCCL_NAN_CHECK: 0, TORCH_NCCL_CUDA_EVENT_CACHE: 1
I1206 10:00:00.000002 1 ProcessGroupNCCL.cpp:1800] [PG ID 0 PG GUID 0 Rank 0] HeartbeatMonitor environments: TORCH_NCCL_ENABLE_MONITORING (Whether to kill program when no watchdog heartbeat detected): 1, TORCH_NCCL_DUMP_ON_TIMEOUT: 1, TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC: 15000, TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC: 480
I1206 10:00:00.000003 1 ProcessGroupNCCL.cpp:2000] something else: TORCH_NCCL_ASYNC_ERROR_HANDLING: 9
"""


def test_watchdog_defaults_parser_reads_processgroupnccl_start_up_lines():
    program = runpy.run_path(str(SNIPPETS / "nccl-debugging" / "03_watchdog_defaults.py"), run_name="watchdog")
    found = program["settings"](NCCL_START_LOG)
    assert found["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "3"  # from the environments line, not the unrelated one
    assert found["TORCH_NCCL_TRACE_BUFFER_SIZE"] == "2000" and found["NCCL version"] == "2.27.7"
    assert found["TORCH_NCCL_ENABLE_MONITORING"] == "1" and found["TORCH_NCCL_DUMP_ON_TIMEOUT"] == "1"
    assert found["TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC"] == "480" and found["timeout_ms"] == "600000"
    assert program["settings"]("no such lines\n") == {}
