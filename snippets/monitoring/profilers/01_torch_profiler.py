"""Profile a few training steps with torch.profiler: which operators took the time, and a trace to open.

Runs on CPU; on a CUDA machine it also records the GPU kernels. Open the trace in https://ui.perfetto.dev
(or chrome://tracing).
Needs: pip install torch
"""
import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 256)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batch = torch.randn(32, 256, device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])

    # wait 1 step, warm up 1 (profiled but discarded), record 3: the first steps pay one-time costs.
    with profile(activities=activities, schedule=schedule(wait=1, warmup=1, active=3)) as prof:
        for _ in range(5):
            with record_function("train_step"):  # a named range: shows up in the table and the trace
                optimizer.zero_grad()
                model(batch).square().mean().backward()
                optimizer.step()
            prof.step()

    sort_by = "cuda_time_total" if device == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort_by, row_limit=8))
    prof.export_chrome_trace("trace.json")
    print(f"device {device}; trace written to trace.json")


if __name__ == "__main__":
    main()
