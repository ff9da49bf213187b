"""How are this machine's GPUs connected? `nvidia-smi topo -m`, NVML's NVLink count, and CUDA peer access.

Prints the matrix, then one line per GPU pair, and writes topology.json.
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


def main():
    if shutil.which("nvidia-smi") is None:
        sys.exit("01_topology.py: nvidia-smi is not on PATH: install the NVIDIA driver utilities")
    matrix_text = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, check=True).stdout
    print(matrix_text)
    links = parse_topo_matrix(matrix_text)

    pynvml.nvmlInit()
    gpus = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        active = 0
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            try:
                active += pynvml.nvmlDeviceGetNvLinkState(handle, link) == pynvml.NVML_FEATURE_ENABLED
            except pynvml.NVMLError:  # this link does not exist on this GPU
                pass
        gpus.append({"index": i, "name": pynvml.nvmlDeviceGetName(handle), "active_nvlinks": active})
    pynvml.nvmlShutdown()

    pairs = []
    for a in range(len(gpus)):
        for b in range(a + 1, len(gpus)):
            link = links.get((f"GPU{a}", f"GPU{b}"), "?")
            visible = max(a, b) < torch.cuda.device_count()  # CUDA_VISIBLE_DEVICES may hide some of NVML's GPUs
            peer = torch.cuda.can_device_access_peer(a, b) if visible else None
            pairs.append({"gpus": [a, b], "link": link, "peer_access": peer})
            print(f"GPU{a} <-> GPU{b}: {link:>5}  {describe(link)}; CUDA peer access: {peer}")
    for g in gpus:
        print(f"GPU{g['index']} {g['name']}: {g['active_nvlinks']} active NVLinks (NVML)")
    with open("topology.json", "w") as f:
        json.dump({"gpus": gpus, "pairs": pairs, "matrix": matrix_text}, f, indent=2)
    print("wrote topology.json")


if __name__ == "__main__":
    main()
