"""One MLP trained from the same start on the same batches in four number formats: step time, loss and accuracy.

fp32: the default. tf32: fp32 tensors, matmuls on tensor cores with a 10-bit mantissa. bf16 autocast: matmuls
in bf16, weights and optimizer state stay fp32. fp16 autocast: needs a GradScaler, because small gradients
underflow fp16's range. tf32 only exists on GPUs; on a CPU the other three run at a small size.
The task is learnable: the labels are the argmax of a fixed random linear map of the inputs ("teacher"), every
step sees new samples, and a held-out set measures how far each format gets from chance.
"""
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn


def mlp(features, width, depth, classes):
    layers = [nn.Linear(features, width), nn.GELU()]
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def evaluate(model, held_out, device, dtype):
    x, y = held_out
    with torch.no_grad(), torch.autocast(device_type=device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        logits = model(x).float()
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def train(mode, device, size, batches, held_out, steps):
    torch.manual_seed(0)
    model = mlp(*size).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    scaler = torch.amp.GradScaler(device, enabled=mode == "fp16")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(steps + 1):
        if i == 1:  # step 0 warms up; time the rest
            sync()
            t0 = time.perf_counter()
        x, y = batches[i]  # a new batch every step: the model must generalize, not memorize
        with torch.autocast(device_type=device, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # with the scaler disabled: loss.backward()
        scaler.step(opt)  # unscales the gradients; skips the step if any is inf/nan
        scaler.update()
    sync()
    ms_per_step = (time.perf_counter() - t0) / steps * 1e3
    eval_loss, eval_accuracy = evaluate(model, held_out, device, dtype)
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"ms_per_step": ms_per_step, "final_loss": loss.item(), "eval_loss": eval_loss,
            "eval_accuracy": eval_accuracy, "grad_scale": scaler.get_scale() if scaler.is_enabled() else None}


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size, batch, steps = ((1024, 4096, 4, 10), 8192, 200) if device == "cuda" else ((64, 128, 2, 10), 256, 100)
    modes = ["fp32", "tf32", "bf16", "fp16"] if device == "cuda" else ["fp32", "bf16", "fp16"]
    g = torch.Generator(device).manual_seed(1)
    teacher = torch.randn(size[0], size[3], device=device, generator=g)

    def samples(n):
        x = torch.randn(n, size[0], device=device, generator=g)
        return x, (x @ teacher).argmax(1)

    batches = [samples(batch) for _ in range(steps + 1)]  # made up front, so the timing covers training only
    held_out = samples(16384)
    results = {mode: train(mode, device, size, batches, held_out, steps) for mode in modes}
    classes = size[3]
    chance = {"loss": math.log(classes), "accuracy": 1 / classes}  # a model that learned nothing: uniform guesses
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"MLP {size[0]} -> {size[2]}x{size[1]} -> {classes} classes, batch {batch}, {steps} steps on {name};"
          f" chance level: loss {chance['loss']:.3f}, accuracy {chance['accuracy']:.0%}")
    print(f"{'mode':6} {'ms/step':>9} {'vs fp32':>8} {'train loss':>11} {'held-out loss':>14} {'- fp32':>10}"
          f" {'accuracy':>9} {'grad scale':>11}")
    base = results["fp32"]
    for mode, r in results.items():
        scale = f"{r['grad_scale']:11.0f}" if r["grad_scale"] else f"{'-':>11}"
        print(f"{mode:6} {r['ms_per_step']:9.2f} {base['ms_per_step'] / r['ms_per_step']:7.2f}x {r['final_loss']:11.4f}"
              f" {r['eval_loss']:14.4f} {r['eval_loss'] - base['eval_loss']:+10.2e} {r['eval_accuracy']:9.1%} {scale}")
    with open("amp_step.json", "w") as f:
        json.dump({"device": name, "model": size, "batch": batch, "steps": steps, "chance": chance,
                   "results": results}, f, indent=1)
    # The comparison means something only if training worked: every format must end far from chance.
    assert all(r["eval_loss"] < chance["loss"] / 2 and r["eval_accuracy"] > 3 * chance["accuracy"]
               for r in results.values()), "a format did not learn the task: the comparison would be meaningless"


if __name__ == "__main__":
    main()
