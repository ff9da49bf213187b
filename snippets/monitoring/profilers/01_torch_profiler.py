"""Profile a few training steps with torch.profiler: which operators took the time, and a trace to open.

Runs on CPU; on a CUDA machine it also records the GPU kernels. Open the trace in https://ui.perfetto.dev
(or chrome://tracing).
Needs: pip install torch
"""
import json

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

    # Self time: the time in the operator itself, without the operators it called. Sorting by total time would
    # put wrappers (aten::linear) on top, whose cost is their children's. Annotation ranges (train_step,
    # ProfilerStep*, Optimizer.step#...) still top the GPU side: there they span every kernel they contain.
    sort_by = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    averages = prof.key_averages()
    print(averages.table(sort_by=sort_by, row_limit=8))
    prof.export_chrome_trace("trace.json")
    operators = [e for e in averages if not getattr(e, "is_user_annotation", False) and not e.key.startswith("ProfilerStep")]
    top = sorted(operators, key=lambda e: getattr(e, sort_by), reverse=True)[:3]
    with open("profile_top.json", "w") as f:
        json.dump({"device": device, "sort_by": sort_by,
                   "top_self_us": {e.key: getattr(e, sort_by) for e in top}}, f, indent=1)
    print(f"device {device}; sorted by {sort_by}; trace written to trace.json")


if __name__ == "__main__":
    main()
