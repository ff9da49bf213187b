"""Crash isolation and GPU scheduling, checked by real pytest runs on planted pages in a scratch handbook.

The GPUs are the simulator's (a scenario on PYTHONPATH makes `import pynvml` simulated for the harness too), so
the scheduling is proven on CPU: blocks record when they ran and on which CUDA_VISIBLE_DEVICES.
"""
import json
import re
import shutil
from pathlib import Path

import pytest

from test_harness import gpu_here, project, run, write  # noqa: F401 - `project` is a fixture

ROOT = Path(__file__).resolve().parent.parent
CRASHES = ROOT / "checks" / "fixtures" / "crash-pages" / "crashes.md"


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_block_that_kills_its_process_fails_alone_and_the_next_block_runs(project, workers):  # noqa: F811
    shutil.copy(CRASHES, project / "docs" / "crashes.md")
    result = run(project, "docs/crashes.md", "-n", workers)
    out = result.stdout
    assert result.returncode == 1, out
    assert "docs/crashes.md:5: the block ended its process without a Python exception: exit status 1" in out
    assert "about to leave with os._exit(1)" in out  # the tail of its output
    assert "docs/crashes.md:15: the block ended its process without a Python exception: killed by SIGSEGV" in out
    assert "about to read address 0" in out
    gpu = gpu_here()
    if gpu:  # the lead's H200 run: the device-side assert fails alone, the next CUDA block gets a clean context
        # torch 2.11 raises torch.AcceleratorError (a RuntimeError) for it; older releases a plain RuntimeError
        assert re.search(r"docs/crashes\.md:25: (torch\.AcceleratorError|RuntimeError): CUDA error: device-side "
                         r"assert triggered", out), out
        assert "docs/crashes.md  ran 3  skipped 0  failed 3  notest 0" in out
        assert "3 failed, 4 passed" in out  # the page's blocks, and its page-checks item
    else:
        assert "docs/crashes.md  ran 2  skipped 2  failed 2  notest 0" in out
        assert "2 failed, 3 passed, 2 skipped" in out  # one block, one failure: exact counts, also under xdist
    assert "node down" not in out and "worker crashed" not in out.lower()  # the xdist worker survived


def test_a_hung_block_is_killed_with_its_children_and_its_output_shown(project, tmp_path):  # noqa: F811
    write(project, "docs/hang.md", """\
        # Hang

        '''python timeout=2
        import subprocess, sys, time
        print("started a child that would outlive us", flush=True)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        time.sleep(60)
        '''

        '''python
        print("next")
        '''
        """)
    temp = tmp_path / "temp"
    temp.mkdir()
    result = run(project, "docs/hang.md", TMPDIR=str(temp))
    assert "docs/hang.md:3: Failed: Timeout >2s" in result.stdout
    assert "started a child that would outlive us" in result.stdout
    assert "1 failed, 2 passed" in result.stdout
    left = [p.name for p in temp.iterdir() if p.name.startswith("block-")]
    assert not left, f"the killed block left its scratch folder behind: {left}"


def test_cpu_blocks_share_a_started_server_and_gpu_blocks_get_a_fresh_interpreter(project, tmp_path):  # noqa: F811
    """CPU blocks run one after another in one block server, started (not forked: it holds nothing of the pytest
    worker, whose torch thread pools would hang a forked child); a GPU block gets an interpreter of its own."""
    scenario = write(project, "two-gpus.toml", TWO_GPUS)
    pids = tmp_path / "pids"
    write(project, "docs/modes.md", f"""\
        # Modes

        '''python
        import sys, os
        assert "_pytest" not in sys.modules, "the block server is a fresh interpreter, not a fork of the worker"
        open({str(pids)!r}, "a").write(f"cpu {{os.getpid()}}\\n")
        '''

        '''python
        import os
        open({str(pids)!r}, "a").write(f"cpu {{os.getpid()}}\\n")
        '''

        '''python requires="gpu"
        import sys, os
        assert "_pytest" not in sys.modules, "a GPU block runs in a fresh interpreter"
        assert "torch" not in sys.modules
        open({str(pids)!r}, "a").write(f"gpu {{os.getpid()}}\\n")
        print("pinned to", os.environ["CUDA_VISIBLE_DEVICES"])
        '''
        """)
    result = run(project, "docs/modes.md", "-s", **sim_env(scenario))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pinned to GPU-" in result.stdout
    (_, cpu1), (_, cpu2), (kind, gpu) = (line.split() for line in pids.read_text().splitlines())
    assert cpu1 == cpu2, "the CPU blocks ran in the same block server"
    assert kind == "gpu" and gpu != cpu1, "the GPU block ran in its own interpreter"


TWO_GPUS = """\
    description = "two simulated GPUs for the scheduling checks"
    [gpu_defaults]
    model = "NVIDIA H200"
    memory_total_mib = 143771
    power_limit_w = 700
    sm_clock_max_mhz = 1980
    mem_clock_max_mhz = 3201
    temperature_slowdown_c = 87
    temperature_shutdown_c = 92
    [[gpus]]
    copies = 2
    """


def sim_env(scenario: Path, **extra) -> dict:
    """The harness itself sees the simulated GPUs: the shim is first on PYTHONPATH."""
    from handbook import gpusim

    env = gpusim.child_env(str(scenario))
    keep = {k: env[k] for k in ("HANDBOOK_GPUSIM", "PYTHONPATH")}
    return {**keep, "HANDBOOK_GPU_LOCK_DIR": str(scenario.parent / "locks"), **extra}


LOGGING_BLOCK = """\
'''python {options}
import json, os, time
start = time.time()
time.sleep(0.8)
with open(os.environ["BLOCK_LOG"], "a") as log:
    log.write(json.dumps({{"kind": "{kind}", "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start,
                          "end": time.time()}}) + "\\n")
'''
"""


def overlaps(a, b) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_gpu_blocks_hold_their_gpus_alone_and_cpu_blocks_overlap(project):  # noqa: F811
    scenario = write(project, "two-gpus.toml", TWO_GPUS)
    log = project / "blocks.jsonl"
    for n in range(4):  # one page each, so xdist can give them to different workers
        write(project, f"docs/gpu{n}.md", "# GPU\n\n" + LOGGING_BLOCK.format(options='requires="gpu"', kind="gpu"))
        write(project, f"docs/cpu{n}.md", "# CPU\n\n" + LOGGING_BLOCK.format(options="", kind="cpu"))
    write(project, "docs/pair.md", "# Two GPUs\n\n" + LOGGING_BLOCK.format(options='requires="gpus>=2"', kind="pair"))
    result = run(project, "docs", "-n", "4", "--dist", "load", **sim_env(scenario, BLOCK_LOG=str(log)))
    assert result.returncode == 0, result.stdout + result.stderr
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 9
    gpu = [r for r in runs if r["kind"] != "cpu"]
    cpu = [r for r in runs if r["kind"] == "cpu"]
    for a in gpu:
        for b in gpu:
            if a is not b and set(a["cvd"].split(",")) & set(b["cvd"].split(",")):
                assert not overlaps(a, b), f"two GPU blocks ran on {a['cvd']} at once"
    pair = next(r for r in runs if r["kind"] == "pair")
    assert len(set(pair["cvd"].split(","))) == 2
    assert len({r["cvd"] for r in gpu if r["kind"] == "gpu"}) == 2, "1-GPU blocks spread over both GPUs"
    assert all(r["cvd"] == "" for r in cpu), "CPU blocks see no GPU (they would use one outside the locks)"
    assert any(overlaps(a, b) for a in cpu for b in cpu if a is not b), "CPU blocks still run in parallel"


def test_cuda_visible_devices_empty_skips_gpu_blocks_and_fails_them_in_gpu_runner_mode(project):  # noqa: F811
    scenario = write(project, "two-gpus.toml", TWO_GPUS)
    write(project, "docs/gpu.md", "# GPU\n\n'''python requires=\"gpu\"\nprint(1)\n'''\n")
    plain = run(project, "docs/gpu.md", **sim_env(scenario, CUDA_VISIBLE_DEVICES=""))
    assert plain.returncode == 0, plain.stdout
    assert 'skipped 1: requires gpu (this machine: no GPU (CUDA_VISIBLE_DEVICES="" hides every GPU))' in plain.stdout
    runner = run(project, "--gpu-runner", "docs/gpu.md", **sim_env(scenario, CUDA_VISIBLE_DEVICES=""))
    assert runner.returncode == 1
    assert "docs/gpu.md:3: GPU-runner mode, but this block requires gpu" in runner.stdout
    visible = run(project, "docs/gpu.md", **sim_env(scenario))
    assert "docs/gpu.md  ran 1" in visible.stdout


def test_a_mig_slice_is_compared_by_its_own_memory(project):  # noqa: F811
    from handbook import gpusim

    module = gpusim.simulated_module("mig-h200-mixed", banner=False)
    module.nvmlInit()
    parent = module.nvmlDeviceGetHandleByIndex(0)
    small = module.nvmlDeviceGetUUID(module.nvmlDeviceGetMigDeviceHandleByIndex(parent, 2))  # a 1g.18gb slice
    big = module.nvmlDeviceGetUUID(module.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0))  # the 3g.71gb one
    module.nvmlShutdown()
    write(project, "docs/mig.md", "# MIG\n\n'''python requires=\"gpu mem>=40GiB\"\nprint(1)\n'''\n")
    env = {"HANDBOOK_GPUSIM": "mig-h200-mixed", "PYTHONPATH": gpusim.child_env("mig-h200-mixed")["PYTHONPATH"]}
    on_small = run(project, "docs/mig.md", **env, CUDA_VISIBLE_DEVICES=small)
    assert "skipped 1: requires gpu mem>=40GiB (smallest GPU has 17.5 GiB)" in on_small.stdout, on_small.stdout
    on_big = run(project, "docs/mig.md", **env, CUDA_VISIBLE_DEVICES=big)
    assert "docs/mig.md  ran 1" in on_big.stdout, on_big.stdout


def test_blocks_run_after_the_worker_itself_used_torch_threads(project):  # noqa: F811
    """The worker ran parallel torch operations before the first block (a test did, in the full suite): a block
    server forked from it would inherit a dead OpenMP pool and hang on its first parallel operation."""
    with open(project / "conftest.py", "a") as f:
        f.write("\nimport torch\ntorch.set_num_threads(2)\nassert torch.ones(2**22).add(1).sum() > 0\n")
    write(project, "docs/threads.md", """\
        # Threads

        '''python timeout=30
        import torch
        torch.set_num_threads(2)
        x = torch.randint(0, 100, (2**22,)).double()
        assert torch.equal(x + x, 2 * x)
        print("parallel op done")
        '''
        """)
    result = run(project, "docs/threads.md", "-s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "parallel op done" in result.stdout
