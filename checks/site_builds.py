"""The strict MkDocs build that several checks read, with its errors in one assertion message."""
import subprocess
import sys
from pathlib import Path

from handbook import ROOT, site_crawl


def strict_build(config: str, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / config),
                           "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**site_crawl.git_env(), "NO_MKDOCS_2_WARNING": "1"})
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("ERROR", "WARNING"))]
    assert proc.returncode == 0, f"the strict build of {config} failed: {errors[:3] or proc.stderr[-2000:]}"
    return out
