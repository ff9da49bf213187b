"""Tensor parallelism as Megatron-LM splits an MLP, simulated on t "GPUs" in one process.

W1 is split by columns (each GPU gets a slice of the hidden units), so GeLU runs locally with no
communication; W2 is split by rows, so each GPU produces a partial output and one all-reduce (a sum)
finishes the layer. Backward needs one more all-reduce for the input gradient.
"""
import torch

torch.manual_seed(0)
batch, d_model, d_hidden = 16, 256, 1024
x = torch.randn(batch, d_model, dtype=torch.float64)
w1 = torch.randn(d_model, d_hidden, dtype=torch.float64) / d_model**0.5
w2 = torch.randn(d_hidden, d_model, dtype=torch.float64) / d_hidden**0.5
reference = torch.nn.functional.gelu(x @ w1) @ w2  # the whole MLP on one device

for t in (2, 4, 8):
    w1_shards = w1.chunk(t, dim=1)  # column-parallel: GPU i holds d_hidden / t columns
    w2_shards = w2.chunk(t, dim=0)  # row-parallel: the matching d_hidden / t rows
    partials = [torch.nn.functional.gelu(x @ a) @ b for a, b in zip(w1_shards, w2_shards)]
    output = torch.stack(partials).sum(0)  # the all-reduce
    assert torch.allclose(output, reference), f"tensor-parallel result differs at t={t}"
    weights_per_gpu = w1_shards[0].numel() + w2_shards[0].numel()
    print(f"t={t}: weights per GPU {weights_per_gpu:,} of {w1.numel() + w2.numel():,}; "
          f"all-reduce per forward: {output.numel():,} values (batch x d_model), whatever t is")
