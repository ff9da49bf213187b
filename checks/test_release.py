"""Cohort releases (handbook/site/release.py, docs/authors/releases.md), end to end in scratch git repositories.

Each test builds a small handbook: the real mkdocs.yml, hooks, overrides and harness, but only two pages, one of
them holding a real recorded block of the handbook (its snippet and recording), so builds take a second or two and
other authors' pages in flux cannot break these checks. Never touches the real repository's git.
"""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handbook.harness import blocks, containers
from handbook import recordings
from handbook.site import release, crawl
from site_builds import PAGES, trim_docs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)  # whole-site builds, several per module; pyproject default is 120 s
A, B = "2026-q4", "2027-q1"  # A is the older cohort


def run_release(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "handbook.release", *args], cwd=repo, env=crawl.git_env(),
                          capture_output=True, text=True, timeout=600)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"release failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """A refusal: exit 1 and exactly one line on stderr (`release: error: ...`) that says what to fix."""
    assert proc.returncode == 1, f"expected a refusal, got {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("release: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def branch_tree(repo: Path, branch: str = "gh-pages") -> dict[str, str]:
    """path -> blob id (and mode) of every file on the branch."""
    out = crawl.run_git(repo, "ls-tree", "-r", "--full-tree", branch)
    return {line.split("\t", 1)[1]: line.split("\t", 1)[0] for line in out.splitlines()}


def under(tree: dict, prefix: str) -> dict:
    return {k: v for k, v in tree.items() if k.startswith(prefix + "/")}


def show(repo: Path, path: str, branch: str = "gh-pages") -> str:
    return crawl.run_git(repo, "show", f"{branch}:{path}")


def has_branch(repo: Path, branch: str = "gh-pages") -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "--quiet", branch], cwd=repo,
                          capture_output=True).returncode == 0


# ---- the small handbook -----------------------------------------------------------------------------------

def recorded_block():
    """(page, fence text, snippet path) of the first recorded block of the real handbook that has a recording."""
    for page in blocks.pages(ROOT / "docs"):
        text = page.read_text(encoding="utf-8")
        flat = containers.flatten(text).split("\n")
        for token in blocks.PageParser().parse(text):
            if token.type != "fence" or not token.map:
                continue
            block = blocks.parse_block(page, token, ROOT / "snippets")
            if block.recorded and recordings.path_for(block.snippet.path).exists():
                return page, "\n".join(flat[token.map[0]:token.map[1]]), block.snippet.path
    return None


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    found = recorded_block()
    if not found:
        pytest.skip("no recorded block with a recording in docs/ yet: the frozen-recordings checks need one")
    page, fence, snippet = found
    t = tmp_path_factory.mktemp("template")
    for name in ("handbook", "overrides", "snippets"):
        shutil.copytree(ROOT / name, t / name, ignore=shutil.ignore_patterns("__pycache__", "*.rec.failed.json"))
    for name in ("pyproject.toml", "conftest.py", ".gitignore"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, t / name)
    # docs/: the assets (stylesheets, images) but only two pages
    shutil.copytree(ROOT / "docs", t / "docs", ignore=lambda d, names: [n for n in names if n.endswith(PAGES)])
    shutil.copy2(ROOT / "mkdocs.yml", t / "mkdocs.yml")
    rel_page = page.relative_to(ROOT / "docs").as_posix()
    trim_docs(t, {"index.md": f"# Small handbook\n\nThe [demo]({rel_page}) page.\n",
                  rel_page: f"# Demo page\n\nUnchanged text.\n\n{fence}\n"})
    return {"dir": t, "page": rel_page, "recording": recordings.path_for(snippet).relative_to(ROOT).as_posix()}


@pytest.fixture
def repo(template, tmp_path):
    dst = tmp_path / "handbook"
    shutil.copytree(template["dir"], dst, symlinks=True)
    crawl.init_repo(dst)
    return dst


def rerecord(repo: Path, recording: str, marker: str, date: str) -> None:
    """Change a recording as a re-run would: new output and a new provenance date."""
    path = repo / recording
    data = json.loads(path.read_text(encoding="utf-8"))
    data["stdout"] = data["stdout"].rstrip("\n") + f"\n{marker}\n"
    data["provenance"]["date"] = date
    recordings.write_atomic(path, data)


def page_html(repo: Path, version: str, page: str) -> str:
    url = page.removesuffix("index.md").rstrip("/") if page.endswith("index.md") else page.removesuffix(".md")
    return show(repo, f"{version}/{url}/index.html")


# ---- names and bad input ------------------------------------------------------------------------------------

def test_cohort_names_sort_in_time_order():
    names = ["2027-01", "2026-q4", "2027-q2", "2026-10", "2026-q1", "2027-12"]
    assert sorted(names, key=release.cohort_key) == ["2026-q1", "2026-10", "2026-q4", "2027-01", "2027-q2", "2027-12"]
    for bad in ["2026-q5", "2026-q0", "2026-13", "2026-00", "2026-Q4", "26-q4", "2026q4", "latest", "2026-1", ""]:
        with pytest.raises(release.ReleaseError, match="is not a cohort name: use YYYY-qN"):
            release.cohort_key(bad)


def test_manifest_and_notes_diff():
    old = {"cohort": A, "commit": "a" * 40, "released": "2026-10-01T00:00:00Z",
           "pages": {"index.md": "1", "gone.md": "2", "labs/lab1.md": "3"}, "recordings": {"s/x.rec.json": "4"}}
    new = {"cohort": B, "commit": "b" * 40, "released": "2027-01-01T00:00:00Z",
           "pages": {"index.md": "1", "labs/lab1.md": "9", "new.md": "5"}, "recordings": {"s/x.rec.json": "7"}}
    notes = release.make_notes(new, A, old)
    assert notes["pages"] == {"added": ["new.md"], "changed": ["labs/lab1.md"], "removed": ["gone.md"]}
    assert notes["recordings"] == {"added": [], "changed": ["s/x.rec.json"], "removed": []}
    text = release.notes_markdown(notes)
    assert f"Changes since cohort {A}" in text and "- changed: `s/x.rec.json`" in text
    first = release.notes_markdown(release.make_notes(new, None, None))
    assert "First release" in first and "- added: `new.md`" in first


def test_bad_cohort_name_is_refused_before_anything(repo):
    refused(run_release(repo, "2026-q5", "--no-checks"), "'2026-q5' is not a cohort name", "YYYY-qN", "YYYY-MM")
    refused(run_release(repo, "latest", "--retire"), "'latest' is not a cohort name")
    assert not has_branch(repo)


def test_dirty_tree_missing_branch_and_remote_are_refused(repo):
    (repo / "docs" / "index.md").write_text("# Edited but not committed\n")
    refused(run_release(repo, A, "--no-checks"), "uncommitted change", "docs/index.md", "commit or stash")
    assert not has_branch(repo)
    crawl.commit_all(repo, "commit the edit")
    refused(run_release(repo, A, "--retire"), "no gh-pages branch", "release a cohort first")
    refused(run_release(repo, A, "--no-checks", "--push"), "--push needs a git remote named 'origin'")
    assert not has_branch(repo)


# ---- deploying cohorts -------------------------------------------------------------------------------------

def test_two_cohorts_frozen_recordings_notes_and_redeploy(repo, template):
    page, recording = template["page"], template["recording"]
    out_a = ok(run_release(repo, A, "--no-checks"))
    assert "First release" in out_a and f"deployed cohort {A}" in out_a
    tree_a = under(branch_tree(repo), A)
    html_a = page_html(repo, A, page)
    old = json.loads((repo / recording).read_text(encoding="utf-8"))
    assert "Recorded on" in html_a and old["provenance"]["date"][:10] in html_a

    # Between cohorts: a recording is re-made and a page edited.
    marker = "re-recorded for the next cohort 7f3a"
    rerecord(repo, recording, marker, "2020-01-02T03:04:05+00:00")
    (repo / "docs" / page).write_text((repo / "docs" / page).read_text().replace("Unchanged text.", "Edited text."))
    crawl.commit_all(repo, "re-record and edit")
    out_b = ok(run_release(repo, B, "--no-checks"))

    # versions.json, the latest alias, the default
    versions = json.loads(show(repo, "versions.json"))
    assert [(v["version"], v["aliases"]) for v in versions] == [(B, ["latest"]), (A, [])]
    assert release.default_version(repo) == B
    assert branch_tree(repo)["latest"].startswith("120000")  # a symlink...
    assert show(repo, "latest") == B  # ...to the newest cohort
    # Cohort A was not touched by releasing B: same blobs, file for file.
    assert under(branch_tree(repo), A) == tree_a
    # Frozen recordings: A shows the recording as it was, B the re-made one.
    html_b = page_html(repo, B, page)
    assert marker not in html_a and marker in html_b
    assert "2020-01-02" in html_b and "2020-01-02" not in html_a
    assert "Unchanged text." in html_a and "Edited text." in html_b

    # Release notes: printed, and written into the version (page + JSON); the manifest hashes the committed files.
    notes = json.loads(show(repo, f"{B}/release-notes.json"))
    assert notes["previous"] == A and notes["cohort"] == B
    assert notes["recordings"]["changed"] == [recording]
    assert notes["pages"]["changed"] == [page]
    assert f"Changes since cohort {A}" in out_b and f"- changed: `{recording}`" in out_b
    notes_page = show(repo, f"{B}/release-notes/index.html")
    assert recording in notes_page and "Release notes" in notes_page
    manifest = json.loads(show(repo, f"{B}/release-manifest.json"))
    assert manifest["recordings"][recording] == hashlib.sha256((repo / recording).read_bytes()).hexdigest()
    assert manifest["pages"][page] == hashlib.sha256((repo / "docs" / page).read_bytes()).hexdigest()
    assert manifest["commit"] == crawl.run_git(repo, "rev-parse", "HEAD").strip()

    # Re-releasing A changes A only: B, the alias and the default stay byte-identical.
    tree_b, root_index = under(branch_tree(repo), B), show(repo, "index.html")
    ok(run_release(repo, A, "--no-checks"))
    assert under(branch_tree(repo), B) == tree_b and show(repo, "index.html") == root_index
    assert json.loads(show(repo, "versions.json")) == versions
    assert marker in page_html(repo, A, page)  # A now shows what is committed
    changed = crawl.run_git(repo, "diff", "--name-only", "gh-pages~1", "gh-pages").split()
    assert changed and all(p.startswith(f"{A}/") for p in changed), changed

    # Retiring A: a property in versions.json, nothing else changes; re-releasing keeps it retired.
    ok(run_release(repo, A, "--retire"))
    assert crawl.run_git(repo, "diff", "--name-only", "gh-pages~1", "gh-pages").split() == ["versions.json"]
    entry = {v["version"]: v for v in json.loads(show(repo, "versions.json"))}
    assert entry[A]["properties"] == {"retired": True} and "properties" not in entry[B]
    assert "already retired" in ok(run_release(repo, A, "--retire"))
    refused(run_release(repo, "2025-q1", "--retire"), "cohort 2025-q1 is not deployed", A, B)
    crawl.commit_all(repo, "another commit")
    ok(run_release(repo, A, "--no-checks"))
    entry = {v["version"]: v for v in json.loads(show(repo, "versions.json"))}
    assert entry[A]["properties"] == {"retired": True} and entry[B]["aliases"] == ["latest"]
    ok(run_release(repo, A, "--unretire"))
    assert "properties" not in {v["version"]: v for v in json.loads(show(repo, "versions.json"))}[A]


def test_newer_cohort_moves_latest_and_default_older_does_not(repo):
    ok(run_release(repo, B, "--no-checks"))
    ok(run_release(repo, A, "--no-checks"))  # an older cohort released later: latest stays on B
    versions = json.loads(show(repo, "versions.json"))
    assert [(v["version"], v["aliases"]) for v in versions] == [(B, ["latest"]), (A, [])]
    assert release.default_version(repo) == B
    notes = json.loads(show(repo, f"{A}/release-notes.json"))
    assert notes["previous"] is None  # nothing older than A is deployed


def test_failed_build_or_checks_leave_gh_pages_alone(repo, template):
    ok(run_release(repo, A, "--no-checks"))
    before = crawl.run_git(repo, "rev-parse", "gh-pages")
    # a broken link: the strict build fails
    (repo / "docs" / "index.md").write_text("# Small handbook\n\nA [broken link](missing.md).\n")
    crawl.commit_all(repo, "break the build")
    refused(run_release(repo, B, "--no-checks"), "strict build failed", "missing.md")
    # a failing check: python -m pytest fails, nothing is built
    (repo / "docs" / "index.md").write_text("# Small handbook\n")
    (repo / "checks").mkdir(exist_ok=True)
    (repo / "checks" / "test_gate.py").write_text("def test_gate():\n    assert False, 'a failing check'\n")
    crawl.commit_all(repo, "a failing check")
    refused(run_release(repo, B), "checks failed", "--no-checks")
    assert crawl.run_git(repo, "rev-parse", "gh-pages") == before
    assert not list(repo.glob(".release-mkdocs-*.yml"))  # the temporary config never stays behind


def test_push_syncs_with_the_remote_and_never_forces(repo, tmp_path):
    remote = tmp_path / "remote.git"
    crawl.run_git(tmp_path, "init", "--quiet", "--bare", str(remote))
    crawl.run_git(repo, "remote", "add", "origin", str(remote))
    crawl.run_git(repo, "push", "--quiet", "origin", "main")
    other = tmp_path / "other"
    crawl.run_git(tmp_path, "clone", "--quiet", "--branch", "main", str(remote), str(other))

    ok(run_release(repo, A, "--no-checks", "--push"))
    # no learner remote: the learner repository is a bundle learners clone, and its history is kept on origin
    learners = tmp_path / "learners"
    crawl.run_git(tmp_path, "clone", "--quiet", str(repo / "dist" / f"mod107-learner-{A}.bundle"), str(learners))
    assert (learners / "README.md").is_file() and not (learners / "mkdocs.instructor.yml").exists()
    assert crawl.run_git(learners, "rev-list", "--all").split() == [crawl.run_git(remote, "rev-parse", "learner-repo").strip()]
    ok(run_release(other, B, "--no-checks", "--push"))  # `other` had no gh-pages: it starts from the remote's
    # ... and its learner-repo from the remote's: the same history continued, not a second root
    assert crawl.run_git(other, "rev-parse", "learner-repo") == crawl.run_git(repo, "rev-parse", "learner-repo")
    remote_versions = json.loads(show(remote, "versions.json"))
    assert [v["version"] for v in remote_versions] == [B, A]
    ok(run_release(repo, A, "--retire", "--push"))  # `repo` is behind: fast-forwarded first, then pushed
    assert [v.get("properties") for v in json.loads(show(remote, "versions.json"))] == [None, {"retired": True}]

    # `other` commits locally without pushing, so its gh-pages and the remote's diverge: refused, nothing pushed
    ok(run_release(other, B, "--retire"))
    remote_head = crawl.run_git(remote, "rev-parse", "gh-pages")
    refused(run_release(other, B, "--no-checks", "--push"), "diverged", "never by force")
    assert crawl.run_git(remote, "rev-parse", "gh-pages") == remote_head


# ---- the instructor edition ----------------------------------------------------------------------------------

SECRET = "The reference answer is forty-two, and only instructors may ever read this sentence."


def grep_branch(repo: Path, text: str, branch: str) -> list[str]:
    proc = subprocess.run(["git", "grep", "-l", "-i", "-F", text, branch], cwd=repo, capture_output=True, text=True)
    return proc.stdout.split()


def test_instructor_edition_goes_to_its_own_branch_and_never_to_gh_pages(repo, tmp_path):
    (repo / "instructor").mkdir()
    (repo / "instructor" / "index.md").write_text(
        f'# Instructor edition\n\n!!! danger "Instructor edition only"\n\n    Notes for instructors.\n\n{SECRET}\n')
    shutil.copy(ROOT / "mkdocs.instructor.yml", repo / "mkdocs.instructor.yml")
    crawl.commit_all(repo, "an instructor edition")
    refused(run_release(repo, A, "--no-checks", "--instructor-branch", "gh-pages"), "other than gh-pages")
    assert not has_branch(repo)

    out = ok(run_release(repo, A, "--no-checks", "--instructor-branch", "instructor-pages"))
    assert f"deployed the instructor edition of cohort {A} to instructor-pages" in out
    # the learner edition: no instructor page, no instructor text, anywhere on gh-pages
    assert not [p for p in branch_tree(repo) if "/instructor/" in p]
    assert grep_branch(repo, SECRET, "gh-pages") == [] and grep_branch(repo, "Instructor edition only", "gh-pages") == []
    # the instructor edition: the same version, with the instructor pages, on its own branch
    assert SECRET in show(repo, f"{A}/instructor/index.html", "instructor-pages")
    assert show(repo, f"{A}/index.html", "instructor-pages")  # the learner pages are in it too
    assert [(v["version"], v["aliases"]) for v in json.loads(show(repo, "versions.json", "instructor-pages"))] == [(A, ["latest"])]

    # a release without the option leaves the instructor branch alone
    before = crawl.run_git(repo, "rev-parse", "instructor-pages")
    ok(run_release(repo, B, "--no-checks"))
    assert crawl.run_git(repo, "rev-parse", "instructor-pages") == before

    # instructor text planted in a learner page: the release refuses before any branch changes
    (repo / "docs" / "index.md").write_text(f"# Small handbook\n\n{SECRET}\n")
    crawl.commit_all(repo, "a leak")
    heads = crawl.run_git(repo, "rev-parse", "gh-pages", "instructor-pages", "learner-repo")
    refused(run_release(repo, B, "--no-checks", "--instructor-branch", "instructor-pages"),
            "the learner edition holds instructor material", "index.html")
    assert crawl.run_git(repo, "rev-parse", "gh-pages", "instructor-pages", "learner-repo") == heads
    # instructor text in a file only the learner repository holds (the harness' conftest.py), not the site:
    # the release refuses too, on the learner repository's leak check
    (repo / "docs" / "index.md").write_text("# Small handbook\n")
    (repo / "conftest.py").write_text((repo / "conftest.py").read_text() + f"# {SECRET}\n")
    crawl.commit_all(repo, "a leak into the learner repository")
    bundle = (repo / "dist" / f"mod107-learner-{B}.bundle").read_bytes()  # B's, from the release above
    refused(run_release(repo, B, "--no-checks"), "the learner repository", "instructor material", "conftest.py")
    assert crawl.run_git(repo, "rev-parse", "gh-pages", "instructor-pages", "learner-repo") == heads
    assert (repo / "dist" / f"mod107-learner-{B}.bundle").read_bytes() == bundle


def test_instructor_edition_pushes_to_its_own_remote(repo, tmp_path):
    (repo / "instructor").mkdir()
    (repo / "instructor" / "index.md").write_text(f'# Instructor edition\n\n!!! danger "Instructor edition only"\n\n    {SECRET}\n')
    shutil.copy(ROOT / "mkdocs.instructor.yml", repo / "mkdocs.instructor.yml")
    crawl.commit_all(repo, "an instructor edition")
    learners, instructors = tmp_path / "learners.git", tmp_path / "instructors.git"
    for remote, name in ((learners, "origin"), (instructors, "instructors")):
        crawl.run_git(tmp_path, "init", "--quiet", "--bare", str(remote))
        crawl.run_git(repo, "remote", "add", name, str(remote))
    out = ok(run_release(repo, A, "--no-checks", "--push", "--instructor-branch", "instructor-pages",
                         "--instructor-remote", "instructors"))
    assert "pushed it to instructors" in out
    assert has_branch(learners) and not has_branch(learners, "instructor-pages")
    assert has_branch(instructors, "instructor-pages") and not has_branch(instructors)
    assert SECRET in show(instructors, f"{A}/instructor/index.html", "instructor-pages")
    refused(run_release(repo, A, "--no-checks", "--instructor-remote", "instructors"), "--instructor-remote needs")


# ---- the learner repository ---------------------------------------------------------------------------------

def test_the_learner_repository_goes_to_its_own_remote_one_commit_per_release(repo, tmp_path, template):
    """With a `learner` remote, --push sends the learner repository there as `main` (never to origin, never the
    source's history); another instructor's release continues that history with one commit, which learners pull."""
    origin, learner = tmp_path / "origin.git", tmp_path / "learner.git"
    for bare, name in ((origin, "origin"), (learner, "learner")):
        crawl.run_git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        crawl.run_git(repo, "remote", "add", name, str(bare))
    crawl.run_git(repo, "push", "--quiet", "origin", "main")
    out = ok(run_release(repo, A, "--no-checks", "--push"))
    assert "pushed to learner main" in out and not (repo / "dist").exists()
    first = crawl.run_git(learner, "rev-parse", "main").strip()
    assert first == crawl.run_git(repo, "rev-parse", "learner-repo").strip()
    assert crawl.run_git(learner, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]
    assert not has_branch(origin, "learner-repo")
    source = crawl.run_git(repo, "rev-parse", "main").strip()
    assert subprocess.run(["git", "cat-file", "-e", source], cwd=learner).returncode != 0, "the source's history leaked"
    learners = tmp_path / "learners"
    crawl.run_git(tmp_path, "clone", "--quiet", str(learner), str(learners))

    other = tmp_path / "other"
    crawl.run_git(tmp_path, "clone", "--quiet", "--branch", "main", str(origin), str(other))
    crawl.run_git(other, "remote", "add", "learner", str(learner))
    page = other / "docs" / template["page"]
    page.write_text(page.read_text().replace("Unchanged text.", "Edited for the next cohort."))
    crawl.commit_all(other, "edit a page")
    ok(run_release(other, B, "--no-checks", "--push"))
    assert crawl.run_git(learner, "rev-list", "main").split()[1:] == [first]  # one commit on top of A's
    crawl.run_git(learners, "pull", "--quiet", "--ff-only")
    assert "Edited for the next cohort." in (learners / "docs" / template["page"]).read_text()
    refused(run_release(repo, B, "--no-checks", "--learner-remote", "nowhere"), "'nowhere' is not a git remote")
