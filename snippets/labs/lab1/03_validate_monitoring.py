#!/usr/bin/env python3
"""Lab 1 monitoring validation: run the exporter and a real Prometheus, let it scrape, check with PromQL.

    python 03_validate_monitoring.py                      # beside 02_gpu_exporter.py, prometheus.yml, ...
    python 03_validate_monitoring.py --expect-alert GpuThermalSlowdown --report report.json

Everything runs on 127.0.0.1 on free ports, with the lab's prometheus.yml rewritten to scrape the exporter
every --interval seconds into a temporary storage directory; everything it starts is stopped at the end.
It checks: Prometheus scrapes the exporter, NVML works, every GPU answers with every core series in range,
the rules load and evaluate, the dashboard's queries are valid PromQL, and the alerts you expect (or none).
Exit status: 0 all checks passed, 1 a check failed, 2 the validation could not run.
Needs: prometheus on PATH (Debian/Ubuntu: apt install prometheus), pip install pyyaml, and what the exporter needs.
"""
import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
JOB = "gpu"
# Series every NVML GPU reports, with the range a sane value lies in.
CORE_SERIES = {
    "gpu_utilization_ratio": (0, 1),
    "gpu_memory_used_bytes": (0, None),
    "gpu_memory_total_bytes": (1, None),
    "gpu_temperature_celsius": (0, 130),
    "gpu_power_watts": (0, None),
    "gpu_power_limit_watts": (1, None),
    "gpu_sm_clock_hertz": (0, None),
    "gpu_sm_clock_max_hertz": (1, None),
    "gpu_clocks_event_reasons": (0, None),
}
OPTIONAL_SERIES = {
    "gpu_ecc_errors_total": "ECC counters (ECC is off, or the GPU has none)",
    "gpu_row_remap_pending": "row remapping (data-center GPUs from Ampere on)",
    "gpu_sm_active_ratio": "GPM SM activity (Hopper and later): use DCGM profiling metrics or Nsight instead",
}
HINTS = {
    "LibraryNotFound": "libnvidia-ml.so.1 is missing: install the NVIDIA driver (in a container: start it with "
                       "the NVIDIA runtime, e.g. docker run --gpus all)",
    "DriverNotLoaded": "the nvidia kernel module is not loaded: check `lsmod | grep nvidia` and dmesg",
    "LibRmVersionMismatch": "the driver was upgraded but the old kernel module is still loaded: reboot the node",
    "NoPermission": "NVML refused access: run the exporter as a user that can open /dev/nvidia*",
    "GpuIsLost": "the GPU fell off the bus (Xid 79 in dmesg): drain the node, then reset or replace the GPU",
}


class SetupError(Exception):
    """The validation cannot run (missing program, a process died); one line saying what to fix."""


class Report:
    def __init__(self):
        self.checks = []

    def add(self, status: str, check: str, detail: str = ""):
        self.checks.append({"status": status, "check": check, "detail": detail})
        print(f"{status:<5} {check}" + (f": {detail}" if detail else ""), flush=True)

    def check(self, ok: bool, check: str, detail_if_failed: str = "", detail: str = ""):
        self.add("PASS" if ok else "FAIL", check, detail if ok else detail_if_failed)
        return ok

    @property
    def failed(self) -> int:
        return sum(c["status"] == "FAIL" for c in self.checks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def lab_config(path: Path, exporter_port: int, interval: float) -> dict:
    """The lab's prometheus.yml, scraping only the local exporter, every `interval` seconds."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SetupError(f"{path}: cannot read it as YAML: {err}") from None
    if not isinstance(config, dict):
        raise SetupError(f"{path}: not a Prometheus configuration (a YAML mapping with scrape_configs)")
    jobs = [job for job in config.get("scrape_configs") or [] if job.get("job_name") == JOB]
    if not jobs:
        raise SetupError(f"{path}: add a scrape job named {JOB!r}: the rules and the dashboard select job=\"{JOB}\"")
    scrape = {k: v for k, v in jobs[0].items() if k not in ("static_configs", "scrape_interval", "scrape_timeout")}
    scrape["static_configs"] = [{"targets": [f"127.0.0.1:{exporter_port}"]}]
    every = duration(interval)
    return {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "rule_files": [str(path.resolve().parent / rule) for rule in config.get("rule_files") or []],
        "scrape_configs": [scrape],
    }


class Prometheus:
    def __init__(self, base: str):
        self.base = base

    def get(self, path: str, **params):
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            body = json.loads(err.read() or b"{}")
            raise ValueError(body.get("error", str(err))) from None
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict, float]]:
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]


def wait_until(condition, timeout: float, what: str, processes: dict):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, (process, log) in processes.items():
            if process.poll() is not None:
                tail = Path(log).read_text(errors="replace").strip().splitlines()[-5:]
                raise SetupError(f"{name} exited with status {process.returncode} while waiting for {what}: "
                                 + " | ".join(tail))
        try:
            if condition():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise SetupError(f"timed out after {timeout:g}s waiting for {what}")


def series_key(labels: dict) -> str:
    extra = {k: v for k, v in labels.items() if k not in ("__name__", "instance", "job", "gpu", "uuid")}
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(extra.items()))
    return labels.get("__name__", "") + (f"{{{inner}}}" if inner else "")


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable of a Grafana dashboard."""
    board = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f"panel {panel.get('title')!r} {target.get('refId', '')}".rstrip(), target["expr"]))
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else query or ""
        if variable.get("type") == "query" and text.startswith("label_values("):
            inner = text[len("label_values("):-1]
            series = inner.rsplit(",", 1)[0] if "," in inner else inner
            found.append((f"variable ${variable.get('name')}", series.strip()))
    return found


def fill_variables(expr: str, interval: float) -> str:
    for name, value in {"$__rate_interval": duration(4 * interval), "$__range": "1h", "$__interval": duration(interval),
                        "$instance": ".*", "$gpu": ".*"}.items():
        expr = expr.replace(name, value)
    return expr


def validate(prom: Prometheus, args, report: Report) -> dict:
    result = {"node": {}, "gpus": {}, "alerts": [], "dashboard": {}}
    up = prom.query(f'up{{job="{JOB}"}}')
    scrapes = prom.query(f'count_over_time(up{{job="{JOB}"}}[1h])')
    if report.check(bool(up) and up[0][1] == 1, "Prometheus scrapes the exporter",
                    f"up = {up[0][1] if up else 'missing'}; see {args.prometheus_base}/targets",
                    f"up = 1 after {int(scrapes[0][1]) if scrapes else 0} scrapes"):
        validate_gpus(prom, report, result)
    validate_rules(prom, args, report, result)
    return result


def validate_gpus(prom: Prometheus, report: Report, result: dict):
    for labels, value in prom.query(f'{{job="{JOB}"}}'):
        gpu = labels.get("gpu")
        if labels["__name__"].startswith("ALERTS"):
            continue
        if gpu and labels["__name__"] != "gpu_exporter_errors_total":
            result["gpus"].setdefault(gpu, {})[series_key(labels)] = value
        else:
            key = series_key(labels) + (f"[gpu={gpu}]" if gpu else "")
            result["node"][key] = value
    node = result["node"]
    errors = {k: v for k, v in node.items() if k.startswith("gpu_exporter_errors_total")}
    error_names = sorted({k.split('error="')[1].split('"')[0] for k in errors})
    hints = "; ".join(HINTS.get(name, name) for name in error_names)
    if not report.check(node.get("gpu_exporter_nvml_up") == 1, "NVML initialises in the exporter",
                        f"gpu_exporter_nvml_up = {node.get('gpu_exporter_nvml_up')}; errors: "
                        f"{', '.join(error_names) or 'none'}" + (f". {hints}" if hints else "")):
        return
    driver = next((labels for labels, _ in prom.query(f'gpu_driver_info{{job="{JOB}"}}')), {})
    gpus = sorted(result["gpus"], key=int)
    report.check(len(gpus) >= 1 and node.get("gpu_exporter_gpus") == len(gpus), "the exporter reports every GPU",
                 f"gpu_exporter_gpus = {node.get('gpu_exporter_gpus')}, GPUs with series: {len(gpus)}",
                 f"{len(gpus)} GPU(s), driver {driver.get('driver_version')}, CUDA {driver.get('cuda_driver_version')}")
    for gpu in gpus:
        values = result["gpus"][gpu]
        lost = any("GpuIsLost" in k and f"[gpu={gpu}]" in k for k in errors)
        if not report.check(values.get("gpu_up") == 1, f"GPU {gpu} answers NVML",
                            "gpu_up = 0" + (f"; {HINTS['GpuIsLost']}" if lost else "")):
            continue
        missing = [name for name in CORE_SERIES if name not in values]
        outside = [f"{name} = {values[name]:g}" for name, (low, high) in CORE_SERIES.items() if name in values
                   and not ((low is None or values[name] >= low) and (high is None or values[name] <= high))]
        if values.get("gpu_memory_used_bytes", 0) > values.get("gpu_memory_total_bytes", float("inf")):
            outside.append("gpu_memory_used_bytes > gpu_memory_total_bytes")
        report.check(not missing and not outside, f"GPU {gpu} core series present and in range",
                     "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                             f"out of range: {', '.join(outside)}" if outside else ""])),
                     f"{len(CORE_SERIES)} series")
        absent = [why for name, why in OPTIONAL_SERIES.items() if not any(k.startswith(name) for k in values)]
        for why in absent:
            report.add("INFO", f"GPU {gpu} has no {why.split(' (')[0]}", why)


def validate_rules(prom: Prometheus, args, report: Report, result: dict):
    groups = prom.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") not in ("ok", "unknown")]
    alerting = [r for r in rules if r["type"] == "alerting"]
    recording = [r for r in rules if r["type"] == "recording"]
    report.check(bool(rules) and not broken, "the rules load and evaluate",
                 "; ".join(broken) or "no rules loaded: add rule_files to prometheus.yml",
                 f"{len(recording)} recording and {len(alerting)} alerting rules in {len(groups)} groups")
    for rule in recording:
        if not prom.query(rule["name"]):
            report.add("INFO", f"recording rule {rule['name']} has no series yet")

    if not args.dashboard.is_file():
        report.add("INFO", f"no dashboard at {args.dashboard}: its queries are not checked")
    else:
        invalid, empty = [], []
        for where, expr in dashboard_queries(args.dashboard):
            try:
                rows = prom.query(fill_variables(expr, args.interval))
            except ValueError as err:
                invalid.append(f"{where}: {err}")
                continue
            result["dashboard"][where + ": " + expr] = len(rows)
            if not rows:
                empty.append(where)
        report.check(not invalid, f"the dashboard's queries are valid PromQL ({args.dashboard.name})",
                     "; ".join(invalid), f"{len(result['dashboard'])} queries")
        if empty:
            report.add("INFO", "dashboard queries without data now", ", ".join(empty))

    for alert in prom.get("/api/v1/alerts")["alerts"]:
        name = alert["labels"]["alertname"]
        result["alerts"].append({"name": name, "state": alert["state"], "labels": alert["labels"]})
        report.add("INFO", f"alert {name} is {alert['state']}", alert.get("annotations", {}).get("summary", ""))
    active = {a["name"] for a in result["alerts"]}
    for name in args.expect_alert:
        report.check(name in active, f"alert {name} is pending or firing", f"active alerts: {sorted(active) or 'none'}")
    if args.expect_quiet:
        report.check(not active, "no alert is pending or firing", f"active: {sorted(active)}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Validate the Lab 1 monitoring pipeline with a real Prometheus")
    parser.add_argument("--exporter", type=Path, default=HERE / "02_gpu_exporter.py")
    parser.add_argument("--config", type=Path, default=HERE / "prometheus.yml")
    parser.add_argument("--dashboard", type=Path, default=HERE / "grafana-dashboard.json")
    parser.add_argument("--prometheus", default="prometheus", help="the Prometheus server program")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls, scrapes and rule runs")
    parser.add_argument("--scrapes", type=int, default=3, help="scrapes to wait for before checking")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each step")
    parser.add_argument("--expect-alert", action="append", default=[], metavar="NAME",
                        help="fail unless this alert is pending or firing (repeatable)")
    parser.add_argument("--expect-quiet", action="store_true", help="fail if any alert is pending or firing")
    parser.add_argument("--report", type=Path, help="also write the checks and the values read as JSON here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))  # stop what we started, through the finally below

    report, started = Report(), {}
    with tempfile.TemporaryDirectory(prefix="lab1-validate-") as scratch:
        scratch = Path(scratch)
        try:
            prometheus_program = shutil.which(args.prometheus)
            if not prometheus_program:
                raise SetupError(f"{args.prometheus!r} not found: install Prometheus (Debian/Ubuntu: apt install "
                                 "prometheus) or pass --prometheus /path/to/prometheus")
            for path in (args.exporter, args.config):
                if not path.is_file():
                    raise SetupError(f"{path} not found: run this script beside the lab files or pass its path")
            exporter_port, prometheus_port = free_port(), free_port()
            config = scratch / "prometheus.yml"
            config.write_text(yaml.safe_dump(lab_config(args.config, exporter_port, args.interval)))
            args.prometheus_base = f"http://127.0.0.1:{prometheus_port}"

            def start(name, command):
                log = scratch / f"{name}.log"
                with open(log, "w") as out:
                    started[name] = (subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), log)

            start("exporter", [sys.executable, str(args.exporter), "--port", str(exporter_port),
                               "--interval", str(args.interval)])
            start("prometheus", [prometheus_program, f"--config.file={config}", f"--storage.tsdb.path={scratch / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"])
            print(f"exporter on 127.0.0.1:{exporter_port}, Prometheus on {args.prometheus_base}, "
                  f"every {args.interval:g}s", flush=True)
            prom = Prometheus(args.prometheus_base)
            wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{exporter_port}/metrics", timeout=2),
                       args.timeout, "the exporter's /metrics", started)
            wait_until(lambda: urllib.request.urlopen(f"{args.prometheus_base}/-/ready", timeout=2),
                       args.timeout, "Prometheus to be ready", started)
            wait_until(lambda: sum(v for _, v in prom.query(f'count_over_time(up{{job="{JOB}"}}[1h])')) >= args.scrapes,
                       args.timeout, f"{args.scrapes} scrapes", started)
            time.sleep(2 * args.interval)  # two more rule evaluations on the latest scrape
            result = validate(prom, args, report)
        except SetupError as err:
            print(f"ERROR {err}", file=sys.stderr)
            return 2
        finally:
            for process, _ in started.values():
                process.terminate()
            for process, _ in started.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    verdict = "PASS" if not report.failed else "FAIL"
    print(f"RESULT {verdict}: {len(report.checks)} checks, {report.failed} failed")
    if args.report:
        args.report.write_text(json.dumps({"result": verdict, "checks": report.checks, **result}, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
