#!/usr/bin/env python3
"""Will Slurm give jobs exactly the GPUs they ask for, and only those? Checks slurm.conf, gres.conf, cgroup.conf
and batch scripts together, offline, by the rules of Slurm's documentation.

    python 02_slurm_gpu_check.py                       # the files beside this program
    python 02_slurm_gpu_check.py --dir /etc/slurm --script train.sbatch

Prints one line per problem (file, what is wrong, what to write) and OK when there is none. Exit status: 0 no
problem, 1 problems found, 2 a file is missing or cannot be read.
"""
import argparse
import re
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_conf(text: str) -> list[dict]:
    """slurm.conf/gres.conf/cgroup.conf lines as {key: value} dicts (keys lower-case; comments and blanks dropped)."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        pairs = {}
        for token in shlex.split(line):
            key, sep, value = token.partition("=")
            if not sep:
                raise ValueError(f"{raw.strip()!r}: expected KEY=VALUE")
            pairs[key.lower()] = value
        lines.append(pairs)
    return lines


def settings(lines: list[dict]) -> dict:
    """The single-key lines (GresTypes=gpu, ...): later lines win, as in Slurm."""
    out = {}
    for pairs in lines:
        if "nodename" not in pairs and "partitionname" not in pairs and "name" not in pairs:
            out.update(pairs)
    return out


def gpu_gres(spec: str) -> tuple[str | None, int] | None:
    """'gpu:h100:8' -> ('h100', 8); 'gpu:8' -> (None, 8); None when the spec has no gpu entry."""
    for item in spec.split(","):
        parts = item.split(":")
        if parts[0] == "gpu":
            count = int(parts[-1].split("(")[0]) if parts[-1].split("(")[0].isdigit() else 1
            return (parts[1] if len(parts) == 3 else None), count
    return None


def check_cluster(slurm: list[dict], gres: list[dict], cgroup: list[dict]) -> list[str]:
    problems = []
    conf, cg = settings(slurm), settings(cgroup)
    gres_settings = settings(gres)
    if "gpu" not in conf.get("grestypes", "").split(","):
        problems.append("slurm.conf: GresTypes does not list gpu: write GresTypes=gpu, or no node offers GPUs")
    if conf.get("selecttype", "") != "select/cons_tres":
        problems.append(f"slurm.conf: SelectType={conf.get('selecttype', '(unset)')}: write SelectType=select/cons_tres "
                        "(--gpus, --gpus-per-node and --gpus-per-task are rejected without it)")
    if "task/cgroup" not in conf.get("taskplugin", "").split(","):
        problems.append("slurm.conf: TaskPlugin lacks task/cgroup: cgroup.conf's constraints are not applied")
    if conf.get("proctracktype") != "proctrack/cgroup":
        problems.append("slurm.conf: ProctrackType is not proctrack/cgroup: processes can escape the job's cgroup")
    if cg.get("constraindevices", "no").lower() != "yes":
        problems.append("cgroup.conf: ConstrainDevices is not yes: CUDA_VISIBLE_DEVICES is advice, a job can open "
                        "every GPU of the node")
    if "gres/gpu" not in conf.get("accountingstoragetres", "").split(","):
        problems.append("slurm.conf: AccountingStorageTRES lacks gres/gpu: sacct and sreport show no GPU usage")
    autodetect = gres_settings.get("autodetect", "off")
    explicit = [g for g in gres if g.get("name") == "gpu"]
    nodes = [n for n in slurm if "nodename" in n and "gres" in n]
    gpu_nodes = [n for n in nodes if gpu_gres(n["gres"])]
    if not gpu_nodes:
        problems.append("slurm.conf: no NodeName line has Gres=gpu:...: slurmctld expects no GPU anywhere")
    if autodetect not in ("nvml", "nvidia") and not explicit:
        problems.append("gres.conf: neither AutoDetect=nvml nor Name=gpu File=... lines: slurmd cannot find the GPUs")
    for node in gpu_nodes:
        gpu_type, count = gpu_gres(node["gres"])
        files = [f for g in explicit for f in expand(g.get("file", ""))]
        if explicit and len(files) != count:
            problems.append(f"gres.conf: {len(files)} GPU device file(s) but slurm.conf's {node['nodename']} says "
                            f"Gres=gpu:...:{count}: slurmd drains the node")
        if gpu_type and explicit and any(g.get("type") not in (None, gpu_type) for g in explicit):
            problems.append(f"gres.conf: Type differs from slurm.conf's gpu:{gpu_type}")
    return problems


def expand(files: str) -> list[str]:
    """/dev/nvidia[0-7] -> /dev/nvidia0 ... /dev/nvidia7."""
    match = re.fullmatch(r"(.*)\[(\d+)-(\d+)\]", files)
    if match:
        return [f"{match[1]}{i}" for i in range(int(match[2]), int(match[3]) + 1)]
    return [f for f in files.split(",") if f]


def sbatch_options(text: str) -> dict:
    """#SBATCH --key=value (or --key value) lines as {key: value}."""
    options = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH"):
            words = shlex.split(line[len("#SBATCH"):])
            for i, word in enumerate(words):
                if word.startswith("--"):
                    key, sep, value = word[2:].partition("=")
                    options[key] = value if sep else (words[i + 1] if i + 1 < len(words) else "")
    return options


def check_script(name: str, text: str) -> list[str]:
    problems = []
    opts = sbatch_options(text)
    body = "\n".join(l for l in text.splitlines() if not l.startswith("#"))
    per_node = opts.get("gpus-per-node") or (opts.get("gres", "").split(":")[-1] if "gres" in opts else None)
    if "gpus-per-task" in opts or "--gpus-per-task" in body:
        if not any(k in opts for k in ("ntasks", "ntasks-per-node")):
            problems.append(f"{name}: --gpus-per-task without --ntasks or --ntasks-per-node (Slurm requires a task count)")
        if "allow-task-sharing" not in body:
            problems.append(f"{name}: --gpus-per-task and an srun without --gres-flags=allow-task-sharing: with "
                            "ConstrainDevices each task can open only its own GPU, and NCCL cannot reach the others")
    nproc = re.search(r"--nproc-per-node[= ](\d+)", body)
    if nproc:
        if per_node and per_node.isdigit() and nproc[1] != per_node:
            problems.append(f"{name}: torchrun starts {nproc[1]} workers per node, the job asks for {per_node} GPUs per node")
        if opts.get("ntasks-per-node", "1") != "1":
            problems.append(f"{name}: torchrun under srun with --ntasks-per-node={opts['ntasks-per-node']}: one "
                            "torchrun per node starts the workers; write --ntasks-per-node=1")
    if not (per_node or "gpus-per-task" in opts or "gpus" in opts):
        problems.append(f"{name}: asks for no GPU (--gpus-per-node, --gpus-per-task or --gres=gpu:N)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=HERE, help="where slurm.conf, gres.conf and cgroup.conf are")
    parser.add_argument("--script", type=Path, action="append", help="a batch script to check (repeatable)")
    args = parser.parse_args()
    scripts = args.script or sorted(HERE.glob("*.sbatch"))
    confs, texts = {}, {}
    for path in [args.dir / name for name in ("slurm.conf", "gres.conf", "cgroup.conf")] + list(scripts):
        try:
            text = path.read_text()
            if path.suffix == ".conf":
                confs[path.name] = parse_conf(text)
            else:
                texts[path.name] = text
        except OSError as err:
            flag = "--script" if path in scripts else "--dir"
            print(f"error: {flag}: cannot read {path}: {err.strerror}", file=sys.stderr)
            return 2
        except ValueError as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 2
    problems = check_cluster(confs["slurm.conf"], confs["gres.conf"], confs["cgroup.conf"])
    for name, text in texts.items():
        problems += check_script(name, text)
    for problem in problems:
        print(problem)
    print("OK: GPUs are declared, detected, constrained and requested consistently" if not problems
          else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
