"""`--shard I/N`: every block in exactly one shard, the shards balanced by the recorded durations."""
import types
from pathlib import Path

import pytest

from handbook.harness import blocks, sharding, shell_blocks
from test_harness import project, run, write  # noqa: F401 - `project` is a fixture

ROOT = Path(__file__).resolve().parent.parent


def handbook_items():
    """The real handbook's blocks, as items with the node ids the harness gives them."""
    items = []
    for page in blocks.pages(ROOT / "docs"):
        for block in blocks.parse_page(page):
            if block.checked or shell_blocks.runs(block):
                nodeid = f"{page.relative_to(ROOT).as_posix()}::L{block.line}"
                items.append(types.SimpleNamespace(nodeid=nodeid, block=block))
    return items


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_block_is_in_exactly_one_shard_and_the_shards_are_balanced(count):
    items = handbook_items()
    chosen = [sharding.select(items, index, count) for index in range(1, count + 1)]
    ids = [item.nodeid for part in chosen for item in part]
    assert sorted(ids) == sorted(item.nodeid for item in items)  # all of them, none twice
    loads = [sum(sharding.weight(item) for item in part) for part in chosen]
    longest = max(sharding.weight(item) for item in items)
    assert max(loads) - min(loads) <= longest  # greedy longest-first: no part exceeds another by more than one test


def test_recorded_durations_are_the_weights():
    items = handbook_items()
    recorded = [i for i in items if i.block.recorded and sharding.weight(i) not in
                (sharding.DEFAULT_GPU_SECONDS, sharding.DEFAULT_CPU_SECONDS)]
    gpu_unrecorded = [i for i in items if i.block.requires and sharding.weight(i) == sharding.DEFAULT_GPU_SECONDS]
    assert recorded or gpu_unrecorded  # the handbook has GPU work to split


def test_bad_shard_specs_are_refused():
    for spec in ("0/2", "3/2", "1-2", "a/b", "1/0"):
        with pytest.raises(ValueError, match="write I/N"):
            sharding.parse(spec)


def test_shards_of_a_pytest_run_partition_its_blocks(project):  # noqa: F811
    for n in range(5):
        write(project, f"docs/p{n}.md", f"# P{n}\n\n'''python\nprint({n})\n'''\n\n'''python requires=\"gpu\"\nprint(1)\n'''\n")
    seen = []
    for index in (1, 2, 3):
        result = run(project, "docs", "--collect-only", "-q", f"--shard={index}/3")
        assert result.returncode == 0, result.stdout + result.stderr
        seen += [line for line in result.stdout.splitlines() if "::L" in line]
    assert sorted(seen) == sorted(f"docs/p{n}.md::L{line}" for n in range(5) for line in (3, 7))
    ran = run(project, "docs", "--shard=1/3", "-n", "2")
    assert "unaccounted 0" in ran.stdout.split("blocks:")[-1] or ", 0 unaccounted" in ran.stdout, ran.stdout
    assert "other shards" in ran.stdout
    bad = run(project, "docs", "--shard=4/3")
    assert bad.returncode == 4 and "write I/N" in bad.stderr
