"""Checkov custom policies for a shared GPU cluster: which manifests let a tenant reach GPUs, the host or the
GPU monitoring endpoints it should not. Load them with `checkov --external-checks-dir DIR` (01_policy_check.py does).

    CKV_GPU_1  privileged container outside the GPU Operator namespace (a privileged container sees every GPU)
    CKV_GPU_2  hostPath to GPU device nodes, /dev/null (the source of a forged device-list mount), the toolkit's
               device-list or CDI directories, or the driver root
    CKV_GPU_3  NVIDIA_VISIBLE_DEVICES set by a container that requests no GPU (any value but "void")
    CKV_GPU_4  a workload that requests GPUs in the GPU Operator namespace (operands never do: it is a tenant's)
    CKV_GPU_5  runtimeClassName nvidia (or nvidia-cdi, nvidia-legacy) outside the GPU Operator namespace
    CKV_GPU_6  DCGM ports 9400 (dcgm-exporter) or 5555 (nv-hostengine) on a node port, load balancer, external IP,
               hostPort, or in a hostNetwork pod (NetworkPolicy does not reliably apply to host-network pods)
    CKV_GPU_7  a NetworkPolicy that admits ingress to 9400 or 5555 (or, in the operator namespace, to every port)
               from every namespace or from anywhere

The GPU Operator namespaces are gpu-operator and nvidia-gpu-operator (OpenShift); set GPU_OPERATOR_NAMESPACES
(comma-separated) to name yours. Needs: pip install checkov
"""
import os
import posixpath

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

WORKLOADS = ("Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "ReplicationController", "Job",
             "CronJob", "PodTemplate")
GPU_RESOURCES = ("nvidia.com/gpu", "nvidia.com/mig-")  # nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-1g.10gb
DCGM_PORTS = {9400, 5555}
# Host paths that reach GPUs or the machinery that decides which GPUs a container gets.
GPU_HOST_PATHS = ("/dev/dri", "/dev/null", "/var/run/nvidia-container-devices", "/run/nvidia-container-devices",
                  "/etc/cdi", "/var/run/cdi", "/run/cdi", "/run/nvidia", "/var/run/nvidia", "/usr/local/nvidia",
                  "/etc/nvidia-container-runtime")
EVERYWHERE = {"0.0.0.0/0", "::/0"}
# Mounting one of these mounts all of the above with it.
ABOVE = {"/", "/dev", "/run", "/var", "/var/run", "/etc", "/usr", "/usr/local"}


def operator_namespaces() -> set[str]:
    names = os.environ.get("GPU_OPERATOR_NAMESPACES", "gpu-operator,nvidia-gpu-operator")
    return {n.strip() for n in names.split(",") if n.strip()}


def namespace(conf) -> str | None:
    return (conf.get("metadata") or {}).get("namespace")  # None: whatever namespace kubectl applies it to


def pod_spec(conf) -> dict:
    spec = conf.get("spec") or {}
    if conf.get("kind") == "Pod":
        return spec
    if conf.get("kind") == "PodTemplate":
        return (conf.get("template") or {}).get("spec") or {}
    if conf.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def containers(spec) -> list[dict]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []
            if isinstance(c, dict)]


def requests_gpu(container) -> bool:
    resources = container.get("resources") or {}
    asked = list((resources.get("limits") or {}).keys()) + list((resources.get("requests") or {}).keys())
    return any(str(name).startswith(GPU_RESOURCES) for name in asked)


def gpu_host_path(path: str) -> bool:
    path = posixpath.normpath("/" + path.strip())  # "/dev/./nvidia0", "/dev/", "dev/nvidia0" alike
    path = "/" + path.lstrip("/")  # normpath keeps a leading "//"
    if path in ABOVE or path.startswith("/dev/nvidia"):  # nvidia0, nvidiactl, nvidia-uvm, nvidia-caps/...
        return True
    return any(path == p or path.startswith(p + "/") for p in GPU_HOST_PATHS)


def ports(container) -> list[dict]:
    return [p for p in container.get("ports") or [] if isinstance(p, dict)]


class GpuCheck(BaseK8Check):
    def __init__(self, id, name, entities=WORKLOADS):
        super().__init__(name=name, id=id, categories=[CheckCategories.KUBERNETES], supported_entities=entities)

    def get_resource_id(self, conf) -> str:
        return f"{conf['kind']}.{namespace(conf) or 'default'}.{(conf.get('metadata') or {}).get('name')}"

    def tenant(self, conf) -> bool:
        return namespace(conf) not in operator_namespaces()


class PrivilegedOutsideOperator(GpuCheck):
    def __init__(self):
        super().__init__("CKV_GPU_1", "Privileged containers only in the GPU Operator namespace: a privileged "
                                      "container sees every GPU, whatever it requested")

    def scan_spec_conf(self, conf):
        if self.tenant(conf) and any((c.get("securityContext") or {}).get("privileged") is True
                                     for c in containers(pod_spec(conf))):
            return CheckResult.FAILED
        return CheckResult.PASSED


class GpuHostPath(GpuCheck):
    def __init__(self):
        super().__init__("CKV_GPU_2", "No hostPath to GPU device nodes, device-list, CDI or driver directories "
                                      "outside the GPU Operator namespace")

    def scan_spec_conf(self, conf):
        if not self.tenant(conf):
            return CheckResult.PASSED
        for volume in pod_spec(conf).get("volumes") or []:
            path = ((volume or {}).get("hostPath") or {}).get("path")
            if not isinstance(path, str):
                continue
            if gpu_host_path(path):
                return CheckResult.FAILED
        return CheckResult.PASSED


class VisibleDevicesWithoutGpu(GpuCheck):
    def __init__(self):
        super().__init__("CKV_GPU_3", "NVIDIA_VISIBLE_DEVICES only in containers that request a GPU (or set to "
                                      "void): the variable would hand out GPUs the scheduler never allocated")

    def scan_spec_conf(self, conf):
        if not self.tenant(conf):
            return CheckResult.PASSED
        for c in containers(pod_spec(conf)):
            for env in c.get("env") or []:
                if isinstance(env, dict) and env.get("name") == "NVIDIA_VISIBLE_DEVICES" and not requests_gpu(c):
                    if env.get("value") != "void" or "valueFrom" in env:
                        return CheckResult.FAILED
        return CheckResult.PASSED


class GpuWorkloadInOperatorNamespace(GpuCheck):
    def __init__(self):
        super().__init__("CKV_GPU_4", "No GPU-requesting workload in the GPU Operator namespace: operands get "
                                      "devices from the runtime, so a GPU request there is a tenant's pod")

    def scan_spec_conf(self, conf):
        if not self.tenant(conf) and any(requests_gpu(c) for c in containers(pod_spec(conf))):
            return CheckResult.FAILED
        return CheckResult.PASSED


class NvidiaRuntimeClassForTenants(GpuCheck):
    def __init__(self):
        super().__init__("CKV_GPU_5", "runtimeClassName nvidia only for GPU management pods in the GPU Operator "
                                      "namespace: that runtime honours NVIDIA_VISIBLE_DEVICES")

    def scan_spec_conf(self, conf):
        runtime = pod_spec(conf).get("runtimeClassName")
        if self.tenant(conf) and isinstance(runtime, str) and "nvidia" in runtime:
            return CheckResult.FAILED
        return CheckResult.PASSED


class DcgmPortsExposed(GpuCheck):
    def __init__(self):
        super().__init__("CKV_GPU_6", "DCGM ports 9400 and 5555 stay on the pod network: no node port, load "
                                      "balancer, external IP, hostPort or hostNetwork", WORKLOADS + ("Service",))

    def scan_spec_conf(self, conf):
        if conf.get("kind") == "Service":
            spec = conf.get("spec") or {}
            numbers = {p.get(k) for p in spec.get("ports") or [] if isinstance(p, dict) for k in ("port", "targetPort")}
            outside = spec.get("type") in ("NodePort", "LoadBalancer") or bool(spec.get("externalIPs"))
            return CheckResult.FAILED if outside and numbers & DCGM_PORTS else CheckResult.PASSED
        spec = pod_spec(conf)
        for c in containers(spec):
            serves = any(p.get("containerPort") in DCGM_PORTS for p in ports(c))
            if any(p.get("hostPort") in DCGM_PORTS for p in ports(c)) or (spec.get("hostNetwork") is True and serves):
                return CheckResult.FAILED
        return CheckResult.PASSED


class NetworkPolicyOpensDcgm(GpuCheck):
    def __init__(self):
        super().__init__("CKV_GPU_7", "No NetworkPolicy admits every namespace (or anywhere) to ports 9400 or 5555",
                         ("NetworkPolicy",))

    def scan_spec_conf(self, conf):
        spec = conf.get("spec") or {}
        in_operator = not self.tenant(conf)
        for rule in spec.get("ingress") or []:
            if not isinstance(rule, dict):
                continue
            numbers = {p.get("port") for p in rule.get("ports") or [] if isinstance(p, dict)}
            reaches = bool(numbers & DCGM_PORTS) or (not rule.get("ports") and in_operator)
            if reaches and self.from_everywhere(rule):
                return CheckResult.FAILED
        return CheckResult.PASSED

    @staticmethod
    def from_everywhere(rule) -> bool:
        peers = rule.get("from")
        if not peers:
            return True  # no `from`: every source
        for peer in peers:
            if not isinstance(peer, dict):
                continue
            selector = peer.get("namespaceSelector")
            if isinstance(selector, dict) and not (selector.get("matchLabels") or selector.get("matchExpressions")):
                return True  # namespaceSelector {}: every namespace (a tenant can label its own pods to match)
            if (peer.get("ipBlock") or {}).get("cidr") in EVERYWHERE:
                return True
        return False


CHECKS = [PrivilegedOutsideOperator(), GpuHostPath(), VisibleDevicesWithoutGpu(), GpuWorkloadInOperatorNamespace(),
          NvidiaRuntimeClassForTenants(), DcgmPortsExposed(), NetworkPolicyOpensDcgm()]
