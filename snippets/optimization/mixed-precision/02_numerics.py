"""What each format can hold: range, precision, and three failures that mixed-precision training must avoid."""
import torch

formats = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
print(f"{'format':6} {'largest':>10} {'smallest normal':>16} {'eps (1 -> next)':>16}")
for name, dtype in formats.items():
    info = torch.finfo(dtype)
    print(f"{name:6} {info.max:10.3g} {info.tiny:16.3g} {info.eps:16.3g}")

# 1. Underflow: a small gradient becomes zero in fp16 (bf16 keeps fp32's exponent range). GradScaler multiplies
#    the loss, hence every gradient, by a large factor before backward and divides it out before the step.
grad = torch.tensor(1e-8)
print(f"gradient 1e-8 -> fp16 {grad.half().item():.3g}, bf16 {grad.bfloat16().item():.3g};"
      f" scaled by 65536 in fp16, then unscaled: {(grad * 65536).half().float().item() / 65536:.3g}")
assert grad.half().item() == 0 and grad.bfloat16().item() != 0

# 2. Overflow: fp16 stops at 65504.
print(f"70000 -> fp16 {torch.tensor(70000.0).half().item()}, bf16 {torch.tensor(70000.0).bfloat16().item():.0f}")

# 3. Lost updates: bf16 has 8 significant bits, so a small update to a weight of 1 vanishes. This is why
#    autocast keeps fp32 master weights and why long sums accumulate in fp32.
w = torch.tensor(1.0, dtype=torch.bfloat16)
print(f"bf16: 1 + 0.001 = {(w + 0.001).item()}; fp32: {(torch.tensor(1.0) + 0.001).item():.4f}")
total_bf16, total_fp32 = torch.tensor(0.0, dtype=torch.bfloat16), torch.tensor(0.0)
for _ in range(10_000):
    total_bf16 += 0.0001
    total_fp32 += 0.0001
print(f"adding 0.0001 ten thousand times: bf16 accumulator {total_bf16.item():.4f}, fp32 {total_fp32.item():.4f}")
assert (w + 0.001).item() == 1.0 and abs(total_fp32.item() - 1.0) < 1e-3 < abs(total_bf16.item() - 1.0)
