"""A Kubernetes Pod for a one-node torchrun job, and a checker for the GPU mistakes that keep pods Pending.

Writes pod.json (kubectl apply -f pod.json accepts JSON as well as YAML).
"""
import json


def torchrun_pod(name, image, script, gpus, gpu_product=None, shm_gib=16):
    """One container, `gpus` whole GPUs, one torchrun worker per GPU."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "train",
                "image": image,
                "command": ["torchrun", "--standalone", f"--nproc-per-node={gpus}", script],
                "env": [{"name": "NCCL_DEBUG", "value": "WARN"}],
                "resources": {"limits": {"nvidia.com/gpu": gpus}},
                "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
            }],
            # NCCL and DataLoader workers use /dev/shm; a container runtime's default is small.
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib}Gi"}}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    if gpu_product:  # a label that GPU Feature Discovery puts on each GPU node
        pod["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": gpu_product}
    return pod


def gpu_problems(pod):
    """One line per problem with the GPU part of a Pod spec; empty when it is fine."""
    problems = []
    for c in pod["spec"]["containers"]:
        res = c.get("resources", {})
        limits, requests = res.get("limits", {}), res.get("requests", {})
        gpu_keys = {k for k in {**limits, **requests} if k == "nvidia.com/gpu" or k.startswith("nvidia.com/mig-")}
        for key in sorted(gpu_keys):
            if key not in limits:
                problems.append(f"{c['name']}: {key} in requests but not in limits: GPUs are set in limits")
            elif key in requests and requests[key] != limits[key]:
                problems.append(f"{c['name']}: {key} request {requests[key]} != limit {limits[key]}: make them equal")
            elif not isinstance(limits[key], int) or limits[key] < 1:
                problems.append(f"{c['name']}: {key} = {limits[key]!r}: whole devices only (1, 2, ...)")
        nproc = [a.split("=", 1)[1] for a in c.get("command", []) if a.startswith("--nproc-per-node=")]
        gpus = limits.get("nvidia.com/gpu")
        if nproc and isinstance(gpus, int) and nproc[0] != str(gpus):
            problems.append(f"{c['name']}: torchrun starts {nproc[0]} workers per node but the limit is {gpus} GPU(s)")
    return problems


pod = torchrun_pod("ddp-2gpu", "registry.example/lab3:latest", "/app/01_ddp_train.py", gpus=2,
                   gpu_product="NVIDIA-H100-80GB-HBM3")
assert gpu_problems(pod) == []
with open("pod.json", "w") as f:
    json.dump(pod, f, indent=2)
print(json.dumps(pod["spec"]["containers"][0]["resources"]), "-> wrote pod.json")

broken = torchrun_pod("broken", "registry.example/lab3:latest", "/app/01_ddp_train.py", gpus=2)
broken["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": 2}}
half = torchrun_pod("half", "registry.example/lab3:latest", "/app/01_ddp_train.py", gpus=2)
half["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 0.5}}
mismatch = torchrun_pod("mismatch", "registry.example/lab3:latest", "/app/01_ddp_train.py", gpus=2)
mismatch["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = 1
for bad in (broken, half, mismatch):
    found = gpu_problems(bad)
    assert found, f"{bad['metadata']['name']} should have been flagged"
    print(f"{bad['metadata']['name']}: " + "; ".join(found))
