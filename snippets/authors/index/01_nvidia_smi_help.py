"""Record what this nvidia-smi accepts: its --query-gpu and --query-compute-apps fields and its -q -d sections.

Runs `nvidia-smi --help-query-gpu`, `nvidia-smi --help-query-compute-apps` and `nvidia-smi -h`, and writes the
names they list to nvidia_smi_help.json (with the raw help texts), so the commands a page shows can be checked
against a real nvidia-smi.
"""
import json
import re
import subprocess
import sys


def run(*args: str) -> str:
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        sys.exit("nvidia-smi is not on PATH: run this on a machine with the NVIDIA driver installed")
    if done.returncode != 0:
        sys.exit(f"nvidia-smi {' '.join(args)} exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def quoted_names(help_text: str) -> list[str]:
    """Field names are the lines that hold only quoted names: `"pci.bus_id" or "gpu_bus_id"`."""
    names = []
    for line in help_text.splitlines():
        if re.fullmatch(r'\s*"[^"]+"(\s+or\s+"[^"]+")*\s*', line):
            names += re.findall(r'"([^"]+)"', line)
    return names


def display_sections(help_text: str) -> list[str]:
    """The -d/--display= section names, listed after `--display=` up to the sentence that ends the list."""
    match = re.search(r"--display=(.*?)(Flags can be combined|\n\s*-\w|\n\s*\n)", help_text, re.S)
    if not match:
        sys.exit("nvidia-smi -h does not describe --display=: cannot read its sections")
    return sorted(set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", match.group(1))))


def main() -> None:
    gpu_help, apps_help, general = run("--help-query-gpu"), run("--help-query-compute-apps"), run("-h")
    version = general.splitlines()[0].strip() if general else ""
    result = {
        "nvidia_smi": version,
        "query_gpu_fields": quoted_names(gpu_help),
        "query_compute_apps_fields": quoted_names(apps_help),
        "display_sections": display_sections(general),
        "help_query_gpu": gpu_help,
        "help_query_compute_apps": apps_help,
        "help": general,
    }
    if len(result["query_gpu_fields"]) < 20 or not result["display_sections"]:
        sys.exit("the help texts did not parse as expected: see nvidia_smi_help.json")
    with open("nvidia_smi_help.json", "w") as f:
        json.dump(result, f, indent=1)
    print(version)
    print(f"{len(result['query_gpu_fields'])} --query-gpu fields, {len(result['query_compute_apps_fields'])} "
          f"--query-compute-apps fields, -d sections: {', '.join(result['display_sections'])}")


if __name__ == "__main__":
    main()
