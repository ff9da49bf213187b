"""The learner repository: what learners clone, generated from this one (the instructors' source) with its own history.

    python -m handbook.site.learner_repo OUT           generate it into OUT (`make learner-repo OUT=DIR`)
    python -m handbook.site.learner_repo OUT --list    print every file it would hold and why; write nothing

OUT, a new or empty folder, becomes a new repository with one commit on `main`. OUT, an earlier learner repository
(a clone of the published one, or an earlier OUT), gets one more commit on top of its history when anything
changed, so learners `git pull` a new cohort's version; the cohort release keeps that history
(handbook/site/release.py). One commit per release, never a rewritten history: a published commit is in learners'
clones for good, and a force-push would break every `git pull`.

What it holds is the rule in manifest.toml, a list of what it includes: the learner pages, the snippets they
include (a lab solution only as the sections learner pages show), the modules the learner commands import (block
harness, simulator, quiz format check, drill runner, the site's hooks), their data; plus its own README.md,
Makefile, pyproject.toml and .gitignore (templates/). The clone URL is mkdocs.yml's `extra.learner_repo`, the
same value as the header's `repo_url`.

Bad input stops it before anything is written, with one line `FILE:LINE: what to fix` (exit 1): uncommitted
changes in the source; a learner page that includes or links an instructor file or a whole lab solution; a
learner module that imports an instructor-only module at module level; a reference that would not resolve inside
the learner repository; instructor material anywhere in the result, files or history (handbook/site/leaks.py).
"""
from __future__ import annotations

import ast
import datetime
import fnmatch
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from handbook import ROOT

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.toml"
TEMPLATES = HERE / "templates"
BRANCH = "main"
URL_KEY = "learner_repo"  # mkdocs.yml `extra:`; pages write {{ learner_repo }} (handbook/site/hooks.py)
IDENTITY = {"GIT_AUTHOR_NAME": "MOD-107 handbook", "GIT_AUTHOR_EMAIL": "handbook@mod107.invalid",
            "GIT_COMMITTER_NAME": "MOD-107 handbook", "GIT_COMMITTER_EMAIL": "handbook@mod107.invalid"}
CLONABLE = re.compile(r"^(?:https?://[^\s/]+/\S+|ssh://\S+|git@[^\s:]+:\S+|file://\S+)$")
LINK = re.compile(r"(?<!!)\[(?:[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)|(?:href|src)=\"(?P<attr>[^\"]+)\"")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SNIPPET_NAME = re.compile(r"[\w.-]+(?:/[\w.-]+)+\.(?:py|json|ya?ml|toml|txt|sh|ipynb)\b")
RECORDING_REF = re.compile(r"""\brecording\s*=\s*["']([\w./-]+)["']""")  # a scenario's recorded value (gpusim)
MANIFEST_KEYS = {"copy": list, "python": dict, "snippets": dict, "install": dict}
SECTION_KEYS = {"python": {"commands", "instructor_only", "data"}, "snippets": {"solutions_from"},
                "install": {"name", "check"}}


class LearnerRepoError(Exception):
    """Bad input; str() is one line, `FILE:LINE: what to fix`, and nothing was written."""


@dataclass
class Plan:
    """What the learner repository holds: repo-relative path -> content, and why each file is in."""

    source: Path
    commit: str | None  # the source commit it is generated from (None: a tree with uncommitted changes)
    clone_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)  # executable files (the simulator's nvidia-smi, dmesg)

    def add(self, rel: str, content: bytes, why: str, mode: int = 0o644) -> None:
        if rel not in self.files:
            self.files[rel], self.why[rel], self.modes[rel] = content, why, mode


# ---- git ----------------------------------------------------------------------------------------------------

def git(repo: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})})
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise LearnerRepoError(f"{repo}: `git {' '.join(args)}` failed: {detail[-1] if detail else proc.returncode}")
    return proc


def listing(root: Path) -> set[str]:
    """What a commit of ROOT would hold: tracked files and untracked ones git does not ignore, that exist."""
    if git(root, "rev-parse", "--show-toplevel", check=False).returncode != 0:
        raise LearnerRepoError(f"{root} is not a git repository: generate the learner repository from the "
                               "handbook's source, a git checkout")
    out = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout
    return {rel for rel in out.split("\0") if rel and (root / rel).is_file()}


def uncommitted(root: Path) -> list[str]:
    """`FILE:LINE: what` for every change a commit of ROOT would not hold (LINE: the first changed line)."""
    out = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all").stdout.split("\0")
    found, entries = [], iter(out)
    for entry in entries:
        if not entry:
            continue
        state, rel = entry[:2], entry[3:]
        if "R" in state or "C" in state:
            next(entries, None)  # the rename's old name
        if state == "??":
            found.append(f"{rel}:1: untracked, not committed")
        elif "D" in state:
            found.append(f"{rel}:1: deleted, not committed")
        else:
            diff = git(root, "diff", "-U0", "HEAD", "--", rel, check=False).stdout
            m = re.search(r"^@@ -\d+(?:,\d+)? \+(\d+)", diff, re.M)
            found.append(f"{rel}:{max(1, int(m[1])) if m else 1}: changed, not committed")
    return found


def source_commit(root: Path) -> tuple[str, str] | None:
    """(sha, ISO date) of ROOT's HEAD, or None before its first commit."""
    proc = git(root, "log", "-1", "--format=%H %cI", check=False)
    parts = proc.stdout.split()
    return (parts[0], parts[1]) if proc.returncode == 0 and len(parts) == 2 else None


# ---- the rule -----------------------------------------------------------------------------------------------

def load_manifest(path: Path = MANIFEST) -> dict:
    where = _shown(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise LearnerRepoError(f"{where}: cannot read the learner manifest: {err}") from None
    for key, kind in MANIFEST_KEYS.items():
        if not isinstance(data.get(key), kind):
            raise LearnerRepoError(f"{where}: `{key}` must be a {'list' if kind is list else 'table'}")
    unknown = set(data) - set(MANIFEST_KEYS)
    for section, keys in SECTION_KEYS.items():
        unknown |= {f"{section}.{k}" for k in set(data[section]) - keys}
        unknown |= {f"{section}.{k} (missing)" for k in keys - set(data[section])}
    if unknown:
        raise LearnerRepoError(f"{where}: unknown or missing keys: {', '.join(sorted(unknown))}")
    return data


def _shown(path: Path, root: Path = ROOT) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _yaml(text: str):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # mkdocs' !ENV, !!python/name: ...
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader)


def clone_url(root: Path) -> str:
    """mkdocs.yml's extra.learner_repo: the address learners clone (the header's repo_url is the same value)."""
    path = root / "mkdocs.yml"
    text = path.read_text(encoding="utf-8")
    value = ((_yaml(text) or {}).get("extra") or {}).get(URL_KEY)
    m = re.search(rf"^\s+{URL_KEY}:", text, re.M)
    line = text[:m.start()].count("\n") + 2 if m else 1
    if not isinstance(value, str) or not CLONABLE.match(value.strip()):
        raise LearnerRepoError(f"mkdocs.yml:{line}: extra.{URL_KEY} must be the learner repository's clone URL "
                               f"(https://host/owner/name, ssh://..., git@host:owner/name), not {value!r}")
    return value.strip()


def _module_file(name: str, files: set[str]) -> str | None:
    base = name.replace(".", "/")
    for rel in (f"{base}/__init__.py", f"{base}.py"):
        if rel in files:
            return rel
    return None


def _imports(rel: str, text: str) -> list[tuple[str, int, bool, bool]]:
    """(absolute name, line, at module level, is a module for sure) of every import in the module file REL: for
    `from X import a`, X is a module and X.a may be one (or a name X defines)."""
    tree = ast.parse(text, filename=rel)
    name = rel.removesuffix(".py").replace("/", ".")
    package = name.removesuffix(".__init__") if rel.endswith("__init__.py") else name.rpartition(".")[0]
    found = []

    def visit(body: list, top: bool):  # statements only: an import is a statement, never inside an expression
        for child in body:
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top, True) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                found.append((base, child.lineno, top, True))
                found.extend((f"{base}.{a.name}", child.lineno, top, False) for a in child.names if a.name != "*")
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child.orelse, top)  # `if TYPE_CHECKING:` imports are for type checkers: they never run
            else:
                inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                for name in ("body", "orelse", "finalbody"):
                    visit(getattr(child, name, None) or [], inner)
                for sub in getattr(child, "handlers", None) or getattr(child, "cases", None) or []:
                    visit(sub.body, inner)

    visit(tree.body, True)
    return found


def _entry_points(root: Path, manifest: dict, files: set[str]) -> list[tuple[str, str]]:
    """(module, where it is named) of the learner's entry points: commands, pytest plugins, mkdocs hooks."""
    entries = []
    for name in manifest["python"]["commands"]:  # `python -m PACKAGE` runs PACKAGE/__main__.py
        main = f"{name}.__main__"
        entries.append((main if _module_file(main, files) else name, "handbook/site/learner_repo/manifest.toml [python] commands"))
    if "conftest.py" in files:
        for node in ast.walk(ast.parse((root / "conftest.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytest_plugins" for t in node.targets):
                for value in getattr(node.value, "elts", [node.value]):
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        entries.append((value.value, f"conftest.py:{node.lineno}"))
    text = (root / "mkdocs.yml").read_text(encoding="utf-8")
    for hook in (_yaml(text) or {}).get("hooks") or []:
        number = next((n for n, line in enumerate(text.splitlines(), 1) if line.strip() == f"- {hook}"), 1)
        entries.append((str(hook).removesuffix(".py").replace("/", "."), f"mkdocs.yml:{number}"))
    return entries


def _instructor_only(name: str, manifest: dict) -> bool:
    return any(name == m or name.startswith(m + ".") for m in manifest["python"]["instructor_only"])


def python_modules(root: Path, manifest: dict, files: set[str]) -> dict[str, str]:
    """Module file -> why, for every handbook module the entry points import, transitively."""
    chosen: dict[str, str] = {}
    todo = []
    for name, where in _entry_points(root, manifest, files):
        if _instructor_only(name, manifest):
            raise LearnerRepoError(f"{where}: {name} is instructor-only (handbook/site/learner_repo/manifest.toml): "
                                   "a learner entry point must not be")
        if not _module_file(name, files):
            raise LearnerRepoError(f"{where}: names the module {name}, which the source does not have")
        todo.append((name, where))
    while todo:
        name, where = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # a module's packages come with it
            rel = _module_file(".".join(parts[:depth]), files)
            if rel is None or rel in chosen:
                continue
            chosen[rel] = f"a module the learner commands use ({where})"
            for imported, line, top, module in _imports(rel, (root / rel).read_text(encoding="utf-8")):
                if imported.split(".")[0] != parts[0]:
                    continue  # the standard library or a distribution: pyproject.toml's business
                if _instructor_only(imported, manifest):
                    if top:
                        raise LearnerRepoError(
                            f"{rel}:{line}: imports {imported} at module level, but it is instructor-only "
                            "(handbook/site/learner_repo/manifest.toml) and stays out of the learner repository, so every "
                            "learner command would fail on this import: import it inside the instructor command "
                            "that needs it")
                    continue
                if _module_file(imported, files):
                    todo.append((imported, f"{rel}:{line}"))
                elif module:
                    raise LearnerRepoError(f"{rel}:{line}: imports {imported}, which the source does not have")
    return chosen


def _page_includes(text: str) -> list[tuple[int, str]]:
    """(line, target) of every include pymdownx.snippets would read on a page, in a fence or not."""
    from handbook.harness import includes

    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if includes.is_include(line) and not includes.BARE_SCISSORS.match(line) and not line.lstrip().startswith(";"):
            try:
                found.append((number, includes.include_target(line)))
            except includes.SnippetError as err:
                raise LearnerRepoError(f"{{page}}:{number}: {err}") from None
    return found


def _excerpt(text: str, sections: set[str]) -> str:
    """TEXT with only the marked SECTIONS kept (markers too) and every other line blanked: line numbers stay."""
    from handbook.harness import includes

    out, inside = [], set()
    for line in text.split("\n"):
        m = includes.MARKER.match(line)
        if m and m["name"] in sections:
            (inside.add if m["kind"] == "start" else inside.discard)(m["name"])
            out.append(line)
        else:
            out.append(line if inside else "")
    return "\n".join(out)


def snippet_files(root: Path, files: set[str], pages: list[str], data: list[str], solutions_from: str, plan: Plan) -> None:
    """Add the snippets learner pages include (and the docs/ data files name) to PLAN, with their recordings and
    the files beside them that they name; a lab solution only as the sections learner pages include."""
    from handbook import recordings

    snippet_dir = (root / "snippets").resolve()
    solutions: dict[Path, str] = {}
    for page in sorted((root / solutions_from).rglob("*.md")):
        rel = page.relative_to(root).as_posix()
        for target_line, target in _page_includes_checked(page, rel):
            path = (snippet_dir / target.partition(":")[0]).resolve()
            solutions.setdefault(path, f"{rel}:{target_line}")
    whole: dict[Path, str] = {}
    sections: dict[Path, set[str]] = {}

    def take(path: Path, where: str, section: str | None, what: str) -> None:
        rel = _shown(path, root)
        if not path.is_relative_to(snippet_dir):
            kind = "an instructor file" if rel.startswith(solutions_from + "/") else "a file outside snippets/"
            raise LearnerRepoError(f"{where}: {what} {rel}, {kind}: learners never get it; include from snippets/ only")
        if rel not in files:
            raise LearnerRepoError(f"{where}: {what} {rel}, which is not committed (or does not exist)")
        if path in solutions:
            if section is None:
                raise LearnerRepoError(f"{where}: {what} {rel} whole, a lab solution ({solutions[path]} includes "
                                       "it): learners never get it whole; include a marked section of it, "
                                       "# --8<-- [start:NAME] ... [end:NAME], or move the shared part to its own file")
            sections.setdefault(path, set()).add(section)
        else:
            whole.setdefault(path, where)

    for rel in pages:
        page = root / rel
        for number, target in _page_includes_checked(page, rel):
            name, _, section = target.partition(":")
            take((snippet_dir / name).resolve(), f"{rel}:{number}", section or None, "includes")
    for rel in data:  # the quiz bank's output items, a scenario's recorded values: snippets named by path
        text = (root / rel).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            named = [m[0] for m in SNIPPET_NAME.finditer(line)] + [f"{m[1]}.rec.json" for m in RECORDING_REF.finditer(line)]
            for name in named:
                path = (snippet_dir / name).resolve()
                if path.is_file() and path.is_relative_to(snippet_dir):
                    if recordings.is_recording(path):
                        program = next((p for p in solutions if recordings.path_for(p) == path), None)
                        if program:
                            raise LearnerRepoError(f"{rel}:{number}: names {name}, the recording of a lab solution "
                                                   f"({solutions[program]} includes it): learners never get it")
                        plan.add(_shown(path, root), path.read_bytes(), f"a recording {rel}:{number} names")
                    else:
                        take(path, f"{rel}:{number}", None, "names")
    for path, where in sorted(whole.items()):
        rel = _shown(path, root)
        plan.add(rel, path.read_bytes(), f"a snippet ({where})", path.stat().st_mode & 0o777)
        recording = recordings.path_for(path)
        if _shown(recording, root) in files:
            plan.add(_shown(recording, root), recording.read_bytes(), f"the recording of {rel}")
        for sibling in recordings.code_files(path)[1:]:
            srel = _shown(sibling, root)
            if srel in files and sibling not in solutions:
                plan.add(srel, sibling.read_bytes(), f"a file {rel} names beside it", sibling.stat().st_mode & 0o777)
    for path, names in sorted(sections.items()):
        rel = _shown(path, root)
        if rel not in plan.files:
            text = _excerpt(path.read_text(encoding="utf-8"), names)
            plan.add(rel, text.encode(), f"sections {', '.join(sorted(names))} of a lab solution, the rest blanked")


def _page_includes_checked(page: Path, rel: str) -> list[tuple[int, str]]:
    try:
        return _page_includes(page.read_text(encoding="utf-8"))
    except LearnerRepoError as err:
        raise LearnerRepoError(str(err).replace("{page}", rel)) from None


# ---- generated files ----------------------------------------------------------------------------------------

def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "".join(f"    {_toml(v)},\n" for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def pyproject(root: Path, manifest: dict) -> str:
    """The learner repository's pyproject.toml: the source's base dependencies, a `check` extra of the
    distributions the manifest names (with the source's version ranges), pytest's options for docs/ alone."""
    where = "pyproject.toml"
    try:
        src = tomllib.loads((root / where).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise LearnerRepoError(f"{where}: cannot read it: {err}") from None
    project = src.get("project") or {}
    base = list(project.get("dependencies") or [])
    declared = {}
    for req in base + [r for extra in (project.get("optional-dependencies") or {}).values() for r in extra]:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if m:
            declared.setdefault(_canonical(m[1]), req)
    check = []
    for name in manifest["install"]["check"]:
        if _canonical(name) not in declared:
            raise LearnerRepoError(f"handbook/site/learner_repo/manifest.toml: [install] check names {name}, which "
                                   f"{where} declares nowhere (dependencies or an extra): declare it there first")
        check.append(declared[_canonical(name)])
    pytest_opts = dict(((src.get("tool") or {}).get("pytest") or {}).get("ini_options") or {})
    pytest_opts["testpaths"] = ["docs"]
    setuptools = (src.get("tool") or {}).get("setuptools") or {}
    lines = ["# Generated from the handbook's source (handbook/site/learner_repo): `make serve` installs the dependencies,",
             "# `make check` the check extra too.", "[build-system]"]
    lines += [f"{_key(k)} = {_toml(v)}" for k, v in (src.get("build-system") or {}).items()]
    lines += ["", "[project]", f"name = {_toml(manifest['install']['name'])}", f"version = {_toml(project.get('version', '0'))}",
              f"description = {_toml('MOD-107 course repository: the handbook pages, their programs, the GPU simulator, the quiz format check and the practice drills')}",
              f"requires-python = {_toml(project.get('requires-python', '>=3.11'))}", 'readme = "README.md"',
              f"dependencies = {_toml(base)}", "", "[project.optional-dependencies]",
              "# what the pages' blocks need: `make check` (pytest docs/)", f"check = {_toml(check)}"]
    for table in ("packages.find", "package-data"):
        value = setuptools
        for part in table.split("."):
            value = value.get(part) or {}
        if value:
            lines += ["", f"[tool.setuptools.{table}]"] + [f"{_key(k)} = {_toml(v)}" for k, v in value.items()]
    lines += ["", "[tool.pytest.ini_options]"] + [f"{_key(k)} = {_toml(v)}" for k, v in pytest_opts.items()]
    return "\n".join(lines) + "\n"


def readme(root: Path, url: str) -> str:
    text = (TEMPLATES / "README.md").read_text(encoding="utf-8")
    site = (_yaml((root / "mkdocs.yml").read_text(encoding="utf-8")) or {}).get("site_url") or url
    return text.replace("@CLONE_URL@", url).replace("@SITE_URL@", str(site))


# ---- the plan and its checks --------------------------------------------------------------------------------

def plan(root: Path = ROOT, *, require_clean: bool = True, manifest_path: Path = MANIFEST) -> Plan:
    """Everything the learner repository holds, checked; raises LearnerRepoError (one line) on bad input."""
    root = root.resolve()
    files = listing(root)
    if require_clean:
        changes = uncommitted(root)
        if changes:
            raise LearnerRepoError(f"{changes[0]} ({len(changes)} uncommitted change{'s' if len(changes) > 1 else ''} "
                                   "in the source): commit or stash them; the learner repository is generated from "
                                   "a commit, and nothing was written")
    manifest = load_manifest(manifest_path)
    head = source_commit(root)
    result = Plan(root, head[0] if head and require_clean else None, clone_url(root))
    for entry in manifest["copy"]:
        entry = entry.rstrip("/")
        chosen = sorted(rel for rel in files if rel == entry or rel.startswith(entry + "/"))
        if not chosen:
            raise LearnerRepoError(f"handbook/site/learner_repo/manifest.toml: copy names {entry}, which the source does not have")
        for rel in chosen:
            result.add(rel, (root / rel).read_bytes(), f"copied whole ({entry})", (root / rel).stat().st_mode & 0o777)
    for rel, why in python_modules(root, manifest, files).items():
        result.add(rel, (root / rel).read_bytes(), why)
    for pattern in manifest["python"]["data"]:
        chosen = sorted(rel for rel in files if fnmatch.fnmatchcase(rel, pattern))
        if not chosen:
            raise LearnerRepoError(f"handbook/site/learner_repo/manifest.toml: data glob {pattern} matches no file")
        for rel in chosen:
            result.add(rel, (root / rel).read_bytes(), f"data ({pattern})", (root / rel).stat().st_mode & 0o777)
    pages = sorted(rel for rel in result.files if rel.startswith("docs/") and rel.endswith(".md"))
    data = sorted(rel for rel in result.files if rel.startswith(("docs/", "handbook/"))
                  and rel.endswith((".yaml", ".yml", ".toml", ".json", ".ipynb")))
    snippet_files(root, files, pages, data, manifest["snippets"]["solutions_from"], result)
    result.add("README.md", readme(root, result.clone_url).encode(), "generated: the learner's README (templates/README.md)")
    result.add("Makefile", (TEMPLATES / "Makefile").read_bytes(), "generated: make serve, make check (templates/Makefile)")
    result.add(".gitignore", (TEMPLATES / "gitignore").read_bytes(), "generated (templates/gitignore)")
    result.add("pyproject.toml", pyproject(root, manifest).encode(), "generated from the source's pyproject.toml")
    check_links(result, files, manifest["snippets"]["solutions_from"])
    return result


def check_links(plan: Plan, files: set[str], solutions_from: str) -> None:
    """Every relative link of a learner page (or the README) resolves inside the learner repository, and none
    points at a file learners do not get."""
    for rel in sorted(r for r in plan.files if r == "README.md" or (r.startswith("docs/") and r.endswith(".md"))):
        fence = None
        for number, line in enumerate(plan.files[rel].decode("utf-8", errors="replace").splitlines(), 1):
            m = FENCE.match(line)
            if m:
                fence = None if fence and line.strip().startswith(fence) else (fence or m[1])
                continue
            if fence:
                continue
            for link in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
                target = (link["target"] or link["attr"]).split("#", 1)[0].split("?", 1)[0]
                if not target or "://" in target or target.startswith(("mailto:", "/", "{{", "data:")):
                    continue
                dest = os.path.normpath(str(PurePosixPath(rel).parent / target))
                if dest.startswith(".."):
                    raise LearnerRepoError(f"{rel}:{number}: links to {target}, outside the repository")
                if dest in plan.files or any(f.startswith(dest.rstrip("/") + "/") for f in plan.files):
                    continue
                if dest.split("/")[0] == solutions_from or dest.startswith(f"docs/{solutions_from}/"):
                    raise LearnerRepoError(f"{rel}:{number}: links to {target}, an instructor file: learners never "
                                           "get it; link to a learner page instead")
                if dest in files:
                    raise LearnerRepoError(f"{rel}:{number}: links to {target}, which the learner repository does "
                                           "not hold (handbook/site/learner_repo/manifest.toml): link to a learner page")
                if not dest.startswith("docs/"):  # under docs/, the build may generate it (the quiz's answers.yaml)
                    raise LearnerRepoError(f"{rel}:{number}: links to {target}: no such file in the learner repository")


def check_tree(tree: Path) -> None:
    """In the written learner repository: every learner page's includes, figure references and page links
    resolve (the same checks `pytest docs/PAGE.md` runs as page-checks)."""
    from handbook.harness import blocks, page_checks

    for page in sorted((tree / "docs").rglob("*.md")):
        rel = page.relative_to(tree).as_posix()
        try:
            blocks.parse_page(page, tree / "snippets")
        except blocks.BlockError as err:
            raise LearnerRepoError(f"{rel}:{err.line}: in the learner repository: {str(err).split(': ', 1)[1]}") from None
        text = page.read_text(encoding="utf-8")
        problems = page_checks.figure_problems(page, text, tree) + page_checks.link_problems(page, text, tree)
        if problems:
            first = problems[0].replace(str(tree) + "/", "")
            raise LearnerRepoError(f"{first} (in the learner repository)")


# ---- writing it ---------------------------------------------------------------------------------------------

def write_tree(plan: Plan, dest: Path) -> None:
    for rel, content in plan.files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(0o755 if plan.modes.get(rel, 0o644) & 0o111 else 0o644)


def restamp(plan: Plan, tree: Path) -> list[str]:
    """Recordings whose program names a file learners do not get (Lab 2's experiment runs the trainer, a lab
    solution): in the written TREE their code hash would never match, so every learner would read "stale: the code
    changed since" about code nobody changed. A recording fresh in the source gets the hash of the code the
    learner repository holds, and says which files it leaves out; returns their paths."""
    from handbook import recordings

    done = []
    for rel in sorted(r for r in plan.files if r.endswith(".rec.json")):
        program = rel.removesuffix(".rec.json") + ".py"
        if program not in plan.files:
            continue
        source, learner = plan.source / program, tree / program
        withheld = sorted({p.name for p in recordings.code_files(source)} - {p.name for p in recordings.code_files(learner)})
        if not withheld or recordings.state(source).kind != "fresh":
            continue
        data = json.loads(plan.files[rel])
        data["code_sha256"] = recordings.code_sha256(learner)
        data["learner_repo"] = {"withheld": withheld, "note": "code_sha256 covers the files this repository holds; "
                                "the recording ran with the withheld ones too (lab solutions)"}
        plan.files[rel] = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        (tree / rel).write_bytes(plan.files[rel])
        plan.why[rel] += f"; code hash without {', '.join(withheld)}"
        done.append(rel)
    return done


def commit(tree: Path, plan: Plan, *, base: tuple[Path, str] | None = None, cohort: str | None = None,
           date: str | None = None) -> tuple[str, bool]:
    """Make TREE (written by write_tree) a repository whose `main` is BASE's history plus one commit of TREE, or
    one root commit; (commit, whether it is new). No new commit when the tree equals BASE's."""
    git(tree, "init", "--quiet", f"--initial-branch={BRANCH}")
    parent = None
    if base:
        git(tree, "fetch", "--quiet", "--no-tags", str(base[0]), base[1])
        parent = git(tree, "rev-parse", "FETCH_HEAD").stdout.strip()
        git(tree, "update-ref", f"refs/heads/{BRANCH}", parent)
    git(tree, "add", "--all", "--force")  # exactly the plan: its own .gitignore must not drop a file of it
    if parent and git(tree, "diff", "--cached", "--quiet", parent, check=False).returncode == 0:
        git(tree, "reset", "--quiet", "--hard", parent)
        return parent, False
    stamp = date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    title = f"MOD-107 course repository{f' for cohort {cohort}' if cohort else ''}"
    body = (f"Generated from the handbook's source at {plan.commit[:12]}." if plan.commit
            else "Generated from a source tree with uncommitted changes: not for publishing.")
    git(tree, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", title, "-m", body,
        env={**IDENTITY, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
    return git(tree, "rev-parse", "HEAD").stdout.strip(), True


def leak_check(tree: Path, root: Path) -> None:
    from handbook.site import leaks

    found = leaks.scan_repo(tree, leaks.fragments(root / "instructor", root / "docs"))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise LearnerRepoError(f"the learner repository would hold instructor material: {found[0]}{more}; "
                               "nothing was written")


@dataclass(frozen=True)
class Result:
    out: Path
    commit: str
    new_commit: bool
    files: int
    clone_url: str


def generate(out: Path, root: Path = ROOT, *, require_clean: bool = True, cohort: str | None = None,
             base: tuple[Path, str] | None = None, the_plan: Plan | None = None) -> Result:
    """Write the learner repository to OUT (see the module's docstring); OUT changes only when every check passed."""
    out = Path(os.path.abspath(out))
    if out.resolve().is_relative_to(Path(root).resolve()):
        raise LearnerRepoError(f"{out} is inside the source repository: generate the learner repository outside it, "
                               "e.g. OUT=../mod107-learner; nothing was written")
    the_plan = the_plan or plan(root, require_clean=require_clean)
    existing = (out / ".git").exists()
    if out.exists() and not out.is_dir():
        raise LearnerRepoError(f"{out} is a file: name a folder for the learner repository")
    if existing:
        dirty = git(out, "status", "--porcelain", "--untracked-files=normal").stdout.splitlines()
        if dirty:
            raise LearnerRepoError(f"{out}: the learner repository there has uncommitted changes (first: "
                                   f"{dirty[0][3:]}): commit or discard them, then generate again; nothing was written")
        if git(out, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).returncode == 0:
            base = base or (out, "HEAD")
    elif out.exists() and any(out.iterdir()):
        raise LearnerRepoError(f"{out} is not empty and not a git repository: name a new folder, or an earlier "
                               "learner repository to add a commit to; nothing was written")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write_tree(the_plan, tmp)
        restamp(the_plan, tmp)
        check_tree(tmp)
        head = source_commit(the_plan.source)
        sha, new = commit(tmp, the_plan, base=base, cohort=cohort, date=head[1] if head and the_plan.commit else None)
        leak_check(tmp, the_plan.source)
        if existing:
            git(out, "fetch", "--quiet", "--no-tags", str(tmp), BRANCH)
            git(out, "merge", "--quiet", "--ff-only", "FETCH_HEAD")
        elif out.exists():
            for child in tmp.iterdir():
                child.rename(out / child.name)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Result(out, sha, new, len(the_plan.files), the_plan.clone_url)
