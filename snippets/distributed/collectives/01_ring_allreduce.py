"""Ring all-reduce, simulated step by step on n ranks in one process, counting what each rank sends.

Phase 1 (reduce-scatter): n-1 steps; each rank sends one chunk (1/n of the payload) to its right
neighbour, which adds it to its own copy. Afterwards rank r holds the full sum of chunk (r+1) mod n.
Phase 2 (all-gather): n-1 more steps pass the finished chunks around the ring.
"""
import torch


def ring_all_reduce(buffers):
    """Sum equal-length 1-D tensors the way a ring does; returns (results per rank, elements sent per rank)."""
    n = len(buffers)
    chunks = [list(b.clone().chunk(n)) for b in buffers]
    sent = [0] * n
    for step in range(n - 1):  # reduce-scatter
        messages = [(r, (r - step) % n, chunks[r][(r - step) % n].clone()) for r in range(n)]
        for r, c, data in messages:
            chunks[(r + 1) % n][c] += data
            sent[r] += data.numel()
    for step in range(n - 1):  # all-gather
        messages = [(r, (r + 1 - step) % n, chunks[r][(r + 1 - step) % n].clone()) for r in range(n)]
        for r, c, data in messages:
            chunks[(r + 1) % n][c] = data
            sent[r] += data.numel()
    return [torch.cat(c) for c in chunks], sent


numel = 8 * 1024
print(f"{'ranks':>5} {'steps':>6} {'sent per rank / payload':>24} {'2(n-1)/n':>9}")
for n in (2, 4, 8):
    buffers = [torch.randint(0, 100, (numel,)).double() for _ in range(n)]
    results, sent = ring_all_reduce(buffers)
    expected = torch.stack(buffers).sum(0)
    assert all(torch.equal(r, expected) for r in results), "ring result differs from the plain sum"
    assert len(set(sent)) == 1, "every rank should send the same amount"
    print(f"{n:>5} {2 * (n - 1):>6} {sent[0] / numel:>24.3f} {2 * (n - 1) / n:>9.3f}")
