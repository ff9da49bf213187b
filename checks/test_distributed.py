"""Chapter 5's GPU-only programs, checked on CPU where they have parts that do not need a GPU."""
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


def test_topology_parser_rejects_other_output(topology):
    with pytest.raises(ValueError, match="no GPU0 column header"):
        topology["parse_topo_matrix"]("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
