"""The GPU policy check (snippets/security/device-access/01_policy_check.py with gpu_policies.py): one checkov run
over the hardened manifests, which must pass, and every insecure fixture, each of which must fail with exactly the
rule it was written for (its `# expect:` line); every manifest validates against the Kubernetes schema; the Helm
values use keys the charts have; bad input is one line and exit 2."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from handbook import ROOT, SNIPPETS

FOLDER = SNIPPETS / "security/device-access"
RUNNER = SNIPPETS / "security/device-access/01_policy_check.py"
POLICIES = SNIPPETS / "security/device-access/gpu_policies.py"
FIXTURES = ROOT / "checks/fixtures/security/manifests"
INSECURE = sorted(FIXTURES.glob("*.yaml"))
HARDENED = sorted(p for p in FOLDER.glob("*.yaml") if "values" not in p.name)
# The CUDA chapter's Kubernetes files must pass the same policies: its tenant workloads (the GPU pod, the Kueue and
# Volcano jobs) once named the nvidia runtime class, which the policies keep to GPU management namespaces. Its
# standalone dcgm-exporter lives in gpu-monitoring, a management namespace like the operator's.
CUDA_SETS = [SNIPPETS / "cuda" / folder for folder in ("kubernetes", "gang-scheduling", "dcgm-exporter")]
MANAGEMENT = ["gpu-operator", "nvidia-gpu-operator", "gpu-monitoring"]
K8S = "1.35.0"  # the oldest Kubernetes minor still supported, as read on 2026-12-06 (kubernetes.io/releases)


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN = load(RUNNER, "policy_check")


def expected(path: Path) -> set[str]:
    return set(re.match(r"# expect: (.+)", path.read_text())[1].replace(" ", "").split(","))


@pytest.fixture(scope="module")
def findings():
    """One checkov run: the hardened folder as one manifest set, each fixture as a set of its own."""
    namespaces = [arg for ns in MANAGEMENT for arg in ("--operator-namespace", ns)]
    done = subprocess.run([sys.executable, str(RUNNER), "--json", *namespaces, str(FOLDER), *map(str, CUDA_SETS),
                           *map(str, INSECURE)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    by_file = {}
    for f in json.loads(done.stdout):
        by_file.setdefault(Path(f["file"]).resolve(), set()).add(f["check_id"])
    return by_file


def test_the_hardened_manifests_pass(findings):
    assert not {f: ids for f, ids in findings.items() if f.parent == FOLDER.resolve()}


def test_the_cuda_chapters_kubernetes_files_pass(findings):
    cuda = {f: ids for f, ids in findings.items() if any(f.parent == d.resolve() for d in CUDA_SETS)}
    assert not cuda, cuda


@pytest.mark.parametrize("fixture", INSECURE, ids=lambda p: p.stem)
def test_each_insecure_fixture_fails_with_its_rule(findings, fixture):
    assert findings.get(fixture.resolve(), set()) == expected(fixture)


def test_every_rule_has_an_insecure_fixture():
    rules = {f"CKV_GPU_{n}" for n in range(1, 8)} | {"GPU_8", "GPU_9"}
    assert rules == set().union(*map(expected, INSECURE))


def test_manifests_validate_against_the_kubernetes_schema():
    errors = []
    for path in HARDENED + INSECURE:  # the insecure ones too: they must fail for their rule, not for a typo
        for doc in yaml.safe_load_all(path.read_text()):
            try:
                kubernetes_validate.validate(doc, K8S, strict=True)
            except kubernetes_validate.ValidationError as err:
                errors.append(f"{path.name}: {err.message}")
    assert not errors and len(HARDENED) == 3 and len(INSECURE) >= 24, errors


def test_planted_schema_errors_are_caught():
    pod = yaml.safe_load((FOLDER / "tenant-gpu-pod.yaml").read_text())
    pod["spec"]["containers"][0]["securityContext"]["privilged"] = False  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S, strict=True)


# ---- the rules, at unit level: neighbours of the fixtures -----------------------------------------------------------
POL = load(POLICIES, "gpu_policies_under_test")


def workload(spec: dict, namespace="team-a", kind="Pod") -> dict:
    return {"kind": kind, "metadata": {"name": "x", "namespace": namespace}, "spec": spec}


@pytest.mark.parametrize("path, flagged", [
    ("/dev/nvidia0", True), ("/dev/nvidia-uvm", True), ("/dev/nvidia-caps/nvidia-cap1", True), ("//dev/nvidiactl", True),
    ("/dev/./nvidia1", True), ("/dev/", True), ("/", True), ("/etc/cdi/", True), ("/var/run/cdi/nvidia.yaml", True),
    ("/run/nvidia/driver", True), ("/dev/null", True), ("/usr/local/nvidia/toolkit", True), ("/dev/dri/card0", True),
    ("/var/lib/kubelet/pod-resources", False), ("/data/datasets", False), ("/var/log", False), ("/etc/cdin", False),
])
def test_host_paths(path, flagged):
    assert POL.gpu_host_path(path) == flagged


@pytest.mark.parametrize("env, resources, namespace, result", [
    ({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}, {}, "team-a", "PASSED"),  # the documented opt-out
    ({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}, {"limits": {"nvidia.com/gpu": 1}}, "team-a", "PASSED"),
    ({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}, {"limits": {"nvidia.com/gpu.shared": 1}}, "team-a", "PASSED"),
    ({"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}, {}, "team-a", "FAILED"),  # toolkit < 1.18.2 gave all GPUs
    ({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}, {}, "gpu-operator", "PASSED"),  # operands may
    ({"name": "CUDA_VISIBLE_DEVICES", "value": "0"}, {}, "team-a", "PASSED"),
])
def test_visible_devices(env, resources, namespace, result):
    spec = {"containers": [{"name": "c", "image": "i", "env": [env], "resources": resources}]}
    assert POL.VisibleDevicesWithoutGpu().scan_spec_conf(workload(spec, namespace)).name == result


def test_operator_namespace_can_be_renamed(monkeypatch):
    spec = {"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": True}}]}
    check = POL.PrivilegedOutsideOperator()
    assert check.scan_spec_conf(workload(spec, "gpu-operator")).name == "PASSED"
    monkeypatch.setenv("GPU_OPERATOR_NAMESPACES", "nvidia-system")
    assert check.scan_spec_conf(workload(spec, "gpu-operator")).name == "FAILED"
    assert check.scan_spec_conf(workload(spec, "nvidia-system")).name == "PASSED"


@pytest.mark.parametrize("peer, result", [
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}, "PASSED"),
    ({"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "prometheus"}}}, "FAILED"),
    ({"ipBlock": {"cidr": "::/0"}}, "FAILED"),
    ({"ipBlock": {"cidr": "10.0.0.0/8"}}, "PASSED"),
])
def test_network_policy_peers(peer, result):
    policy = {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "monitoring"},
              "spec": {"podSelector": {}, "ingress": [{"from": [peer], "ports": [{"port": 9400}]}]}}
    assert POL.NetworkPolicyOpensDcgm().scan_spec_conf(policy).name == result


# ---- bad input: one line, exit 2, and no silent pass ----------------------------------------------------------------
@pytest.mark.parametrize("content, words", [
    (None, "no such file or directory"),
    ("kind: Pod\nmetadata: [\n", ":3: not valid YAML"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, words):
    path = tmp_path / "m.yaml"
    if content is not None:
        path.write_text(content)
    assert RUN.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err


def test_policies_that_did_not_load_fail_the_run(tmp_path, capsys, monkeypatch):
    (tmp_path / "pod.yaml").write_text((FIXTURES / "privileged-tenant-pod.yaml").read_text())
    monkeypatch.setattr(RUN, "run_checkov", lambda files, ns: ([], [], 0, "3.x"))  # checkov ran, no GPU policy did
    assert RUN.main([str(tmp_path)]) == 2
    assert "ran none of the GPU policies" in capsys.readouterr().err


def test_the_default_deny_rule_is_per_namespace(tmp_path):
    deny = yaml.safe_load_all((FOLDER / "gpu-operator-namespace.yaml").read_text())
    (tmp_path / "deny.yaml").write_text(yaml.safe_dump_all(deny))
    exporter = (FIXTURES / "exporter-without-default-deny.yaml").read_text()
    (tmp_path / "exporter.yaml").write_text(exporter.replace("namespace: monitoring", "namespace: gpu-operator"))
    assert RUN.cross_resource(sorted(tmp_path.glob("*.yaml"))) == []  # guarded in its own namespace
    (tmp_path / "exporter.yaml").write_text(exporter)  # monitoring has no default deny
    assert [f["check_id"] for f in RUN.cross_resource(sorted(tmp_path.glob("*.yaml")))] == ["GPU_8"]


# ---- Helm values: keys the charts have (read at NVIDIA/gpu-operator a22dbf67 and k8s-device-plugin 1b826acc) --------
OPERATOR_KEYS = {"psa.enabled", "cdi.enabled", "toolkit.env", "dcgm.enabled", "dcgmExporter.hostNetwork",
                 "dcgmExporter.service.internalTrafficPolicy"}
PLUGIN_KEYS = {"deviceListStrategy"}


def leaves(tree: dict, prefix="") -> set[str]:
    out = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out |= leaves(value, path + ".") if isinstance(value, dict) else {path}
    return out


def test_values_use_chart_keys():
    operator = yaml.safe_load((FOLDER / "gpu-operator-values.yaml").read_text())
    assert leaves(operator) <= OPERATOR_KEYS, leaves(operator) - OPERATOR_KEYS
    assert {e["name"]: e["value"] for e in operator["toolkit"]["env"]} == {
        "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED": "false"}
    plugin = yaml.safe_load((FOLDER / "device-plugin-values.yaml").read_text())
    assert leaves(plugin) <= PLUGIN_KEYS and plugin["deviceListStrategy"] in {"volume-mounts", "cdi-cri"}
