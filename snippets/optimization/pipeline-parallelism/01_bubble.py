"""Pipeline bubbles, simulated: p stages (one per GPU), a batch split into m micro-batches, a forward taking
1 time unit per stage and micro-batch and a backward 2. Each stage runs its operations in a fixed order, starting
each as soon as its input is ready; the simulation gives the total time, each stage's idle share, and the most
micro-batches whose activations a stage holds at once.

GPipe runs all forwards, then all backwards; 1F1B (one forward, one backward) starts backwards as early as it
can. Compare the bubble with (p-1)/m, the idle time relative to the ideal time m·(tf+tb).
"""
import json

TF, TB = 1, 2


def gpipe(p, m, s):
    return [("F", j) for j in range(m)] + [("B", j) for j in range(m)]


def one_f_one_b(p, m, s):
    warm = min(p - s - 1, m)
    order = [("F", j) for j in range(warm)]
    for j in range(m - warm):
        order += [("F", warm + j), ("B", j)]
    return order + [("B", j) for j in range(m - warm, m)]


def simulate(schedule, p, m):
    done = {}  # (kind, stage, micro-batch) -> finish time
    clock, position = [0] * p, [0] * p
    orders = [schedule(p, m, s) for s in range(p)]
    held = [0] * p
    peak = [0] * p
    while any(position[s] < len(orders[s]) for s in range(p)):
        progressed = False
        for s in range(p):
            if position[s] == len(orders[s]):
                continue
            kind, j = orders[s][position[s]]
            needs = ("F", s - 1, j) if kind == "F" and s > 0 else ("B", s + 1, j) if kind == "B" and s < p - 1 else (
                ("F", s, j) if kind == "B" else None)
            if needs and needs not in done:
                continue  # its input is not computed yet; another stage moves first
            start = max(clock[s], done[needs] if needs else 0)
            clock[s] = done[(kind, s, j)] = start + (TF if kind == "F" else TB)
            held[s] += 1 if kind == "F" else -1
            peak[s] = max(peak[s], held[s])
            position[s] += 1
            progressed = True
        if not progressed:
            raise RuntimeError(f"{schedule.__name__}: the schedule deadlocks for p={p}, m={m}")
    total = max(clock)
    busy = m * (TF + TB)
    return {"total": total, "idle_share": (total - busy) / total, "bubble_vs_ideal": (total - busy) / busy,
            "peak_held": max(peak)}


def main():
    p = 4
    print(f"p = {p} stages; forward {TF}, backward {TB} time units per micro-batch and stage")
    print(f"{'m':>4} {'(p-1)/m':>8} | {'GPipe bubble':>12} {'idle share':>10} {'held':>5} | {'1F1B bubble':>11} {'held':>5}")
    rows = []
    for m in (1, 2, 4, 8, 16, 32):
        g, f = simulate(gpipe, p, m), simulate(one_f_one_b, p, m)
        rows.append({"m": m, "formula": (p - 1) / m, "gpipe": g, "1f1b": f})
        print(f"{m:4d} {(p - 1) / m:8.3f} | {g['bubble_vs_ideal']:12.3f} {g['idle_share']:10.1%} {g['peak_held']:5d} |"
              f" {f['bubble_vs_ideal']:11.3f} {f['peak_held']:5d}")
        for schedule in (g, f):  # same bubble for both: 1F1B saves memory, not time
            assert abs(schedule["bubble_vs_ideal"] - (p - 1) / m) < 1e-9
            assert abs(schedule["idle_share"] - (p - 1) / (m + p - 1)) < 1e-9
        assert f["peak_held"] <= min(p, m), "1F1B holds at most p micro-batches' activations"
    with open("pipeline_bubble.json", "w") as f:
        json.dump({"stages": p, "forward": TF, "backward": TB, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
