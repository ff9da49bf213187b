"""Training steps marked with NVTX ranges, so Nsight Systems shows each phase by name on its timeline.

    nsys profile -t cuda,nvtx,osrt -o steps python 02_nvtx_ranges.py     # then: nsys stats steps.nsys-rep

Without a profiler attached the ranges cost almost nothing, so they can stay in training code.
Needs: a CUDA GPU, pip install torch
"""
import torch


def main():
    model = torch.nn.Sequential(torch.nn.Linear(4096, 4096), torch.nn.GELU(), torch.nn.Linear(4096, 4096)).cuda()
    optimizer = torch.optim.AdamW(model.parameters())
    # On the host, like a data loader's output with pin_memory=True: only from pinned (page-locked) memory is a
    # non_blocking=True copy sure to leave the host free; from pageable memory the driver stages the data first and
    # may hold the host while it does. Without non_blocking=True the host would wait for the whole queue.
    data = [torch.randn(256, 4096).pin_memory() for _ in range(8)]
    for step, batch in enumerate(data):
        torch.cuda.nvtx.range_push(f"step {step}")
        with torch.cuda.nvtx.range("copy to GPU"):
            batch = batch.cuda(non_blocking=True)
        with torch.cuda.nvtx.range("forward+backward"), torch.autocast("cuda", dtype=torch.bfloat16):
            model(batch).float().square().mean().backward()
        with torch.cuda.nvtx.range("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()
    print(f"{len(data)} steps on {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
