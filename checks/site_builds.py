"""Site builds that several checks read: the strict MkDocs build, with its errors in one assertion message, and the
small handbook (the real config, hooks and theme, a few pages) that release and browser checks deploy cheaply."""
import subprocess
import sys
from pathlib import Path

import yaml

from handbook import ROOT
from handbook.site import crawl

PAGES = (".md", ".ipynb")


def strict_build(config: str, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / config),
                           "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**crawl.git_env(), "NO_MKDOCS_2_WARNING": "1"})
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("ERROR", "WARNING"))]
    assert proc.returncode == 0, f"the strict build of {config} failed: {errors[:3] or proc.stderr[-2000:]}"
    return out


def trim_docs(tree: Path, pages: dict[str, str]) -> None:
    """Leave TREE/docs with only PAGES (docs-relative path -> markdown, each opening with `# Title`) and every
    asset (stylesheets, scripts, data files), and TREE/mkdocs.yml with a nav of those pages, in that order."""
    docs = tree / "docs"
    for path in [p for p in docs.rglob("*") if p.is_file() and p.suffix in PAGES]:
        path.unlink()
    for rel, text in pages.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text, encoding="utf-8")
    config = crawl.load_mkdocs_yml(tree)
    config["nav"] = [{text.split("\n", 1)[0].removeprefix("# "): rel} for rel, text in pages.items()]
    with open(tree / "mkdocs.yml", "w", encoding="utf-8") as f:
        yaml.dump(config, f, sort_keys=False)
