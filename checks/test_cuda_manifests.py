"""The CUDA chapter's Kubernetes files (snippets/cuda/kubernetes/): core kinds validated offline against the
Kubernetes 1.30 schemas with kubernetes-validate (strict: unknown fields fail); the device-plugin config inside
each ConfigMap and the GPU Operator Helm values checked here, by the rules of the k8s-device-plugin README and the
GPU Operator docs. Planted errors prove each check can fail."""
import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "snippets/cuda/kubernetes"
K8S = "1.30.0"
MIG_STRATEGIES = {"none", "single", "mixed"}
SHARED = {"nvidia.com/gpu"}  # plus nvidia.com/mig-<g>g.<mem>gb from the mixed strategy (time-slicing only)


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> dict[str, dict]:
    found = {}
    for path in sorted(FOLDER.glob("*.yaml")):
        for doc in documents(path):
            if "kind" in doc:
                found[f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def schema_errors(doc: dict) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [str(err.message)]
    return []


def plugin_config_errors(cfg) -> list[str]:
    """The device plugin's config file (README: configuration file, shared access to GPUs)."""
    if not isinstance(cfg, dict):
        return ["the config is not a YAML mapping"]
    errors = []
    if cfg.get("version") != "v1":
        errors.append("version must be v1")
    errors += [f"unknown top-level key {k!r}" for k in set(cfg) - {"version", "flags", "sharing", "resources", "imex"}]
    strategy = (cfg.get("flags") or {}).get("migStrategy", "none")
    if strategy not in MIG_STRATEGIES:
        errors.append(f"flags.migStrategy {strategy!r} is not one of none, single, mixed")
    sharing = cfg.get("sharing") or {}
    errors += [f"unknown sharing key {k!r}" for k in set(sharing) - {"timeSlicing", "mps"}]
    if "timeSlicing" in sharing and "mps" in sharing:
        errors.append("timeSlicing and mps are mutually exclusive")
    allowed = {"timeSlicing": {"renameByDefault", "failRequestsGreaterThanOne", "resources"},
               "mps": {"renameByDefault", "resources"}}
    for kind, spec in sharing.items():
        if kind not in allowed or not isinstance(spec, dict):
            continue
        errors += [f"unknown {kind} key {k!r}" for k in set(spec) - allowed[kind]]
        if kind == "timeSlicing" and spec.get("failRequestsGreaterThanOne") is not True:
            errors.append("timeSlicing: set failRequestsGreaterThanOne: true (a request for 2 shares gets no more GPU)")
        if kind == "mps" and strategy != "none":
            errors.append("mps sharing does not work with MIG: migStrategy must be none")
        resources = spec.get("resources")
        if not isinstance(resources, list) or not resources:
            errors.append(f"{kind}.resources: list at least one resource")
            continue
        for r in resources:
            name, replicas = r.get("name"), r.get("replicas")
            mig = kind == "timeSlicing" and isinstance(name, str) and name.startswith("nvidia.com/mig-")
            if name not in SHARED and not mig:
                errors.append(f"{kind}: resource {name!r} cannot be shared (nvidia.com/gpu"
                              f"{' or nvidia.com/mig-*' if kind == 'timeSlicing' else ''})")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2:
                errors.append(f"{kind}: {name} replicas {replicas!r} must be a whole number >= 2")
    return errors


def configmap_errors(doc: dict) -> list[str]:
    errors = []
    for key, text in (doc.get("data") or {}).items():
        try:
            cfg = yaml.safe_load(text)
        except yaml.YAMLError as err:
            errors.append(f"data.{key}: not YAML ({err.problem})")
            continue
        errors += [f"data.{key}: {e}" for e in plugin_config_errors(cfg)]
    return errors


def pod_gpu_errors(doc: dict) -> list[str]:
    """An extended resource is asked for under limits; requests, if present, must equal the limits."""
    errors = []
    for c in doc["spec"].get("containers", []):
        res = c.get("resources") or {}
        limit, request = (res.get("limits") or {}).get("nvidia.com/gpu"), (res.get("requests") or {}).get("nvidia.com/gpu")
        if limit is None:
            errors.append(f"container {c['name']}: no nvidia.com/gpu limit (a GPU is asked for under limits)")
        elif request is not None and request != limit:
            errors.append(f"container {c['name']}: nvidia.com/gpu requests must equal limits")
    return errors


def values_errors(values: dict, configmaps: dict) -> list[str]:
    """GPU Operator Helm values: known components, a device-plugin config that exists, a valid MIG strategy."""
    errors = []
    known = {"driver", "toolkit", "devicePlugin", "gfd", "dcgm", "dcgmExporter", "mig", "migManager", "nfd",
             "operator", "validator", "nodeStatusExporter", "cdi", "sandboxWorkloads", "daemonsets"}
    errors += [f"unknown top-level key {k!r}" for k in set(values) - known]
    config = (values.get("devicePlugin") or {}).get("config") or {}
    if config:
        cm = configmaps.get(config.get("name"))
        if cm is None:
            errors.append(f"devicePlugin.config.name {config.get('name')!r} is no ConfigMap beside the values")
        elif config.get("default") not in (cm.get("data") or {}):
            errors.append(f"devicePlugin.config.default {config.get('default')!r} is not a key of {config['name']}")
    strategy = (values.get("mig") or {}).get("strategy", "single")
    if strategy not in {"single", "mixed"}:
        errors.append(f"mig.strategy {strategy!r}: the operator takes single or mixed")
    for component in ("driver", "toolkit", "devicePlugin", "dcgmExporter"):
        enabled = (values.get(component) or {}).get("enabled", True)
        if not isinstance(enabled, bool):
            errors.append(f"{component}.enabled must be true or false")
    return errors


def configmaps_by_name() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in manifests().values() if d["kind"] == "ConfigMap"}


def values() -> dict:
    return documents(FOLDER / "gpu-operator-values.yaml")[0]


def test_every_file_is_checked():
    for path in FOLDER.glob("*.yaml"):
        docs = documents(path)
        assert docs, path
        assert all("kind" in d for d in docs) or path.name == "gpu-operator-values.yaml", path


@pytest.mark.parametrize("name", sorted(manifests()))
def test_core_kinds_validate_against_the_kubernetes_schema(name):
    assert schema_errors(manifests()[name]) == []


@pytest.mark.parametrize("name", sorted(configmaps_by_name()))
def test_device_plugin_configs_follow_the_plugin_rules(name):
    assert configmap_errors(configmaps_by_name()[name]) == []


def test_gpu_pod_asks_for_its_gpu_under_limits():
    pods = [d for d in manifests().values() if d["kind"] == "Pod"]
    assert pods and all(pod_gpu_errors(p) == [] for p in pods)


def test_operator_values():
    assert values_errors(values(), configmaps_by_name()) == []


# ---- planted errors: each check must reject a broken copy ----------------------------------------------------
def edited_config(name: str, edit) -> dict:
    cm = copy.deepcopy(configmaps_by_name()[name])
    cfg = yaml.safe_load(cm["data"]["any"])
    edit(cfg)
    cm["data"]["any"] = yaml.safe_dump(cfg)
    return cm


@pytest.mark.parametrize("name, edit, message", [
    ("time-slicing-config", lambda c: c["sharing"].update(mps={"resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}),
     "mutually exclusive"),
    ("time-slicing-config", lambda c: c["sharing"]["timeSlicing"].update(failRequestsGreaterThanOne=False),
     "failRequestsGreaterThanOne"),
    ("time-slicing-config", lambda c: c["sharing"]["timeSlicing"]["resources"][0].update(replicas=1), "replicas"),
    ("mps-config", lambda c: c["flags"].update(migStrategy="mixed"), "does not work with MIG"),
    ("mps-config", lambda c: c["sharing"]["mps"]["resources"][0].update(name="nvidia.com/mig-1g.10gb"),
     "cannot be shared"),
    ("mig-strategy-config", lambda c: c["flags"].update(migStrategy="multi"), "migStrategy"),
    ("mig-strategy-config", lambda c: c.update(version="v2"), "version must be v1"),
])
def test_planted_config_errors_are_caught(name, edit, message):
    errors = configmap_errors(edited_config(name, edit))
    assert any(message in e for e in errors), errors


def test_planted_schema_errors_are_caught():
    pod = copy.deepcopy(next(d for d in manifests().values() if d["kind"] == "Pod"))
    pod["spec"]["containers"][0]["resource"] = pod["spec"]["containers"][0].pop("resources")  # a typo
    assert schema_errors(pod)
    cm = copy.deepcopy(configmaps_by_name()["time-slicing-config"])
    cm["data"]["any"] = {"version": "v1"}  # data values must be strings
    assert schema_errors(cm)


def test_planted_pod_and_values_errors_are_caught():
    pod = copy.deepcopy(next(d for d in manifests().values() if d["kind"] == "Pod"))
    res = pod["spec"]["containers"][0]["resources"]
    res["requests"] = res.pop("limits")
    assert pod_gpu_errors(pod)
    broken = copy.deepcopy(values())
    broken["devicePlugin"]["config"]["name"] = "time-slicing"
    assert any("no ConfigMap" in e for e in values_errors(broken, configmaps_by_name()))
    broken = copy.deepcopy(values())
    broken["devicePlugin"]["config"]["default"] = "a100"
    assert any("not a key" in e for e in values_errors(broken, configmaps_by_name()))
    broken = copy.deepcopy(values())
    broken["mig"]["strategy"] = "none"
    assert values_errors(broken, configmaps_by_name())
