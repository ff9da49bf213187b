"""Smoke test of the exporter: start it, scrape /metrics once it has read NVML, print the GPU series, stop it."""
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def main():
    port = free_port()
    exporter = subprocess.Popen([sys.executable, str(HERE / "02_gpu_exporter.py"), "--port", str(port), "--interval", "1"])
    try:
        deadline = time.monotonic() + 30
        text = ""
        while "gpu_exporter_last_poll_timestamp_seconds " not in text:  # written after the first NVML poll
            if time.monotonic() > deadline or exporter.poll() is not None:
                raise SystemExit(f"the exporter did not serve a poll on port {port} within 30 s")
            time.sleep(0.5)
            text = scrape(port)
        time.sleep(2.5)  # a second poll, so GPM ratios (which need two samples) are there
        text = scrape(port)
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
    lines = [line for line in text.splitlines() if line.startswith("gpu_")]
    print("\n".join(lines))
    up = [line for line in lines if line.startswith("gpu_up{")]
    print(f"\n{len(lines)} gpu_* samples; GPUs up: {sum(line.endswith(' 1.0') for line in up)} of {len(up)}")


if __name__ == "__main__":
    main()
