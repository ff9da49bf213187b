"""Watch DDP's gradient buckets: which all-reduces a backward pass launches, in what order, of what size.

A one-process gloo group is enough to see the bucketing (no GPU, no launcher). A communication hook
records every bucket DDP hands to the all-reduce, then does the all-reduce itself.
"""
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
try:
    torch.manual_seed(0)
    layers = [nn.Linear(512, 512) for _ in range(12)]  # 12 x 1.05 MB of float32 weights + biases
    model = DDP(nn.Sequential(*layers), bucket_cap_mb=4)
    names = {p: f"layer {i // 2}" for i, p in enumerate(model.module.parameters())}
    launched = []

    def record_then_allreduce(state, bucket):
        launched.append((bucket.index(), bucket.buffer().numel() * bucket.buffer().element_size(),
                         sorted({names[p] for p in bucket.parameters()}, key=lambda s: int(s.split()[1]))))
        work = dist.all_reduce(bucket.buffer(), async_op=True)
        return work.get_future().then(lambda fut: fut.value()[0])

    model.register_comm_hook(None, record_then_allreduce)
    for iteration in range(3):
        launched.clear()
        model(torch.randn(8, 512)).sum().backward()
        print(f"iteration {iteration}: {len(launched)} all-reduce(s)")
        for index, nbytes, params in launched:
            print(f"  bucket {index}: {nbytes / 2**20:5.2f} MiB  {params[0]} .. {params[-1]}")
    # From the second iteration on: buckets in gradient-ready order (last layer first), each closed once it
    # reaches the cap, so it overshoots by less than one parameter (here a 1 MiB weight).
    assert len(launched) == 3 and launched[0][2][-1] == "layer 11", launched
    assert all(nbytes < (4 + 1.01) * 2**20 for _, nbytes, _ in launched), "a bucket overshot the cap"
finally:
    dist.destroy_process_group()
