"""Policy check for GPU manifests, for a cluster admin's CI: checkov with the GPU policies of gpu_policies.py, in
one checkov run over every manifest set you name.

    python 01_policy_check.py manifests/                  # a folder (or files): one cluster's manifests
    python 01_policy_check.py team-a/ team-b/ --json      # several sets, still one checkov run
    python 01_policy_check.py manifests/ --operator-namespace gpu-operator

Exit 0: every policy passes; 1: findings, one line each (FILE:LINE: ID Kind/namespace/name: what is wrong);
2: bad input (a missing path, a file that is not YAML) or checkov itself failed, in one line.
Besides checkov's CKV_GPU_1 to 7, two rules need more than one resource at a time, which checkov's Kubernetes
checks (one resource each) cannot see, so this program adds them from the same manifests:
  GPU_8  a namespace that runs a DCGM endpoint (port 9400 or 5555) has a NetworkPolicy selecting every pod for
         ingress (a default deny), so only what another policy allows reaches the endpoint;
  GPU_9  a checkov.io/skip annotation that silences a GPU policy (a tenant could write one) is itself a finding,
         unless --allow-skip-annotations.
Needs: pip install checkov (which brings pyyaml)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

POLICIES = Path(__file__).with_name("gpu_policies.py")
CHECK_IDS = [f"CKV_GPU_{n}" for n in range(1, 8)]
DCGM_PORTS = {9400, 5555}
SUFFIXES = (".yaml", ".yml")
POLICED = {"Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "ReplicationController", "Job", "CronJob",
           "PodTemplate", "Service", "NetworkPolicy"}


class BadInput(Exception):
    """One line: which file or path, and what is wrong with it."""


def manifest_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise BadInput(f"{path}: not a .yaml or .yml file")
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    raise BadInput(f"{path}: no such file or directory")


def documents(path: Path) -> list[tuple[int, dict]]:
    """(first line, document) for each Kubernetes object in a YAML file; documents without a kind are skipped."""
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: cannot read it ({err})") from None
    found = []
    try:
        while loader.check_node():
            node = loader.get_node()
            doc = loader.construct_document(node)
            if isinstance(doc, dict) and "kind" in doc:
                found.append((node.start_mark.line + 1, doc))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BadInput(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    finally:
        loader.dispose()
    return found


def pod_spec(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        return spec
    if doc["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def serves_dcgm(doc: dict) -> bool:
    if doc["kind"] == "Service":
        return any(isinstance(p, dict) and {p.get("port"), p.get("targetPort")} & DCGM_PORTS
                   for p in (doc.get("spec") or {}).get("ports") or [])
    return any(isinstance(p, dict) and p.get("containerPort") in DCGM_PORTS
               for c in (pod_spec(doc).get("containers") or []) if isinstance(c, dict) for p in c.get("ports") or [])


def default_deny(doc: dict) -> bool:
    spec = doc.get("spec") or {}
    return doc["kind"] == "NetworkPolicy" and spec.get("podSelector") == {} and "Ingress" in spec.get(
        "policyTypes", ["Ingress"])


def name_of(doc: dict) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc['kind']}/{meta.get('namespace', '(namespace unset)')}/{meta.get('name')}"


def cross_resource(files: list[Path]) -> list[dict]:
    """GPU_8 for one manifest set: DCGM endpoints in namespaces without a default-deny ingress policy."""
    docs = [(f, line, d) for f in files for line, d in documents(f)]
    guarded = {(d.get("metadata") or {}).get("namespace") for _, _, d in docs if default_deny(d)}
    return [{"check_id": "GPU_8", "file": str(f.resolve()), "line": line, "resource": name_of(d),
             "check_name": "a namespace that serves DCGM ports 9400 or 5555 has a default-deny ingress NetworkPolicy"}
            for f, line, d in docs if serves_dcgm(d) and (d.get("metadata") or {}).get("namespace") not in guarded]


def run_checkov(files: list[Path], operator_namespaces: list[str]) -> tuple[list, list, int, str]:
    """(failed, skipped, how many GPU policy results, checkov's version) of one checkov run over all files."""
    checkov = shutil.which("checkov") or shutil.which("checkov", path=str(Path(sys.executable).parent))
    if checkov is None:
        raise BadInput("checkov is not installed: pip install checkov")
    with tempfile.TemporaryDirectory(prefix="gpu-policies-") as policies:
        shutil.copy(POLICIES, policies)  # only the policies: checkov imports every .py in the folder
        Path(policies, "__init__.py").touch()  # checkov loads no check from a folder without one
        env = dict(os.environ, GPU_OPERATOR_NAMESPACES=",".join(operator_namespaces))
        command = [checkov, "--framework", "kubernetes", "--external-checks-dir", policies, "--check",
                   ",".join(CHECK_IDS), "--output", "json", "--compact", "--skip-download",
                   "--file", *map(str, files)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    try:
        reports = json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"checkov exited {done.returncode} without a report: {last}") from None
    reports = reports if isinstance(reports, list) else [reports]
    failed, skipped, ran, version = [], [], 0, "?"
    for report in reports:
        if not isinstance(report, dict):
            continue
        results, summary = report.get("results") or {}, report.get("summary") or report
        version = summary.get("checkov_version", version)
        failed += results.get("failed_checks", [])
        skipped += results.get("skipped_checks", [])
        ran += sum(r["check_id"] in CHECK_IDS for k in ("passed_checks", "failed_checks", "skipped_checks")
                   for r in results.get(k, []))
    return failed, skipped, ran, version


def finding(result: dict, why: str = "") -> dict:
    return {"check_id": result["check_id"], "file": result["file_abs_path"], "line": result["file_line_range"][0],
            "resource": result["resource"].replace(".", "/", 2), "check_name": why + result["check_name"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="GPU policy check (exit 0 pass, 1 findings, 2 bad input)")
    parser.add_argument("paths", nargs="+", help="manifest folders or files; each is one cluster's set")
    parser.add_argument("--operator-namespace", action="append", help="the GPU Operator namespace (repeatable;"
                        " default gpu-operator and nvidia-gpu-operator)")
    parser.add_argument("--allow-skip-annotations", action="store_true", help="honour checkov.io/skip annotations")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        sets = {p: manifest_files(Path(p)) for p in args.paths}
        files = sorted({f.resolve() for fs in sets.values() for f in fs})
        if not files:
            raise BadInput(f"{', '.join(args.paths)}: no .yaml or .yml files")
        findings = [f for fs in sets.values() for f in cross_resource(fs)]  # also proves every file parses
        checked = sum(d["kind"] in POLICED for f in files for _, d in documents(f))
        failed, skipped, ran, version = run_checkov(files, args.operator_namespace or ["gpu-operator",
                                                                                        "nvidia-gpu-operator"])
        if checked and not ran:  # a policy file that failed to load must not pass the cluster
            raise BadInput(f"checkov {version} ran none of the GPU policies on {checked} resource(s):"
                           f" {POLICIES.name} did not load (run checkov with LOG_LEVEL=DEBUG to see why)")
    except BadInput as err:
        print(f"policy check: {err}", file=sys.stderr)
        return 2
    findings += [finding(r) for r in failed]
    if not args.allow_skip_annotations:
        findings += [dict(finding(r, "silenced by a checkov.io/skip annotation: "), check_id="GPU_9")
                     for r in skipped if r["check_id"] in CHECK_IDS]
    findings.sort(key=lambda f: (f["file"], f["line"], f["check_id"]))
    if args.json:
        print(json.dumps(findings, indent=2))
    else:
        for f in findings:
            print(f"{os.path.relpath(f['file'])}:{f['line']}: {f['check_id']} {f['resource']}: {f['check_name']}")
        print(f"{len(findings)} finding(s) in {len(files)} file(s); checkov {version},"
              f" {time.monotonic() - started:.1f} s")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
