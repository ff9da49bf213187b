"""The CUDA chapter's Kubernetes files (snippets/cuda/{kubernetes,dcgm-exporter,gang-scheduling}/), offline.

Core kinds are validated against the Kubernetes 1.35 schemas with kubernetes-validate in strict mode (an unknown
field fails); pod templates inside custom resources (Volcano tasks) too, as PodTemplates. Custom resources (Kueue,
Volcano, ServiceMonitor) are validated against their projects' own CRD schemas, vendored in
checks/fixtures/crds/ with their source commit, with unknown fields rejected as the API server's pruning would
drop them. Then the rules that make the files work together, each from its project's documentation:

- device plugin: every configuration is a key of the ONE ConfigMap named by the operator's
  devicePlugin.config.name (the node label nvidia.com/device-plugin.config selects a key of it; README,
  "Updating Per-Node Configuration With a Node Label"); no key sets flags.migStrategy against the operator's
  mig.strategy (the operator passes MIG_STRATEGY, which overrides the file); MPS is refused under mixed;
- pods: GPUs under limits; a runtimeClassName names a RuntimeClass that exists; DRA claims resolve;
- Kueue: flavors, queues and quotas resolve, and a queued job fits its ClusterQueue's GPU quota;
- Volcano: gang = minAvailable equal to the replicas, volcano scheduler, a queue that exists;
- dcgm-exporter: pod-resources mounted, the Service selects the DaemonSet's pods, the ServiceMonitor selects the
  Service, its port and namespace, and scrapes no faster than the exporter collects; its counters hold every
  DCGM field the monitoring chapter's pages use.

Every rule has a planted failure below.
"""
import copy
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "snippets/cuda"
FOLDERS = ("kubernetes", "dcgm-exporter", "gang-scheduling")
CRDS = ROOT / "checks/fixtures/crds"
K8S = "1.35.0"  # the oldest Kubernetes minor still supported, as read on 2026-12-06 (kubernetes.io/releases)
OPERATOR_RUNTIME_CLASS = "nvidia"  # created by the GPU Operator (assets/pre-requisites/0200_runtime_class.yaml)
GPU = "nvidia.com/gpu"


# ---- loading ---------------------------------------------------------------------------------------------
def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load() -> dict[str, dict]:
    """'folder/file.yaml:Kind/namespace/name' -> object, for every manifest (the Helm values are not one)."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((SNIPPETS / folder).glob("*.yaml")):
            for doc in documents(path):
                if "kind" in doc:
                    meta = doc["metadata"]
                    found[f"{folder}/{path.name}:{doc['kind']}/{meta.get('namespace', '')}/{meta['name']}"] = doc
    return found


MANIFESTS = load()


def of_kind(objects: dict, kind: str) -> list[dict]:
    return [o for o in objects.values() if o["kind"] == kind]


def values() -> dict:
    return documents(SNIPPETS / "kubernetes/gpu-operator-values.yaml")[0]


# ---- schemas ---------------------------------------------------------------------------------------------
def crd(group: str, kind: str) -> dict | None:
    path = CRDS / f"{group}_{kind}.json"
    return json.loads(path.read_text()) if path.exists() else None


def unknown_fields(obj, schema: dict, where: str = "") -> list[str]:
    """Fields the schema does not declare (the API server prunes them silently: a typo is lost, not rejected)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-handbook-pod-template"):
        return []
    found = []
    if isinstance(obj, dict) and "properties" in schema:
        for key, value in obj.items():
            if key not in schema["properties"]:
                if where == "" and key in ("apiVersion", "kind", "metadata"):
                    continue
                found.append(f"{where}.{key}: unknown field")
            else:
                found += unknown_fields(value, schema["properties"][key], f"{where}.{key}")
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in obj.items():
            found += unknown_fields(value, schema["additionalProperties"], f"{where}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            found += unknown_fields(item, schema["items"], f"{where}[{i}]")
    return found


def pod_templates(obj: dict) -> list[dict]:
    """The pod templates inside a custom resource (Volcano tasks)."""
    if obj["kind"] == "Job" and obj["apiVersion"].startswith("batch.volcano.sh/"):
        return [t["template"] for t in obj["spec"].get("tasks", [])]
    return []


def schema_errors(obj: dict) -> list[str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    custom = crd(group, obj["kind"])  # a vendored CRD schema: a custom resource; else a Kubernetes kind
    if custom is None:
        try:
            kubernetes_validate.validate(obj, K8S, strict=True)
        except kubernetes_validate.ValidationError as err:
            return [f"{obj['kind']} {obj['metadata']['name']}: {err.message}"]
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{obj['apiVersion']} {obj['kind']}: no schema (neither Kubernetes {K8S} nor checks/fixtures/crds)"]
        return []
    if version not in custom["versions"]:
        return [f"{obj['kind']} {obj['metadata']['name']}: {obj['apiVersion']} is not served (served: {sorted(custom['versions'])})"]
    errors = []
    if version in custom["deprecated"]:
        errors.append(f"{obj['kind']} {obj['metadata']['name']}: {obj['apiVersion']} is deprecated")
    schema = custom["versions"][version]
    body = {k: v for k, v in obj.items() if k != "metadata"}
    validator = jsonschema.Draft7Validator({k: v for k, v in schema.items() if k != "properties"} |
                                           {"properties": {k: v for k, v in schema.get("properties", {}).items() if k != "metadata"}})
    errors += [f"{obj['kind']} {obj['metadata']['name']}: {e.json_path}: {e.message}" for e in validator.iter_errors(body)]
    errors += [f"{obj['kind']} {obj['metadata']['name']}: {e}" for e in unknown_fields(body, schema)]
    for template in pod_templates(obj):
        wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "task"}, "template": template}
        try:
            kubernetes_validate.validate(wrapper, K8S, strict=True)
        except kubernetes_validate.ValidationError as err:
            errors.append(f"{obj['kind']} {obj['metadata']['name']}: task template: {err.message}")
    return errors


# ---- pods ------------------------------------------------------------------------------------------------
def pod_specs(obj: dict) -> list[dict]:
    kind = obj["kind"]
    if kind == "Pod":
        return [obj["spec"]]
    if kind in ("DaemonSet", "Deployment", "StatefulSet") or (kind == "Job" and obj["apiVersion"] == "batch/v1"):
        return [obj["spec"]["template"]["spec"]]
    return [t["spec"] for t in pod_templates(obj)]


def gpus_per_pod(spec: dict) -> int:
    return sum(int((c.get("resources") or {}).get("limits", {}).get(GPU, 0)) for c in spec.get("containers", []))


def pod_errors(obj: dict, objects: dict) -> list[str]:
    errors = []
    runtime_classes = {r["metadata"]["name"] for r in of_kind(objects, "RuntimeClass")} | {OPERATOR_RUNTIME_CLASS}
    claim_templates = {(t["metadata"].get("namespace"), t["metadata"]["name"]) for t in of_kind(objects, "ResourceClaimTemplate")}
    name = f"{obj['kind']} {obj['metadata']['name']}"
    for spec in pod_specs(obj):
        rc = spec.get("runtimeClassName")
        if rc is not None and rc not in runtime_classes:
            errors.append(f"{name}: runtimeClassName {rc!r} names no RuntimeClass (pods stay in ContainerCreating)")
        pod_claims = {c["name"]: c for c in spec.get("resourceClaims", [])}
        for c in pod_claims.values():
            template = c.get("resourceClaimTemplateName")
            if template and (obj["metadata"].get("namespace"), template) not in claim_templates:
                errors.append(f"{name}: resourceClaimTemplateName {template!r} does not exist in its namespace")
        for c in spec.get("containers", []):
            res = c.get("resources") or {}
            limit, request = (res.get("limits") or {}).get(GPU), (res.get("requests") or {}).get(GPU)
            if request is not None and limit is None:
                errors.append(f"{name}: container {c['name']}: {GPU} in requests but not in limits")
            elif request is not None and request != limit:
                errors.append(f"{name}: container {c['name']}: {GPU} requests must equal limits")
            for claim in res.get("claims", []):
                if claim["name"] not in pod_claims:
                    errors.append(f"{name}: container {c['name']}: claim {claim['name']!r} is not in the pod's resourceClaims")
    return errors


# ---- device plugin and GPU Operator ------------------------------------------------------------------------
PLUGIN_KEYS = {"version", "flags", "sharing", "resources", "imex"}


def plugin_config_errors(key: str, cfg, operator_mig: str) -> list[str]:
    if not isinstance(cfg, dict):
        return [f"{key}: not a YAML mapping"]
    errors = []
    if cfg.get("version") != "v1":
        errors.append(f"{key}: version must be v1")
    errors += [f"{key}: unknown top-level key {k!r}" for k in sorted(set(cfg) - PLUGIN_KEYS)]
    mig = (cfg.get("flags") or {}).get("migStrategy")
    if mig is not None and mig != operator_mig:
        errors.append(f"{key}: flags.migStrategy {mig!r} is overridden by the operator's mig.strategy {operator_mig!r} "
                      "(MIG_STRATEGY): leave it out of the config")
    sharing = cfg.get("sharing") or {}
    errors += [f"{key}: unknown sharing key {k!r}" for k in sorted(set(sharing) - {"timeSlicing", "mps"})]
    if "timeSlicing" in sharing and "mps" in sharing:
        errors.append(f"{key}: timeSlicing and mps are mutually exclusive")
    if "mps" in sharing and (mig or operator_mig) == "mixed":
        errors.append(f"{key}: the plugin refuses MPS with the mixed MIG strategy")
    allowed = {"timeSlicing": {"renameByDefault", "failRequestsGreaterThanOne", "resources"},
               "mps": {"renameByDefault", "resources"}}
    for kind, spec in sharing.items():
        if kind not in allowed or not isinstance(spec, dict):
            continue
        errors += [f"{key}: unknown {kind} key {k!r}" for k in sorted(set(spec) - allowed[kind])]
        if kind == "timeSlicing" and spec.get("failRequestsGreaterThanOne") is not True:
            errors.append(f"{key}: timeSlicing: set failRequestsGreaterThanOne: true (2 shares buy no more GPU)")
        for r in spec.get("resources") or [None]:
            if not isinstance(r, dict):
                errors.append(f"{key}: {kind}.resources: list at least one resource")
                continue
            rname, replicas = r.get("name"), r.get("replicas")
            mig_resource = kind == "timeSlicing" and isinstance(rname, str) and rname.startswith("nvidia.com/mig-")
            if rname != GPU and not mig_resource:
                errors.append(f"{key}: {kind}: resource {rname!r} cannot be shared")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2:
                errors.append(f"{key}: {kind}: {rname} replicas {replicas!r} must be a whole number >= 2")
    return errors


def plugin_configmaps(objects: dict) -> list[dict]:
    """ConfigMaps whose data are device-plugin configs (a YAML mapping with version: v1 and plugin keys)."""
    found = []
    for cm in of_kind(objects, "ConfigMap"):
        for text in (cm.get("data") or {}).values():
            try:
                cfg = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(cfg, dict) and cfg.get("version") == "v1" and set(cfg) <= PLUGIN_KEYS:
                found.append(cm)
                break
    return found


def operator_errors(vals: dict, objects: dict) -> list[str]:
    errors = []
    known = {"driver", "toolkit", "devicePlugin", "gfd", "dcgm", "dcgmExporter", "mig", "migManager", "nfd",
             "operator", "validator", "nodeStatusExporter", "cdi", "sandboxWorkloads", "daemonsets", "psa"}
    errors += [f"unknown top-level key {k!r}" for k in sorted(set(vals) - known)]
    strategy = (vals.get("mig") or {}).get("strategy", "single")
    if strategy not in {"single", "mixed"}:
        errors.append(f"mig.strategy {strategy!r}: the operator takes single or mixed")
    config = (vals.get("devicePlugin") or {}).get("config") or {}
    selected = [cm for cm in plugin_configmaps(objects) if cm["metadata"]["name"] == config.get("name")]
    if not selected:
        errors.append(f"devicePlugin.config.name {config.get('name')!r} is no ConfigMap beside the values")
    else:
        data = selected[0].get("data") or {}
        if config.get("default") not in data:
            errors.append(f"devicePlugin.config.default {config.get('default')!r} is not a key of {config['name']}")
        for key, text in data.items():
            errors += plugin_config_errors(key, yaml.safe_load(text), strategy)
    for other in plugin_configmaps(objects):
        if other["metadata"]["name"] != config.get("name"):
            errors.append(f"ConfigMap {other['metadata']['name']} holds device-plugin configs that no node can "
                          f"select: the label nvidia.com/device-plugin.config picks a key of {config.get('name')!r} only")
    for component in ("driver", "toolkit", "devicePlugin", "dcgmExporter"):
        if not isinstance((vals.get(component) or {}).get("enabled", True), bool):
            errors.append(f"{component}.enabled must be true or false")
    return errors


def label_commands_errors(page: Path, vals: dict, objects: dict) -> list[str]:
    """Every `nvidia.com/device-plugin.config=KEY` a page tells readers to set must be a key of the ConfigMap."""
    name = vals["devicePlugin"]["config"]["name"]
    keys = set(next(cm for cm in of_kind(objects, "ConfigMap") if cm["metadata"]["name"] == name)["data"])
    return [f"{page.name}: nvidia.com/device-plugin.config={k}: no such key in {name} ({sorted(keys)})"
            for k in re.findall(r"nvidia\.com/device-plugin\.config=([a-z0-9][\w.-]*)", page.read_text()) if k not in keys]


# ---- Kueue, Volcano --------------------------------------------------------------------------------------------
def quantity(value) -> float:
    return float(str(value).rstrip("Gi").rstrip("m")) if value is not None else 0.0


def kueue_errors(objects: dict) -> list[str]:
    errors = []
    flavors = {f["metadata"]["name"] for f in of_kind(objects, "ResourceFlavor")}
    cqs = {q["metadata"]["name"]: q for q in of_kind(objects, "ClusterQueue")}
    lqs = {(q["metadata"]["namespace"], q["metadata"]["name"]): q for q in of_kind(objects, "LocalQueue")}
    gpu_quota = {}
    for name, cq in cqs.items():
        for group in cq["spec"].get("resourceGroups", []):
            covered = set(group["coveredResources"])
            for flavor in group["flavors"]:
                if flavor["name"] not in flavors:
                    errors.append(f"ClusterQueue {name}: flavor {flavor['name']!r} has no ResourceFlavor")
                listed = {r["name"] for r in flavor["resources"]}
                if listed != covered:
                    errors.append(f"ClusterQueue {name}: flavor {flavor['name']} lists {sorted(listed)}, "
                                  f"coveredResources are {sorted(covered)}")
                for r in flavor["resources"]:
                    if r["name"] == GPU:
                        gpu_quota[name] = gpu_quota.get(name, 0) + quantity(r["nominalQuota"])
    for (ns, name), lq in lqs.items():
        if lq["spec"]["clusterQueue"] not in cqs:
            errors.append(f"LocalQueue {ns}/{name}: clusterQueue {lq['spec']['clusterQueue']!r} does not exist")
    for obj in objects.values():
        queue = obj["metadata"].get("labels", {}).get("kueue.x-k8s.io/queue-name")
        if queue is None:
            continue
        lq = lqs.get((obj["metadata"].get("namespace"), queue))
        if lq is None:
            errors.append(f"{obj['kind']} {obj['metadata']['name']}: queue-name {queue!r} is no LocalQueue in its namespace")
            continue
        pods = obj["spec"].get("parallelism", 1) if obj["kind"] == "Job" else 1
        wanted = pods * sum(gpus_per_pod(s) for s in pod_specs(obj))
        quota = gpu_quota.get(lq["spec"]["clusterQueue"], 0)
        if wanted > quota:
            errors.append(f"{obj['kind']} {obj['metadata']['name']}: needs {wanted} GPUs at once, its ClusterQueue "
                          f"lends {quota:g}: never admitted")
    for cm in of_kind(objects, "ConfigMap"):
        text = (cm.get("data") or {}).get("controller_manager_config.yaml")
        if text is None:
            continue
        config = yaml.safe_load(text)
        if config.get("apiVersion") != "config.kueue.x-k8s.io/v1beta2" or config.get("kind") != "Configuration":
            errors.append(f"ConfigMap {cm['metadata']['name']}: not a config.kueue.x-k8s.io/v1beta2 Configuration")
        ready = config.get("waitForPodsReady")
        if not isinstance(ready, dict) or "timeout" not in ready:
            errors.append(f"ConfigMap {cm['metadata']['name']}: waitForPodsReady.timeout missing: no all-or-nothing start")
        else:
            errors += [f"ConfigMap {cm['metadata']['name']}: waitForPodsReady.{k}: unknown field" for k in
                       sorted(set(ready) - {"timeout", "blockAdmission", "requeuingStrategy", "recoveryTimeout"})]
    return errors


def volcano_errors(objects: dict) -> list[str]:
    errors = []
    queues = {q["metadata"]["name"] for q in of_kind(objects, "Queue")} | {"default"}
    for job in of_kind(objects, "Job"):
        if not job["apiVersion"].startswith("batch.volcano.sh/"):
            continue
        spec, name = job["spec"], job["metadata"]["name"]
        replicas = sum(t.get("replicas", 1) for t in spec.get("tasks", []))
        if spec.get("schedulerName") != "volcano":
            errors.append(f"Volcano Job {name}: schedulerName must be volcano, or the default scheduler places pods one by one")
        if spec.get("minAvailable") != replicas:
            errors.append(f"Volcano Job {name}: minAvailable {spec.get('minAvailable')} != {replicas} replicas: "
                          "a partial gang can hold GPUs while it waits for the rest")
        if spec.get("queue", "default") not in queues:
            errors.append(f"Volcano Job {name}: queue {spec.get('queue')!r} does not exist")
        if spec.get("maxRetry") == 0:  # Volcano's mutating webhook replaces 0 by DefaultMaxRetry (mutate_job.go)
            errors.append(f"Volcano Job {name}: maxRetry 0 is not 'never restart': Volcano's webhook turns it into 3")
    return errors


# ---- dcgm-exporter ------------------------------------------------------------------------------------------
def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def exporter_errors(objects: dict) -> list[str]:
    errors = []
    ds = next(d for d in of_kind(objects, "DaemonSet") if d["metadata"]["name"] == "dcgm-exporter")
    pod = ds["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    if env.get("DCGM_EXPORTER_KUBERNETES") == "true" and "/var/lib/kubelet/pod-resources" not in mounts:
        errors.append("dcgm-exporter: DCGM_EXPORTER_KUBERNETES without the kubelet's pod-resources mount: no pod labels")
    if "SYS_ADMIN" not in container.get("securityContext", {}).get("capabilities", {}).get("add", []):
        errors.append("dcgm-exporter: without SYS_ADMIN the DCGM_FI_PROF_* fields are not collected")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    service = next(s for s in of_kind(objects, "Service") if s["metadata"]["name"] == "dcgm-exporter")
    if not selects(service["spec"].get("selector", {}), pod["metadata"]["labels"]):
        errors.append("Service dcgm-exporter: its selector matches no dcgm-exporter pod")
    for p in service["spec"]["ports"]:
        if p.get("targetPort") not in ports and p.get("targetPort") not in ports.values():
            errors.append(f"Service dcgm-exporter: targetPort {p.get('targetPort')!r} is no container port")
    interval_s = int(env.get("DCGM_EXPORTER_INTERVAL") or 30000) / 1000
    for sm in of_kind(objects, "ServiceMonitor"):
        spec = sm["spec"]
        if not selects(spec["selector"].get("matchLabels", {}), service["metadata"].get("labels", {})):
            errors.append(f"ServiceMonitor {sm['metadata']['name']}: selector matches no dcgm-exporter Service")
        namespaces = spec.get("namespaceSelector", {}).get("matchNames", [sm["metadata"]["namespace"]])
        if service["metadata"]["namespace"] not in namespaces:
            errors.append(f"ServiceMonitor {sm['metadata']['name']}: namespaceSelector leaves out {service['metadata']['namespace']}")
        names = {p["name"] for p in service["spec"]["ports"]}
        for ep in spec["endpoints"]:
            if ep.get("port") not in names:
                errors.append(f"ServiceMonitor {sm['metadata']['name']}: endpoint port {ep.get('port')!r} is no Service port name")
            scrape = float(str(ep.get("interval", "30s")).rstrip("s"))
            if scrape < interval_s:
                errors.append(f"ServiceMonitor {sm['metadata']['name']}: scrapes every {scrape:g} s, the exporter "
                              f"collects every {interval_s:g} s: samples repeat")
    return errors


def counters(objects: dict) -> set[str]:
    cm = next(c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "dcgm-exporter-counters")
    return {line.split(",")[0].strip() for line in cm["data"]["counters.csv"].splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


def fields_the_monitoring_chapter_uses() -> set[str]:
    text = "".join(p.read_text() for p in (ROOT / "docs/monitoring").glob("*.md"))
    return set(re.findall(r"DCGM_FI_(?:DEV|PROF)_[A-Z_]+[A-Z]", text))


# ---- the checks ----------------------------------------------------------------------------------------------
def test_every_file_is_checked():
    for folder in FOLDERS:
        for path in (SNIPPETS / folder).glob("*.yaml"):
            docs = documents(path)
            assert docs and (all("kind" in d for d in docs) or path.name == "gpu-operator-values.yaml"), path


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_manifest_validates_against_its_schema(name):
    assert schema_errors(MANIFESTS[name]) == []


def test_pods_ask_for_gpus_right_and_name_what_exists():
    found = [e for o in MANIFESTS.values() for e in pod_errors(o, MANIFESTS)]
    assert found == []


def test_device_plugin_configs_and_operator_values_work_together():
    assert operator_errors(values(), MANIFESTS) == []
    # Every page that tells readers to label a node for a device-plugin configuration names a key of the ONE
    # ConfigMap (the scheduling page once showed a ConfigMap of its own, with a key no node could select).
    for page in ("docs/cuda/kubernetes.md", "docs/distributed/scheduling.md", "docs/security/isolation.md"):
        assert label_commands_errors(ROOT / page, values(), MANIFESTS) == [], page


def test_kueue_and_volcano_objects_resolve_and_fit():
    assert kueue_errors(MANIFESTS) == [] and volcano_errors(MANIFESTS) == []


def test_dcgm_exporter_wiring():
    assert exporter_errors(MANIFESTS) == []


def test_the_exporter_collects_every_field_the_monitoring_chapter_uses():
    used = fields_the_monitoring_chapter_uses()
    assert len(used) >= 5, used  # the pages do name fields; an empty set would prove nothing
    assert used <= counters(MANIFESTS), used - counters(MANIFESTS)


# ---- planted errors: each rule rejects a broken copy --------------------------------------------------------
def broken(edit) -> dict:
    objects = copy.deepcopy(MANIFESTS)
    edit(objects)
    return objects


def obj(objects: dict, kind: str, name: str) -> dict:
    return next(o for o in objects.values() if o["kind"] == kind and o["metadata"]["name"] == name)


def plugin_cm(objects: dict) -> dict:
    return obj(objects, "ConfigMap", "device-plugin-config")


def set_config(objects: dict, key: str, edit):
    cfg = yaml.safe_load(plugin_cm(objects)["data"][key])
    edit(cfg)
    plugin_cm(objects)["data"][key] = yaml.safe_dump(cfg)


def split_mps(objects: dict):
    """The defect of the old files: the MPS config in a ConfigMap of its own, which no node label can select."""
    cm = copy.deepcopy(plugin_cm(objects))
    cm["metadata"]["name"] = "mps-config"
    cm["data"] = {"any": plugin_cm(objects)["data"].pop("mps")}
    objects["planted:ConfigMap/mps-config"] = cm


@pytest.mark.parametrize("edit, vals_edit, message", [
    (split_mps, None, "no node can select"),
    (lambda o: set_config(o, "time-slicing", lambda c: c.update(flags={"migStrategy": "mixed"})), None,
     "overridden by the operator's mig.strategy"),
    (None, lambda v: v["mig"].update(strategy="mixed"), "refuses MPS with the mixed MIG strategy"),
    (lambda o: set_config(o, "time-slicing", lambda c: c["sharing"].update(mps={"resources": [{"name": GPU, "replicas": 2}]})),
     None, "mutually exclusive"),
    (lambda o: set_config(o, "time-slicing", lambda c: c["sharing"]["timeSlicing"].update(failRequestsGreaterThanOne=False)),
     None, "failRequestsGreaterThanOne"),
    (lambda o: set_config(o, "mps", lambda c: c["sharing"]["mps"]["resources"][0].update(replicas=1)), None, "replicas"),
    (lambda o: set_config(o, "mps", lambda c: c["sharing"]["mps"]["resources"][0].update(name="nvidia.com/mig-1g.10gb")),
     None, "cannot be shared"),
    (lambda o: set_config(o, "default", lambda c: c.update(version="v2")), None, "version must be v1"),
    (None, lambda v: v["devicePlugin"]["config"].update(name="time-slicing-config"), "is no ConfigMap"),
    (None, lambda v: v["devicePlugin"]["config"].update(default="any"), "is not a key"),
    (None, lambda v: v["mig"].update(strategy="none"), "single or mixed"),
])
def test_planted_device_plugin_and_operator_errors_are_caught(edit, vals_edit, message):
    objects = broken(edit) if edit else copy.deepcopy(MANIFESTS)
    vals = copy.deepcopy(values())
    if vals_edit:
        vals_edit(vals)
    errors = operator_errors(vals, objects)
    assert any(message in e for e in errors), errors


def test_a_page_label_naming_no_key_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("$ kubectl label node N nvidia.com/device-plugin.config=any --overwrite\n")
    assert label_commands_errors(page, values(), MANIFESTS)


@pytest.mark.parametrize("edit, message", [
    (lambda o: obj(o, "Pod", "gpu-check")["spec"]["containers"][0].update(resource={}), "'resource' was unexpected"),
    (lambda o: obj(o, "DaemonSet", "dcgm-exporter")["spec"]["template"]["spec"].update(hostNetwrok=True), "hostNetwrok"),
    (lambda o: obj(o, "ClusterQueue", "gpu-training")["spec"].update(cohortt="x"), "unknown field"),
    (lambda o: obj(o, "ClusterQueue", "gpu-training")["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2].pop("nominalQuota"),
     "nominalQuota"),
    (lambda o: obj(o, "ClusterQueue", "gpu-training").update(apiVersion="kueue.x-k8s.io/v1beta1"), "deprecated"),
    (lambda o: obj(o, "Queue", "gpu-training")["spec"].update(weigth=1), "unknown field"),
    (lambda o: volcano_job(o)["spec"]["tasks"][0]["template"]["spec"].update(restartPolicyy="Never"), "task template"),
    (lambda o: obj(o, "ServiceMonitor", "dcgm-exporter")["spec"]["endpoints"][0].update(intervall="15s"), "unknown field"),
    (lambda o: obj(o, "ResourceClaimTemplate", "one-h100")["spec"]["spec"]["devices"]["requests"][0].update(
        deviceClassName="gpu.nvidia.com"), "deviceClassName"),  # the v1beta1 shape under v1
])
def test_planted_schema_errors_are_caught(edit, message):
    objects = broken(edit)
    errors = [e for key, o in objects.items() if o != MANIFESTS[key] for e in schema_errors(o)]  # the edited one
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("edit, message", [
    (lambda o: obj(o, "Pod", "gpu-check")["spec"].update(runtimeClassName="nvidia-cdi"), "names no RuntimeClass"),
    (lambda o: obj(o, "Pod", "gpu-check")["spec"]["containers"][0]["resources"].update(requests={GPU: 2}), "must equal"),
    (lambda o: obj(o, "Pod", "dra-gpu-check")["spec"]["resourceClaims"][0].update(resourceClaimTemplateName="one-a100"),
     "does not exist"),
    (lambda o: obj(o, "Pod", "dra-gpu-check")["spec"]["containers"][0]["resources"]["claims"][0].update(name="gpus"),
     "not in the pod's resourceClaims"),
])
def test_planted_pod_errors_are_caught(edit, message):
    objects = broken(edit)
    errors = [e for o in objects.values() for e in pod_errors(o, objects)]
    assert any(message in e for e in errors), errors


def kueue_job(objects):
    return next(j for j in of_kind(objects, "Job") if j["apiVersion"] == "batch/v1")


def volcano_job(objects):
    return next(j for j in of_kind(objects, "Job") if j["apiVersion"].startswith("batch.volcano"))


@pytest.mark.parametrize("edit, message", [
    (lambda o: kueue_job(o)["spec"].update(parallelism=5), "never admitted"),
    (lambda o: kueue_job(o)["metadata"]["labels"].update({"kueue.x-k8s.io/queue-name": "team-b"}), "no LocalQueue"),
    (lambda o: obj(o, "LocalQueue", "team-a")["spec"].update(clusterQueue="gpu"), "does not exist"),
    (lambda o: obj(o, "ClusterQueue", "gpu-training")["spec"]["resourceGroups"][0]["flavors"][0].update(name="a100"),
     "has no ResourceFlavor"),
    (lambda o: obj(o, "ClusterQueue", "gpu-training")["spec"]["resourceGroups"][0]["coveredResources"].remove(GPU),
     "coveredResources"),
    (lambda o: obj(o, "ConfigMap", "kueue-manager-config")["data"].update(
        {"controller_manager_config.yaml": "apiVersion: config.kueue.x-k8s.io/v1beta2\nkind: Configuration\n"}),
     "waitForPodsReady.timeout missing"),
    (lambda o: obj(o, "ConfigMap", "kueue-manager-config")["data"].update(
        {"controller_manager_config.yaml": "apiVersion: config.kueue.x-k8s.io/v1beta2\nkind: Configuration\n"
                                           "waitForPodsReady: {enable: true, timeout: 5m}\n"}),
     "waitForPodsReady.enable: unknown field"),  # v1beta1's field, gone from v1beta2
])
def test_planted_kueue_errors_are_caught(edit, message):
    errors = kueue_errors(broken(edit))
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("edit, message", [
    (lambda o: volcano_job(o)["spec"].update(minAvailable=1), "partial gang"),
    (lambda o: volcano_job(o)["spec"].pop("schedulerName"), "schedulerName must be volcano"),
    (lambda o: volcano_job(o)["spec"].update(queue="gpu"), "does not exist"),
    (lambda o: volcano_job(o)["spec"].update(maxRetry=0), "webhook turns it into 3"),
])
def test_planted_volcano_errors_are_caught(edit, message):
    errors = volcano_errors(broken(edit))
    assert any(message in e for e in errors), errors


def ds_container(objects):
    return obj(objects, "DaemonSet", "dcgm-exporter")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("edit, message", [
    (lambda o: ds_container(o)["volumeMounts"].pop(0), "pod-resources"),
    (lambda o: ds_container(o)["securityContext"]["capabilities"].update(add=[]), "SYS_ADMIN"),
    (lambda o: obj(o, "Service", "dcgm-exporter")["spec"].update(selector={"app": "dcgm"}), "matches no dcgm-exporter pod"),
    (lambda o: obj(o, "ServiceMonitor", "dcgm-exporter")["spec"]["endpoints"][0].update(port="http"), "no Service port name"),
    (lambda o: obj(o, "ServiceMonitor", "dcgm-exporter")["spec"].update(namespaceSelector={"matchNames": ["default"]}),
     "leaves out gpu-monitoring"),
    (lambda o: obj(o, "ServiceMonitor", "dcgm-exporter")["spec"]["endpoints"][0].update(interval="5s"), "samples repeat"),
    (lambda o: obj(o, "ServiceMonitor", "dcgm-exporter")["spec"]["selector"].update(matchLabels={"app": "x"}),
     "matches no dcgm-exporter Service"),
])
def test_planted_exporter_errors_are_caught(edit, message):
    errors = exporter_errors(broken(edit))
    assert any(message in e for e in errors), errors


def test_a_counter_list_missing_a_field_the_pages_use_is_caught():
    objects = copy.deepcopy(MANIFESTS)
    cm = obj(objects, "ConfigMap", "dcgm-exporter-counters")
    cm["data"]["counters.csv"] = "\n".join(l for l in cm["data"]["counters.csv"].splitlines() if "SM_ACTIVE" not in l)
    assert not fields_the_monitoring_chapter_uses() <= counters(objects)
