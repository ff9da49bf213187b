"""GitHub Actions workflows: every .github/workflows/*.yml validates against the workflow schema that
check-jsonschema ships (offline: --builtin-schema vendor.github-workflows), and publish.yml does what
docs/authors/releases.md promises."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflow_schema(workflow):
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(workflow)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{workflow.relative_to(ROOT)}:\n{proc.stdout}{proc.stderr}"


def test_publish_releases_one_cohort_at_a_time_and_never_forces():
    text = (ROOT / ".github" / "workflows" / "publish.yml").read_text(encoding="utf-8")
    wf = yaml.safe_load(text)
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on == {"push": {"tags": ["cohort-*"]}}
    assert wf["concurrency"]["cancel-in-progress"] is False and wf["concurrency"]["group"]
    assert wf["permissions"] == {"contents": "write"}
    steps = [s.get("run", "") for job in wf["jobs"].values() for s in job["steps"]]
    checks = next(i for i, run in enumerate(steps) if ".ci/run" in run or "make check" in run)
    rel = next(i for i, run in enumerate(steps) if "-m handbook.release" in run)
    assert checks < rel, "the checks must run before the release"
    assert '"${TAG#cohort-}"' in steps[rel] and "--push" in steps[rel]
    assert "--force" not in text and "push -f" not in text and "+gh-pages" not in text


def test_workflows_exist():
    assert any(w.name == "publish.yml" for w in WORKFLOWS), [w.name for w in WORKFLOWS]


def test_gpu_workflow_runs_every_shard_of_the_gpu_checks():
    """gpu.yml's matrix lists shards 1..N and each job passes --shard I/N with that N (issue 12)."""
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "gpu.yml").read_text(encoding="utf-8"))
    job = wf["jobs"]["gpu-checks"]
    shards = job["strategy"]["matrix"]["shard"]
    count = int(job["env"]["SHARDS"])
    assert shards == list(range(1, count + 1))
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert '--shard "${{ matrix.shard }}/$SHARDS"' in runs and "--gpu-runner" in runs
    assert wf["jobs"]["record"]["needs"] == "gpu-checks"
