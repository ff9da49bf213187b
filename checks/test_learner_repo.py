"""The learner repository (handbook/site/learner_repo): what learners clone, generated from this, the instructors' source.

One scratch copy of the handbook (the working tree, committed) and one learner repository generated from it serve
the whole file. What it holds is checked both ways: instructor files planted in every kind of place never reach it,
and every learner page's include and link resolves inside it. Then it is installed the way its own README says and
run on its own: the quiz's format check, a practice drill, and a lab's starter and a simulator block through its
own harness. Bad input stops the generation with FILE:LINE and writes nothing.
"""
import contextlib
import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from handbook import ROOT
from handbook.harness import blocks
from handbook.site import leaks, learner_repo, crawl
from handbook.site import release as release_module

pytestmark = pytest.mark.timeout(300)
INSTRUCTOR_ONLY = ("handbook/course/quiz/key.py", "handbook/course/quiz/grade.py", "handbook/site/editions.py", "handbook/site/release.py",
                   "handbook/site/leaks.py", "handbook/site/learner_repo/__init__.py", "mkdocs.instructor.yml")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The handbook as a commit would hold it, in a scratch repository (never the real one's git)."""
    tree = crawl.copy_working_tree(ROOT, tmp_path_factory.mktemp("source") / "handbook")
    crawl.init_repo(tree)
    return tree


@pytest.fixture(scope="module")
def learner(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("learner") / "mod107"
    done = learner_repo.generate(out, source)
    assert done.new_commit and done.out == out
    return out


@contextlib.contextmanager
def edited(tree: Path, rel: str, change):
    """REL in TREE changed by CHANGE(text) -> text (created when missing), restored afterwards."""
    path = tree / rel
    before = path.read_bytes() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(change(before.decode() if before is not None else ""), encoding="utf-8")
    try:
        yield path
    finally:
        path.write_bytes(before) if before is not None else path.unlink()


def tracked(repo: Path) -> set[str]:
    return set(crawl.run_git(repo, "ls-files").split())


# ---- what it holds --------------------------------------------------------------------------------------------

def test_it_holds_the_learner_material_and_no_instructor_file(source, learner):
    files = tracked(learner)
    assert {"README.md", "Makefile", "pyproject.toml", "conftest.py", "mkdocs.yml", "docs/labs/lab2.md",
            "snippets/labs/lab2/01_starter.py", "handbook/gpusim/__main__.py", "handbook/course/quiz/__main__.py",
            "handbook/course/drills.py", "handbook/harness/plugin.py"} <= files
    assert not [f for f in files if f.startswith(("instructor/", "checks/", ".github/")) or f in INSTRUCTOR_ONLY]
    # every lab solution: absent, or (a file a learner page shows sections of) those sections and blank lines only
    for path in leaks.solution_snippets(source / "instructor"):
        rel = path.relative_to(source).as_posix()
        if rel in files:
            kept = [ln for ln in (learner / rel).read_text().splitlines() if ln.strip()]
            assert kept and len(kept) < len(path.read_text().splitlines()), f"{rel} is in the learner repository whole"
            assert all(ln in path.read_text().splitlines() for ln in kept)
    # its own history: one commit, none of the source's objects
    assert len(crawl.run_git(learner, "rev-list", "--all").split()) == 1
    source_head = crawl.run_git(source, "rev-parse", "HEAD").strip()
    assert subprocess.run(["git", "cat-file", "-e", source_head], cwd=learner).returncode != 0
    assert f"at {source_head[:12]}" in crawl.run_git(learner, "log", "-1", "--format=%B")


def test_every_learner_page_include_and_link_resolves_inside_it(learner):
    """Read independently of the generator's own checks: each include names a file (and section) of the learner
    repository's snippets/, each relative link a file of it, and the clone URL reaches the README and the pages."""
    includes = links = 0
    for page in sorted((learner / "docs").rglob("*.md")):
        rel = page.relative_to(learner).as_posix()
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            m = re.match(r"""^\s*-+8<-+\s+["']([^"':]+)(?::([\w-]+))?["']\s*$""", line)
            if m:
                includes += 1
                target = learner / "snippets" / m[1]
                assert target.is_file(), f"{rel}:{number}: includes {m[1]}, not in the learner repository"
                assert not m[2] or f"[start:{m[2]}]" in target.read_text(), f"{rel}:{number}: section {m[2]} missing"
            for target in re.findall(r"\]\(([^)\s#]+\.(?:md|ipynb|py|yaml|json))(?:#[^)]*)?\)", line):
                if "://" in target:
                    continue
                links += 1
                dest = Path(os.path.normpath(page.parent / target))
                assert dest.is_file() or dest.name == "answers.yaml", f"{rel}:{number}: link to {target}: not in it"
    assert includes > 50 and links > 50
    url = learner_repo.clone_url(learner)
    assert f"git clone {url}" in (learner / "README.md").read_text()


def test_learner_pages_send_learners_to_the_learner_repository(learner):
    """A page that says where to run the handbook's commands names the learner repository ({{ learner_repo }},
    filled in from mkdocs.yml), never "a checkout of this handbook", which learners must not have."""
    stale = re.compile(r"\b(?:a|the|your) checkout\b|checkout of (?:this|the) handbook|handbook's (?:own )?repository", re.I)
    found = [f"{page.relative_to(learner)}:{n}: {line.strip()}" for page in sorted((learner / "docs").rglob("*.md"))
             if not page.is_relative_to(learner / "docs" / "authors")
             for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1) if stale.search(line)]
    assert not found, found
    assert "{{ learner_repo }}" in (learner / "docs" / "index.md").read_text()  # the home page says how to get it


def test_planted_instructor_files_never_reach_it(source, tmp_path):
    """A new instructor file, a solution only an instructor page includes, a module only the grader imports, a
    stray snippet: none is in the plan. A key pasted into docs/ (copied whole) stops the generation on the leak
    check, before anything is written."""
    plants = {
        "instructor/drills/hidden-scenario.toml": lambda t: '[system]\ndriver_version = "550.54.15"\n',
        "instructor/labs/lab2.md": lambda t: t + '\n```python notest\n--8<-- "labs/lab2/06_tuned_solution.py"\n```\n',
        "snippets/labs/lab2/06_tuned_solution.py": lambda t: "print('the tuned trainer, instructors only')\n",
        "snippets/labs/lab3/99_scratch.py": lambda t: "print('included by no page')\n",
        "handbook/course/quiz/answer_sheet.py": lambda t: "KEY = {'sm-meaning': 'b'}\n",
        "handbook/course/quiz/key.py": lambda t: t + "\nfrom . import answer_sheet  # noqa: E402\n",
    }
    with contextlib.ExitStack() as stack:
        for rel, change in plants.items():
            stack.enter_context(edited(source, rel, change))
        planned = learner_repo.plan(source, require_clean=False)
        assert not set(plants) & set(planned.files), sorted(set(plants) & set(planned.files))
        key = (source / "instructor" / "quiz" / "key.yaml").read_text()
        stack.enter_context(edited(source, "docs/assessment/key-backup.yaml", lambda t: key))
        out = tmp_path / "learner"
        with pytest.raises(learner_repo.LearnerRepoError, match=r"instructor material: .*key-backup\.yaml"):
            learner_repo.generate(out, source, require_clean=False)
        assert not out.exists() and not list(tmp_path.iterdir()), "a refused generation wrote something"


BAD = [  # (file, change, the text on the line the error must name, words it must say)
    ("docs/labs/lab3.md", lambda t: t + '\n```yaml\n--8<-- "../instructor/quiz/key.yaml"\n```\n',
     '"../instructor/quiz/key.yaml"', "an instructor file"),
    ("docs/labs/lab3.md", lambda t: t + "\nSee [the solutions](../../instructor/labs/lab3.md).\n",
     "(../../instructor/labs/lab3.md)", "an instructor file"),
    ("docs/labs/lab2.md", lambda t: t + '\n```python notest\n--8<-- "labs/lab2/02_train.py"\n```\n',
     '--8<-- "labs/lab2/02_train.py"', "a lab solution"),
    ("docs/assessment/bank.yaml", lambda t: t + "# output: labs/lab1/02_gpu_exporter.py\n",
     "labs/lab1/02_gpu_exporter.py", "a lab solution"),
    ("handbook/course/quiz/answers.py",
     lambda t: t.replace("\nfrom handbook.course import", "\nfrom handbook.course.quiz import grade  # noqa\nfrom handbook.course import", 1),
     "from handbook.course.quiz import grade", "instructor-only"),
]


@pytest.mark.parametrize("rel,change,needle,words", BAD, ids=["include", "link", "whole-solution", "data", "import"])
def test_a_page_or_module_that_reaches_an_instructor_file_stops_it_with_file_and_line(source, rel, change, needle, words):
    with edited(source, rel, change) as path:
        line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text)
        with pytest.raises(learner_repo.LearnerRepoError) as err:
            learner_repo.plan(source, require_clean=False)
    assert str(err.value).startswith(f"{rel}:{line}: ") and words in str(err.value), str(err.value)


def test_a_dirty_source_stops_it_with_file_and_line_and_writes_nothing(source, tmp_path):
    out = tmp_path / "learner"
    with edited(source, "docs/labs/lab1.md", lambda t: t.replace("## Step 2", "## Step 2 (draft)", 1)) as path:
        line = path.read_text().splitlines().index("## Step 2 (draft) · Validate the environment") + 1
        proc = subprocess.run([sys.executable, "-m", "handbook.site.learner_repo", str(out)], cwd=source,
                              capture_output=True, text=True, env=crawl.git_env())
    assert proc.returncode == 1 and not out.exists()
    with pytest.raises(learner_repo.LearnerRepoError, match="inside the source repository"):
        learner_repo.generate(source / "learner", source)
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
    assert proc.stderr.startswith(f"learner-repo: error: docs/labs/lab1.md:{line}: changed, not committed"), proc.stderr
    assert "Traceback" not in proc.stderr


# ---- it works on its own --------------------------------------------------------------------------------------

def readme_commands(readme: str) -> list[str]:
    return [ln.split("  #")[0].strip() for block in re.findall(r"```console\n(.*?)```", readme, re.S)
            for ln in block.splitlines() if ln.strip()]


def test_its_install_declares_what_its_code_imports(learner):
    """pyproject.toml's dependencies and `check` extra cover every distribution its handbook modules and its
    checked page blocks import, and this environment satisfies them: what pip's resolution would prove, which the
    install below skips (it reuses this environment's packages)."""
    import tomllib

    project = tomllib.loads((learner / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["check"]]
    for req in declared:
        assert importlib.metadata.version(req.name) in req.specifier, f"{req}: this environment has another version"
    closure, todo = set(), [r.name for r in declared]
    while todo:  # the declared distributions and everything they require (extras' requirements left out)
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in closure:
            continue
        closure.add(name)
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            for spec in importlib.metadata.requires(name) or []:
                req = Requirement(spec)
                if not req.marker or req.marker.evaluate({"extra": ""}):
                    todo.append(req.name)
    providers = importlib.metadata.packages_distributions()
    sources = [p for p in (learner / "handbook").rglob("*.py")]
    sources += [b.snippet.path for page in (learner / "docs").rglob("*.md")
                for b in blocks.parse_page(page, learner / "snippets") if b.checked and b.snippet]
    missing = {}
    for path in sources:
        for name in re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", path.read_text(encoding="utf-8"), re.M):
            if name in sys.stdlib_module_names or name in ("handbook", "__future__") or name not in providers:
                continue
            dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers[name]}
            if not dists & closure:
                missing.setdefault(name, path.relative_to(learner).as_posix())
    assert not missing, f"imported, but no declared distribution provides them: {missing}"


def test_it_installs_and_runs_on_its_own_as_its_readme_says(learner, tmp_path):
    readme = (learner / "README.md").read_text()
    commands = readme_commands(readme)
    assert {"make serve", "make check"} <= set(commands), commands
    # The learner's .venv: a fresh interpreter environment that sees this one's packages (no multi-GB download of
    # torch in a check); `make check` then runs its own pip install of the learner project, editable, without
    # dependency resolution (the check above proves the declared requirements) and with this environment's
    # setuptools for the build.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(learner / ".venv")], check=True)
    purelib = Path(subprocess.run([str(learner / ".venv/bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "outer-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in crawl.git_env().items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PIP_NO_DEPS="1", PIP_NO_BUILD_ISOLATION="false", PYTEST_XDIST_AUTO_NUM_WORKERS="0",
               HANDBOOK_DRILLS_DIR=str(tmp_path / "drills"))
    starter = next(b for b in blocks.parse_page(learner / "docs/labs/lab2.md", learner / "snippets")
                   if b.snippet and b.snippet.path.name == "01_starter.py")
    simulated = next(b for b in blocks.parse_page(learner / "docs/monitoring/nvml.md", learner / "snippets")
                     if "sim" in b.options)
    pages = f"docs/labs/lab2.md::L{starter.line} docs/monitoring/nvml.md::L{simulated.line}"
    make = subprocess.run(["make", "check", f"PAGES={pages}"], cwd=learner, env=env, capture_output=True, text=True,
                          timeout=240)
    assert make.returncode == 0 and "2 passed" in make.stdout, make.stdout[-3000:] + make.stderr[-2000:]
    assert "ran 1  skipped 0  failed 0" in make.stdout  # the starter ran, on this CPU, not skipped
    where = subprocess.run([str(learner / ".venv/bin/python"), "-c", "import handbook; print(handbook.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(learner / "handbook" / "__init__.py"), "the learner's .venv imports another handbook"

    def sh(*lines, cwd=learner, code=0):
        """README lines, verbatim, in one bash, in the activated .venv as the README says."""
        proc = subprocess.run(["bash", "-c", " && ".join([activate, *lines])], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == code, f"{lines}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.stdout + proc.stderr

    activate = ". .venv/bin/activate"
    assert activate in commands
    # the simulator, the quiz's blank answer file and its format check, a practice drill: as the README writes them
    chosen = [c for c in commands if re.search(r"handbook\.(gpusim run|quiz|drills start)", c)]
    assert len(chosen) == 4, chosen
    out = sh(*chosen)
    assert "SIMULATED NVML playing 'thermal-throttle'" in out  # the simulator announces itself
    assert re.search(r"reasons 0x\w+", out) and "format OK" in out, out
    token = re.search(r"token (\w+)", out)[1]
    # the drill, investigated with the health check on the simulator, answered: a practice drill gives feedback
    report = subprocess.run(["bash", "-c", f"{activate} && cd snippets/troubleshooting/index && "
                             f"python -m handbook.drills run {token} -- python 01_gpu_health.py"],
                            cwd=learner, env=env, capture_output=True, text=True, timeout=120)
    assert "simulated" in report.stdout + report.stderr and "Traceback" not in report.stderr, report.stderr
    assert sh(f"python -m handbook.drills answer {token} --verdict thermal-throttle --action drain-node")
    # grading is not here: no key, no grader, one line that says so
    assert "grading is for instructors" in sh("python -m handbook.quiz grade answers.yaml", code=2)


# ---- the leak check reads everything a learner gets -----------------------------------------------------------

def test_the_leak_check_reads_the_working_tree_and_the_whole_history(source, learner, tmp_path, capsys):
    """Planted where a look at the files alone would miss them: a key entry committed and then deleted, an
    instructor page on a side branch, an instructor sentence in a tag's message; and a solution line in an
    untracked file. Each is found, once, and nothing else is."""
    repo = tmp_path / "clone"
    crawl.run_git(tmp_path, "clone", "--quiet", str(learner), str(repo))
    key_entry = re.search(r"^  [a-z0-9-]+:\n    answer: .+$", (source / "instructor/quiz/key.yaml").read_text(), re.M)[0]
    found = leaks.fragments(source / "instructor", source / "docs")
    sentence = next(f.text for f in found if f.source == "instructor/labs/lab3.md")
    solution_line = next(f.text for f in found if f.source == "snippets/labs/lab2/02_train.py")
    (repo / "docs" / "notes.md").write_text(f"# Notes\n\n{key_entry}\n")
    crawl.commit_all(repo, "notes")
    blob = crawl.run_git(repo, "rev-parse", "HEAD:docs/notes.md").strip()
    (repo / "docs" / "notes.md").unlink()
    crawl.commit_all(repo, "notes removed")
    crawl.run_git(repo, "checkout", "--quiet", "-b", "side")
    (repo / "instructor").mkdir()
    (repo / "instructor" / "todo.md").write_text("# To do\n")
    crawl.commit_all(repo, "side branch")
    crawl.run_git(repo, "checkout", "--quiet", "main")
    crawl.run_git(repo, "tag", "-a", "cohort-x", "-m", f"Cohort x. {sentence}")
    tag = crawl.run_git(repo, "rev-parse", "cohort-x").strip()
    (repo / "scratch.py").write_text(f"{solution_line}\n")
    problems = leaks.scan_repo(repo, found)
    labels = sorted(p.split(": has ")[0].split(": an instructor")[0] for p in problems)
    assert labels == sorted([f"history: docs/notes.md (blob {blob[:12]})", "history: instructor/todo.md",
                             f"history: the message of {tag[:12]}", "scratch.py"]), problems
    assert leaks.main(["--repo", str(repo)]) == 1
    assert capsys.readouterr().out.count("leak: ") == 4


def test_ci_checks_it_and_publishing_sends_it_to_learners():
    import yaml

    workflows = ROOT / ".github" / "workflows"
    ci = [s.get("run", "") for job in yaml.safe_load((workflows / "ci.yml").read_text())["jobs"].values() for s in job["steps"]]
    generate = next(i for i, run in enumerate(ci) if "-m handbook.site.learner_repo" in run)
    assert "-m handbook.site.leaks --repo" in ci[generate] and generate > next(i for i, r in enumerate(ci) if ".ci/run" in r)
    publish = [s for job in yaml.safe_load((workflows / "publish.yml").read_text())["jobs"].values() for s in job["steps"]]
    release = next(s for s in publish if "-m handbook.release" in s.get("run", ""))
    assert "git remote add learner" in release["run"] and "secrets.LEARNER_REMOTE_URL" in release["env"]["LEARNER_REMOTE_URL"]
    upload = next(s for s in publish if s.get("uses", "").startswith("actions/upload-artifact") and "bundle" in s["with"]["path"])
    assert upload["with"]["path"] == f"{release_module.BUNDLE_DIR}/*.bundle"


def test_pages_write_the_clone_url_as_a_token_the_site_fills_in(tmp_path):
    from types import SimpleNamespace

    from mkdocs.exceptions import PluginError

    from handbook.site import hooks

    (tmp_path / "docs").mkdir()
    page = SimpleNamespace(file=SimpleNamespace(abs_src_path=str(tmp_path / "docs" / "x.md"), src_uri="x.md", src_path="x.md"))
    config = SimpleNamespace(docs_dir=str(tmp_path / "docs"), config_file_path=str(ROOT / "mkdocs.yml"),
                             extra={"learner_repo": "https://git.example.org/mod107"})
    text = "Clone {{ learner_repo }}; pages write `\\{{ learner_repo }}`.\n"
    assert hooks.on_page_markdown(text, page, config, None) == \
        "Clone https://git.example.org/mod107; pages write `{{ learner_repo }}`.\n"
    with pytest.raises(PluginError, match=r"docs/x\.md: \{\{ learner_repo \}\} needs extra\.learner_repo"):
        hooks.on_page_markdown(text, page, SimpleNamespace(**{**vars(config), "extra": {}}), None)
    # the site's own config: the header's repository link and the pages' clone URL are one value
    assert learner_repo.clone_url(ROOT) == crawl.load_mkdocs_yml(ROOT)["repo_url"]


def test_graded_drills_and_the_course_secret_are_instructor_material(tmp_path, monkeypatch):
    """The key's graded drills (a hidden scenario, its pager, its verdict and action, its explanation) and the course
    secret are found wherever they land; a practice drill's public verdict and action are not."""
    instructor = tmp_path / "instructor"
    (instructor / "quiz").mkdir(parents=True)
    (instructor / "drills" / "scenarios").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    (instructor / "quiz" / "key.yaml").write_text(
        "answers:\n  drill-page-9:\n    reveal: never\n    variants:\n      - scenario: slow-z.toml\n"
        "        pager: gpu-777 runs its jobs at a third of the speed of its rack neighbours.\n"
        "        verdict: power-brake\n        action: drain-node\n"
        "        why: 'The power-brake bit on one cool GPU at low power: the node power delivery brakes it.'\n")
    (instructor / "drills" / "scenarios" / "slow-z.toml").write_text(
        '[system]\ndriver_version = "550.54.15"\n[[gpu]]\nclock_event_reasons = [[0, 0x88], [45, 0x88]]\n')
    (instructor / "quiz" / "course-secret").write_text("7f3a9c2e11d04b6a8e5f0c3d2b1a9e8f\n")
    monkeypatch.delenv("HANDBOOK_QUIZ_SECRET", raising=False)
    found = leaks.fragments(instructor, tmp_path / "docs")
    site = tmp_path / "learner"
    site.mkdir()
    (site / "pack.json").write_text('{"pager": "gpu-777 runs its jobs at a third of the speed of its rack neighbours."}')
    (site / "scenario.toml").write_text((instructor / "drills/scenarios/slow-z.toml").read_text())
    (site / "why.md").write_text("The power-brake bit on one cool GPU at low power: the node power delivery brakes it.\n")
    (site / "seed.py").write_text("SECRET = b'7f3a9c2e11d04b6a8e5f0c3d2b1a9e8f'\n")
    (site / "practice.toml").write_text('[[drill]]\nid = "drill-power-brake"\nverdict = ["power-brake"]\naction = ["drain-node"]\n')
    flagged = sorted(line.split(":", 1)[0] for line in leaks.scan(site, found))
    assert flagged == ["pack.json", "scenario.toml", "seed.py", "why.md"]
