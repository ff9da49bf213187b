"""MFU of a GPT training step: model FLOPs per second over the card's datasheet peak, then over a measured ceiling.

Model FLOPs per token follow PaLM (Chowdhery et al. 2022, Appendix B): 6·N for the weights plus 12·L·H·Q·T for
attention, checked against PyTorch's FlopCounterMode. MFU's standard denominator is the datasheet's dense bf16
peak. The second denominator is measured in this run: the best rate of a sweep of bf16 matrix products (square
ones and the model's own shapes), timed with CUDA events, with the SM clock and board power read during each.
"""
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) bf16 tensor-core peak by the name CUDA reports; the datasheets print the 2:4-sparse rate,
# twice these. Sources: https://www.nvidia.com/en-us/data-center/h100/ and
# https://www.nvidia.com/en-us/data-center/h200/
DATASHEET_BF16 = {
    "NVIDIA H100 80GB HBM3": 989e12,  # H100 SXM
    "NVIDIA H200": 989e12,  # H200 SXM
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200 NVL": 835e12,
}
GPU = dict(layers=8, width=2048, heads=16, seq=2048, vocab=50304, batch=8)
CPU = dict(layers=2, width=64, heads=4, seq=64, vocab=512, batch=4)
SW_POWER_CAP = 0x4  # nvml.h: clocks lowered to keep the board under its power limit


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width, bias=False), nn.LayerNorm(width, bias=False)
        self.qkv, self.proj = nn.Linear(width, 3 * width, bias=False), nn.Linear(width, width, bias=False)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width, bias=False), nn.Linear(4 * width, width, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(self.norm1(x)).split(C, dim=2))
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, width, heads, seq, vocab, **_):
        super().__init__()
        self.embed, self.position = nn.Embedding(vocab, width), nn.Embedding(seq, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.norm = nn.LayerNorm(width, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, tokens, targets):
        x = self.blocks(self.embed(tokens) + self.position(torch.arange(tokens.size(1), device=tokens.device)))
        logits = F.linear(self.norm(x), self.embed.weight)  # tied output layer
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def flops_per_token(model, layers, width, seq, **_):
    """PaLM: 6·N + 12·L·H·Q·T, with H·Q = width. N leaves out the position embedding (a lookup, no matmul); the tied
    embedding counts once, as the output layer. Causal attention is counted in full, as PaLM and torchtitan do."""
    n = sum(p.numel() for p in model.parameters()) - model.position.weight.numel()
    return 6 * n + 12 * layers * width * seq


def nvml_gpu():
    """This process's CUDA device in NVML, matched by UUID (NVML ignores CUDA_VISIBLE_DEVICES); None without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        uuid = torch.cuda.get_device_properties(torch.cuda.current_device()).uuid
        return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
    except Exception:  # no nvidia-ml-py, no driver, a MIG instance: rates without clock and power
        return None


def read_clock_power(handle):
    import pynvml

    reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons",
                      getattr(pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))(handle)
    return (pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM), pynvml.nvmlDeviceGetPowerUsage(handle) / 1000,
            bool(reasons & SW_POWER_CAP))


def gemm_shapes(cfg, device):
    """(rows, in, out) per product: squares, then the model's Linear layers and its output layer."""
    if device != "cuda":
        return [(256, 256, 256), (512, 512, 512)]
    tokens, c = cfg["batch"] * cfg["seq"], cfg["width"]
    return [(n, n, n) for n in (2048, 4096, 6144, 8192, 16384)] + [
        (tokens, c, 3 * c), (tokens, c, 4 * c), (tokens, 4 * c, c), (tokens, c, cfg["vocab"])]


def gemm_sweep(shapes, device, handle=None, seconds=0.4):
    """Median rate of x @ w.T per shape over batches of about 20 ms for `seconds`; clock and power between batches."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    rows = []
    for m, k, n in shapes:
        x, w = torch.randn(m, k, device=device, dtype=dtype), torch.randn(n, k, device=device, dtype=dtype)
        out = torch.empty(m, n, device=device, dtype=dtype)
        torch.matmul(x, w.t(), out=out)  # warm-up: cuBLAS picks its kernel
        times, reads, reps, t_end = [], [], 1, time.monotonic() + seconds
        while time.monotonic() < t_end or len(times) < 3:
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(reps):
                    torch.matmul(x, w.t(), out=out)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3 / reps)
            else:
                t0 = time.perf_counter()
                for _ in range(reps):
                    torch.matmul(x, w.t(), out=out)
                times.append((time.perf_counter() - t0) / reps)
            reps = max(1, min(200, round(0.02 / times[-1])))
            if handle is not None:
                reads.append(read_clock_power(handle))
        row = {"shape": [m, k, n], "tflops": 2 * m * k * n / statistics.median(times) / 1e12}
        if reads:
            row.update(sm_clock_mhz=statistics.median(r[0] for r in reads),
                       power_w=statistics.median(r[1] for r in reads),
                       power_capped_share=sum(r[2] for r in reads) / len(reads))
        rows.append(row)
        del x, w, out
    return rows


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = GPU if device == "cuda" else CPU
    torch.manual_seed(0)
    with torch.device(device):
        model = GPT(**cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    tokens = torch.randint(cfg["vocab"], (cfg["batch"], cfg["seq"]), device=device)

    def step(batch=tokens):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(batch, batch)  # the targets do not change the FLOPs
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    per_token = flops_per_token(model, **cfg)
    params = sum(p.numel() for p in model.parameters())
    # FlopCounterMode sees attention's matmuls in PyTorch's reference (math) implementation on every device.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        step(tokens[:1])
    counted = counter.get_total_flops() / cfg["seq"]
    norms = sum(p.numel() for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters())
    assert counted == per_token - 6 * norms, (counted, per_token, norms)  # N's LayerNorm weights do no matmul
    attention = 12 * cfg["layers"] * cfg["width"] * cfg["seq"]
    for _ in range(3):
        step()  # warm-up: cuBLAS picks its kernels
    steps = 10 if device == "cuda" else 3
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3
    else:
        seconds = time.perf_counter() - t0
    achieved = steps * cfg["batch"] * cfg["seq"] * per_token / seconds
    del opt, model
    handle = nvml_gpu() if device == "cuda" else None
    rows = gemm_sweep(gemm_shapes(cfg, device), device, handle, 0.4 if device == "cuda" else 0.05)
    best = max(rows, key=lambda r: r["tflops"])
    peak = best["tflops"] * 1e12
    limits = {}
    if handle is not None:
        import pynvml

        limits = {"max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
                  "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000}
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    datasheet = DATASHEET_BF16.get(name)  # an exact name: "NVIDIA H200" must not match "NVIDIA H200 NVL"
    print(f"{name}: GPT, {cfg['layers']} layers of width {cfg['width']}, {params / 1e6:,.1f} M parameters,"
          f" {cfg['batch']} x {cfg['seq']} tokens per step, {'bf16 autocast' if device == 'cuda' else 'fp32'}, SDPA, fused AdamW")
    print(f"model FLOPs per token: 6·N + 12·L·H·Q·T = {per_token / 1e9:.4g} G (attention {attention / per_token:.1%});"
          f" FlopCounterMode counts {counted / 1e9:.4g} G, all but 6 x the {norms:,} LayerNorm weights in N")
    print(f"achieved {achieved / 1e12:.3g} TFLOP/s")
    if datasheet:
        print(f"MFU {achieved / datasheet:.1%} of the {datasheet / 1e12:.0f} TFLOP/s dense bf16 datasheet peak")
    else:
        print(f"MFU against the datasheet: unknown, {name!r} is not in DATASHEET_BF16 (add its dense bf16 peak)")
    print(f"    {achieved / peak:.1%} of the ceiling measured now, {peak / 1e12:.3g} TFLOP/s: the best of"
          f" {len(rows)} products, {'x'.join(map(str, best['shape']))}"
          + (f", which is {peak / datasheet:.1%} of the datasheet peak" if datasheet else ""))
    print(f"{'product (rows x in x out)':28} {'TFLOP/s':>8}" + (f" {'SM MHz':>7} {'W':>5} {'power-capped':>13}" if handle else ""))
    for r in rows:
        print(f"{'x'.join(map(str, r['shape'])):28} {r['tflops']:8.1f}" + (
            f" {r['sm_clock_mhz']:7.0f} {r['power_w']:5.0f} {r['power_capped_share']:13.0%}" if handle else ""))
    if limits:
        print(f"board limits: SM clock up to {limits['max_sm_clock_mhz']} MHz, power limit {limits['power_limit_w']:.0f} W")
    with open("mfu.json", "w") as f:
        json.dump({"device": name, "config": cfg, "params": params, "batch": cfg["batch"],
                   "flops_per_token": per_token, "flops_per_token_counted": counted,
                   "attention_flops_share": attention / per_token,
                   "flops_per_step": per_token * cfg["batch"] * cfg["seq"], "achieved_flops": achieved,
                   "datasheet_flops": datasheet, "mfu_vs_datasheet": achieved / datasheet if datasheet else None,
                   "ceiling": "x".join(map(str, best["shape"])), "ceiling_flops": peak, "ceiling_best": best,
                   "ceiling_sweep": rows, **limits, "mfu_vs_ceiling": achieved / peak,
                   "mfu": achieved / peak,  # the same as mfu_vs_ceiling: the key older readers of mfu.json use
                   "ceiling_vs_datasheet": peak / datasheet if datasheet else None}, f, indent=1)


if __name__ == "__main__":
    main()
