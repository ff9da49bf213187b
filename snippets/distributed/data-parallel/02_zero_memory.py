"""Model-state memory per GPU under DDP and the three ZeRO stages (FSDP's FULL_SHARD is stage 3).

Mixed-precision Adam keeps, per parameter: 2 bytes of fp16/bf16 weights, 2 bytes of gradients and
K = 12 bytes of optimizer state (fp32 master weights, momentum, variance): 16 bytes in all.
Activations, buffers and the CUDA context come on top.
"""

def model_state_bytes(params, gpus, stage, weight_bytes=2, grad_bytes=2, optim_bytes=12):
    """Bytes per GPU. stage 0 = DDP (everything replicated); 1 shards the optimizer state,
    2 also the gradients, 3 also the weights (ZeRO paper, Rajbhandari et al. 2019, figure 1)."""
    if stage not in (0, 1, 2, 3) or params <= 0 or gpus < 1:
        raise ValueError(f"need stage 0-3, params > 0, gpus >= 1 (got {stage}, {params}, {gpus})")
    w, g, o = weight_bytes * params, grad_bytes * params, optim_bytes * params
    return {0: w + g + o, 1: w + g + o / gpus, 2: w + (g + o) / gpus, 3: (w + g + o) / gpus}[stage]


# The ZeRO paper's own example: 7.5 B parameters on 64 GPUs -> 120, 31.4, 16.6 and 1.9 GB per GPU.
paper = [round(model_state_bytes(7.5e9, 64, s) / 1e9, 1) for s in range(4)]
assert paper == [120.0, 31.4, 16.6, 1.9], paper

print(f"{'parameters':>10} {'GPUs':>5} {'DDP':>9} {'ZeRO-1':>9} {'ZeRO-2':>9} {'ZeRO-3/FSDP':>12}   (GB per GPU)")
for params, gpus in [(7.5e9, 64), (7e9, 8), (70e9, 8), (70e9, 64)]:
    row = [model_state_bytes(params, gpus, s) / 1e9 for s in range(4)]
    print(f"{params / 1e9:>9.1f}B {gpus:>5} " + " ".join(f"{v:>9.1f}" for v in row[:3]) + f" {row[3]:>12.1f}")
