"""How are this machine's GPUs connected? `nvidia-smi topo -m`, NVML's NVLink count, and CUDA peer access.

Prints the matrix, then one line per GPU pair, and writes topology.json. GPUs are numbered as nvidia-smi and NVML
number them; CUDA's numbers for the same GPUs (which CUDA_VISIBLE_DEVICES changes) are matched by UUID.
"""
import itertools
import json
import re
import shutil
import subprocess
import sys

import pynvml
import torch

DEVICE = re.compile(r"^(GPU\d+|NIC\d+|mlx\S+)$")
# ANSI control sequences (ESC [ parameters final-byte): recent drivers underline the header row with ESC[4m ... ESC[0m.
ANSI_CSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def parse_topo_matrix(text):
    """{(row, column): link} for the GPU rows of `nvidia-smi topo -m` output (columns: GPUs and NICs)."""
    rows = [line.split() for line in ANSI_CSI.sub("", text).splitlines() if line.strip()]
    start = next((i for i, words in enumerate(rows) if words[0] == "GPU0"), None)
    if start is None:
        raise ValueError("no GPU0 column header in the nvidia-smi topo -m output")
    columns = list(itertools.takewhile(DEVICE.match, rows[start]))
    links = {}
    for words in rows[start + 1:]:
        if re.match(r"^GPU\d+$", words[0]):
            links.update({(words[0], column): link for column, link in zip(columns, words[1:])})
    return links


def describe(link):
    if link.startswith("NV"):
        return f"NVLink, {link[2:]} links bonded"
    return {"X": "self", "PIX": "PCIe, one switch", "PXB": "PCIe, several switches",
            "PHB": "PCIe through the CPU's host bridge", "NODE": "PCIe across host bridges in one NUMA node",
            "SYS": "PCIe plus the link between CPU sockets"}.get(link, link)


def nvml_gpus() -> list[dict]:
    """Every GPU of the node in NVML's numbering (the one nvidia-smi topo -m uses), with its active NVLinks and the
    CUDA device number this process knows it by, matched by UUID: CUDA numbers only the GPUs CUDA_VISIBLE_DEVICES
    shows it, in that order, so NVML's GPU 5 can be CUDA's device 0 (or invisible to CUDA)."""
    cuda_by_uuid = {f"GPU-{torch.cuda.get_device_properties(i).uuid}": i for i in range(torch.cuda.device_count())}
    pynvml.nvmlInit()
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            active = 0
            for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
                try:
                    active += pynvml.nvmlDeviceGetNvLinkState(handle, link) == pynvml.NVML_FEATURE_ENABLED
                except pynvml.NVMLError:  # this link does not exist on this GPU
                    pass
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            gpus.append({"index": i, "name": pynvml.nvmlDeviceGetName(handle), "uuid": uuid,
                         "cuda_device": cuda_by_uuid.get(uuid), "active_nvlinks": active})
        return gpus
    finally:
        pynvml.nvmlShutdown()


def gpu_pairs(gpus: list[dict], links: dict) -> list[dict]:
    """One entry per GPU pair (NVML numbering): the topo link and CUDA peer access, None where CUDA cannot see one."""
    pairs = []
    for a, b in itertools.combinations(gpus, 2):
        ca, cb = a["cuda_device"], b["cuda_device"]
        peer = torch.cuda.can_device_access_peer(ca, cb) if ca is not None and cb is not None else None
        pairs.append({"gpus": [a["index"], b["index"]], "link": links.get((f"GPU{a['index']}", f"GPU{b['index']}"), "?"),
                      "peer_access": peer})
    return pairs


def main():
    if shutil.which("nvidia-smi") is None:
        sys.exit("01_topology.py: nvidia-smi is not on PATH: install the NVIDIA driver utilities")
    matrix_text = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, check=True).stdout
    print(matrix_text)
    gpus = nvml_gpus()
    pairs = gpu_pairs(gpus, parse_topo_matrix(matrix_text))
    for p in pairs:
        a, b = p["gpus"]
        print(f"GPU{a} <-> GPU{b}: {p['link']:>5}  {describe(p['link'])}; CUDA peer access: {p['peer_access']}")
    for g in gpus:
        cuda = f"cuda:{g['cuda_device']}" if g["cuda_device"] is not None else "not visible to CUDA here"
        print(f"GPU{g['index']} {g['name']} ({cuda}): {g['active_nvlinks']} active NVLinks (NVML)")
    with open("topology.json", "w") as f:
        json.dump({"gpus": gpus, "pairs": pairs, "matrix": matrix_text}, f, indent=2)
    print("wrote topology.json")


if __name__ == "__main__":
    main()
