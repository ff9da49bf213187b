"""DDP on 2 gloo ranks (CPU): which buckets a backward pass all-reduces, and what makes the result an average.

    python 01_ddp_buckets.py        # starts two worker processes of itself

Without a communication hook, DDP divides each gradient by the world size as it copies it into its bucket, before
the all-reduce sums the buckets: every rank ends with the average. Once a hook is registered DDP does not divide at
all; the hook owns the whole reduction (DistributedDataParallel.register_comm_hook). A hook that only all-reduces
sums, and on N ranks multiplies every gradient by N. The program compares each variant with the gradient one
process computes from the whole batch, then records the buckets of a 12-layer model.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

WORLD = 2


# --8<-- [start:hooks]
def allreduce_only(state, bucket):
    """All-reduce the bucket and nothing else: the SUM over the ranks (DDP no longer divides once a hook is set)."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda fut: fut.value()[0])


def average(state, bucket):
    """Divide by the world size, then all-reduce: the average, what DDP computes without a hook."""
    bucket.buffer().div_(dist.get_world_size())
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda fut: fut.value()[0])
# --8<-- [end:hooks]


def small_model() -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank and in the reference
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def flat_grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def ddp_gradients(hook, x, y) -> torch.Tensor:
    """This rank's gradients after one DDP backward on its half of the batch (mean loss over its samples)."""
    model = DDP(small_model())
    if hook is not None:
        model.register_comm_hook(None, hook)
    rank, n = dist.get_rank(), len(x) // WORLD
    nn.functional.mse_loss(model(x[rank * n:(rank + 1) * n]), y[rank * n:(rank + 1) * n]).backward()
    return flat_grads(model.module)


def buckets() -> tuple[list, float]:
    """The buckets one backward pass hands to the all-reduce, from the second iteration on (buckets are rebuilt
    after the first in the order gradients became ready), and the largest difference between the gradients of the
    recording model and of the same model under plain DDP: the recording hook must average as DDP does."""
    def twelve_layers():
        torch.manual_seed(2)
        return nn.Sequential(*[nn.Linear(512, 512) for _ in range(12)])  # 12 x 1.05 MB of float32 weights + biases

    model, plain = DDP(twelve_layers(), bucket_cap_mb=4), DDP(twelve_layers(), bucket_cap_mb=4)
    names = {p: f"layer {i // 2}" for i, p in enumerate(model.module.parameters())}
    launched = []

    def record_then_average(state, bucket):
        launched.append((bucket.index(), bucket.buffer().numel() * bucket.buffer().element_size(),
                         sorted({names[p] for p in bucket.parameters()}, key=lambda s: int(s.split()[1]))))
        return average(state, bucket)

    model.register_comm_hook(None, record_then_average)
    torch.manual_seed(3 + dist.get_rank())  # a different batch on each rank
    for _ in range(2):
        launched.clear()
        x = torch.randn(8, 512)
        for m in (model, plain):
            m.zero_grad()
            m(x).sum().backward()
    gap = max((a.grad - b.grad).abs().max().item() for a, b in zip(model.parameters(), plain.parameters()))
    scale = max(b.grad.abs().max().item() for b in plain.parameters())
    return launched, gap / scale


def worker(rank: int, store: str, out: str):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(1)
        x, y = torch.randn(16, 16), torch.randn(16, 4)  # the same global batch everywhere; each rank takes half
        variants = {"DDP, no hook": None, "hook that only all-reduces": allreduce_only,
                    "hook that divides, then all-reduces": average,
                    "torch's allreduce_hook": default_hooks.allreduce_hook}
        grads = {name: ddp_gradients(hook, x, y).tolist() for name, hook in variants.items()}
        launched, gap = buckets()
        with open(out, "w") as f:
            json.dump({"grads": grads, "buckets": launched, "recording_hook_gap": gap}, f)
    finally:
        dist.destroy_process_group()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        outs = [os.path.join(tmp, f"rank{r}.json") for r in range(WORLD)]
        procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(r), tmp + "/store",
                                   outs[r]], env=env) for r in range(WORLD)]
        if any(p.wait(timeout=120) for p in procs):
            sys.exit("01_ddp_buckets.py: a worker failed (see its traceback above)")
        ranks = [json.load(open(o)) for o in outs]
    torch.manual_seed(1)
    x, y = torch.randn(16, 16), torch.randn(16, 4)
    reference = small_model()
    nn.functional.mse_loss(reference(x), y).backward()  # one process, the whole batch: what DDP must reproduce
    ref = flat_grads(reference)
    print(f"{WORLD} ranks, each on half of a 16-sample batch; gradient ÷ the one-process gradient of the whole batch:")
    ratios = {}
    for name in ranks[0]["grads"]:
        g = torch.tensor(ranks[0]["grads"][name])
        assert torch.allclose(g, torch.tensor(ranks[1]["grads"][name])), f"{name}: the ranks disagree"
        ratios[name] = float(g @ ref / (ref @ ref))
        print(f"  {name:38} {ratios[name]:.2f}")
    assert abs(ratios["DDP, no hook"] - 1) < 1e-5 and abs(ratios["hook that divides, then all-reduces"] - 1) < 1e-5
    assert abs(ratios["torch's allreduce_hook"] - 1) < 1e-5
    assert abs(ratios["hook that only all-reduces"] - WORLD) < 1e-5, "a hook without the division should sum"

    launched = ranks[0]["buckets"]
    print(f"\nbuckets of a 12-layer model (bucket_cap_mb=4), second iteration: {len(launched)} all-reduce(s)")
    for index, nbytes, params in launched:
        print(f"  bucket {index}: {nbytes / 2**20:5.2f} MiB  {params[0]} .. {params[-1]}")
    # Buckets in gradient-ready order (last layer first), each closed once it reaches the cap, so it overshoots by
    # less than one parameter (here a 1 MiB weight).
    assert len(launched) == 3 and launched[0][2][-1] == "layer 11", launched
    assert all(nbytes < (4 + 1.01) * 2**20 for _, nbytes, _ in launched), "a bucket overshot the cap"
    gap = max(r["recording_hook_gap"] for r in ranks)
    assert gap < 1e-5, f"the recording hook's gradients differ from plain DDP's by {gap:.0%} of their size"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
