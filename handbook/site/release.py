"""Release the handbook for a cohort: python -m handbook.release COHORT [--retire] [--no-checks] [--push]
[--instructor-branch BRANCH [--instructor-remote REMOTE]] [--learner-remote REMOTE | --learner-bundle PATH]

One published version per cohort, deployed with mike to the local `gh-pages` branch (docs/authors/releases.md):

  python -m handbook.release 2027-q1              checks, strict build, deploy as version 2027-q1
  python -m handbook.release 2026-q4 --retire     mark an already released cohort retired (banner on its pages)
  python -m handbook.release 2026-q4 --unretire   undo --retire
  ... --no-checks                                 skip `python -m pytest` (CI runs the checks as their own step)
  ... --push                                      fetch origin/gh-pages first, push gh-pages after (never forced)
  ... --instructor-branch instructor-pages        also deploy the instructor edition (mkdocs.instructor.yml: quiz
                                                  key, lab solutions, the quiz as Canvas QTI and Moodle XML under
                                                  instructor/lms/) as the same version, to that branch only
  ... --instructor-remote instructors             with --push, push that branch to this remote (default: origin)
  ... --learner-remote learner                    with --push, push the learner repository to this remote's main
                                                  (default: the remote named `learner`, when there is one)
  ... --learner-bundle PATH                       without a learner remote: write its git bundle here (default:
                                                  dist/mod107-learner-COHORT.bundle)

What a release does, in order; anything that fails stops it before gh-pages changes:
1. the cohort name is valid (YYYY-qN or YYYY-MM, so names sort in time order) and the working tree is clean;
2. the checks pass (`python -m pytest`), unless --no-checks;
3. the site is built strictly (`mkdocs build --strict`) from the committed tree, with the mike plugin and this
   module as an extra hook, which adds three generated files to that version: release-notes/ (a page),
   release-notes.json and release-manifest.json (sha256 of every docs/ file and every *.rec.json recording);
   that learner edition must hold no instructor material (handbook/site/leaks.py); with --instructor-branch the
   instructor edition is built too; the learner repository (handbook/site/learner_repo: what learners clone) is
   generated as one more commit on the history of the local branch learner-repo, and it too must hold no
   instructor material, in its files or anywhere in that history;
4. mike commits the build as version COHORT on gh-pages, touching only that version's folder, versions.json and,
   when COHORT is the newest cohort, the `latest` alias; the default (the site root) follows the newest cohort.
   With --instructor-branch, the instructor edition is committed the same way to its own branch, never gh-pages.
   learner-repo moves to the learner repository's new commit (a fast-forward). With a learner remote, --push
   pushes it there as `main` (after fetching it first: the remote's history is the one continued); without one,
   the release writes it as a git bundle that learners clone (`git clone FILE.bundle`), and --push keeps its
   history on origin's learner-repo, so the next cohort's commit continues it.

Recordings are frozen with the release: each version's HTML was built from the recordings committed at the time.
The release notes diff this cohort's manifest against the previous cohort's (the newest older one deployed).
Retired cohorts are recorded as the mike property `retired: true` in versions.json; overrides/main.html shows the
outdated banner on a version whose entry says so. Re-releasing a retired cohort keeps it retired.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BRANCH = "gh-pages"
REMOTE = "origin"
LEARNER, INSTRUCTOR = "learner", "instructor"  # the two editions (handbook/site/editions.py)
INSTRUCTOR_CONFIG = "mkdocs.instructor.yml"
LEARNER_BRANCH = "learner-repo"  # local branch: the learner repository's history (handbook/site/learner_repo)
LEARNER_REMOTE = "learner"  # the git remote the learner repository is pushed to (its `main`), when there is one
BUNDLE_DIR = "dist"  # where a release writes the learner repository's bundle when there is no learner remote
LATEST = "latest"
MANIFEST = "release-manifest.json"
NOTES_JSON = "release-notes.json"
NOTES_PAGE = "release-notes.md"
DATA_ENV = "HANDBOOK_RELEASE_DATA"  # set only while a release builds: where this hook finds its data
COHORT = re.compile(r"^(?P<year>20\d\d)-(?:q(?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2]))$")
NAME_HELP = "use YYYY-qN (quarter 1-4, e.g. 2026-q4) or YYYY-MM (month 01-12, e.g. 2027-01)"


class ReleaseError(Exception):
    """A release that must not go ahead; str() is one line saying what to fix."""


# ---- cohort names ------------------------------------------------------------------------------------------

def cohort_key(name: str) -> tuple[int, int, str]:
    """Time order: (year, first month, name); 2026-q4 starts in month 10, 2027-01 in month 1 of 2027."""
    m = COHORT.match(name)
    if not m:
        raise ReleaseError(f"{name!r} is not a cohort name: {NAME_HELP}")
    month = int(m["month"]) if m["month"] else 3 * int(m["quarter"]) - 2
    return int(m["year"]), month, name


def is_cohort(name: str) -> bool:
    return bool(COHORT.match(name))


# ---- manifests and notes -----------------------------------------------------------------------------------

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ReleaseError(f"`git {' '.join(args)}` failed: {detail[-1] if detail else proc.returncode}")
    return proc


def tracked(root: Path, *pathspecs: str) -> list[str]:
    out = git(root, "ls-files", "-z", "--", *pathspecs).stdout
    return sorted(p for p in out.split("\0") if p)


def make_manifest(root: Path, cohort: str, commit: str, released: str) -> dict:
    """sha256 of every committed file under docs/ (keyed docs-relative) and every *.rec.json (repo-relative)."""
    pages = {p.removeprefix("docs/"): sha256(root / p) for p in tracked(root, "docs")}
    recordings = {p: sha256(root / p) for p in tracked(root, "*.rec.json")}
    return {"cohort": cohort, "commit": commit, "released": released, "pages": pages, "recordings": recordings}


def diff(old: dict, new: dict) -> dict:
    return {
        "added": sorted(set(new) - set(old)),
        "changed": sorted(k for k in set(new) & set(old) if new[k] != old[k]),
        "removed": sorted(set(old) - set(new)),
    }


def make_notes(manifest: dict, previous: str | None, previous_manifest: dict | None) -> dict:
    """What changed since the previous cohort; with no previous manifest, everything counts as added."""
    base = previous_manifest or {"pages": {}, "recordings": {}}
    return {
        "cohort": manifest["cohort"],
        "commit": manifest["commit"],
        "released": manifest["released"],
        "previous": previous,
        "previous_commit": previous_manifest.get("commit") if previous_manifest else None,
        "pages": diff(base["pages"], manifest["pages"]),
        "recordings": diff(base["recordings"], manifest["recordings"]),
    }


def notes_markdown(notes: dict) -> str:
    lines = [f"# Release notes · cohort {notes['cohort']}", ""]
    lines.append(f"Built from commit `{notes['commit'][:12]}` on {notes['released'][:10]}.")
    if notes["previous"] is None:
        lines.append("First release: every page and recording is new.")
    elif notes["previous_commit"] is None:
        lines.append(f"Cohort {notes['previous']} has no release manifest, so everything is listed as new.")
    else:
        lines.append(f"Changes since cohort {notes['previous']} (commit `{notes['previous_commit'][:12]}`).")
    for title, key in (("Pages", "pages"), ("Recordings re-made", "recordings")):
        changes = notes[key]
        counts = ", ".join(f"{len(changes[k])} {k}" for k in ("changed", "added", "removed"))
        lines += ["", f"## {title}", "", f"{counts}." if any(changes.values()) else "No changes."]
        if any(changes.values()):
            lines.append("")
        for kind in ("changed", "added", "removed"):
            lines += [f"- {kind}: `{path}`" for path in changes[kind]]
    return "\n".join(lines) + "\n"


# ---- gh-pages --------------------------------------------------------------------------------------------

def has_ref(root: Path, ref: str) -> bool:
    return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).returncode == 0


def read_deployed(root: Path, path: str, branch: str = BRANCH) -> str | None:
    proc = git(root, "show", f"{branch}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def deployed_versions(root: Path, branch: str = BRANCH) -> list[dict]:
    text = read_deployed(root, "versions.json", branch)
    return json.loads(text) if text else []


def default_version(root: Path, branch: str = BRANCH) -> str | None:
    """The version the site root redirects to (mike's root index.html), or None."""
    html = read_deployed(root, "index.html", branch)
    m = re.search(r'window\.location\.replace\(\s*"([^"/]+)/"', html or "")
    return m[1] if m else None


def sync_with_remote(root: Path, remote: str, branch: str, remote_branch: str | None = None) -> None:
    """Before a pushing release: bring the local branch up to date with the remote's (REMOTE_BRANCH there, BRANCH by
    default), never over it."""
    remote_branch = remote_branch or branch
    if git(root, "remote", "get-url", remote, check=False).returncode != 0:
        raise ReleaseError(f"--push needs a git remote named {remote!r}; add it (git remote add {remote} URL) or drop --push")
    if git(root, "ls-remote", "--exit-code", "--heads", remote, remote_branch, check=False).returncode == 2:
        return  # the remote has no such branch yet: the first push creates it
    git(root, "fetch", "--quiet", remote, f"+refs/heads/{remote_branch}:refs/remotes/{remote}/{remote_branch}")
    theirs = f"refs/remotes/{remote}/{remote_branch}"
    if not has_ref(root, branch):
        git(root, "branch", "--quiet", branch, theirs)
    elif git(root, "merge-base", "--is-ancestor", branch, theirs, check=False).returncode == 0:
        git(root, "update-ref", f"refs/heads/{branch}", theirs)  # behind (or equal): fast-forward
    elif git(root, "merge-base", "--is-ancestor", theirs, branch, check=False).returncode != 0:
        raise ReleaseError(f"local {branch} and {remote}/{remote_branch} have diverged; reconcile them by hand "
                           f"(git log {branch}...{remote}/{remote_branch}), never by force-pushing")


def push(root: Path, remote: str, branch: str, remote_branch: str | None = None) -> None:
    proc = git(root, "push", "--quiet", remote, f"refs/heads/{branch}:refs/heads/{remote_branch or branch}", check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise ReleaseError(f"pushing {branch} to {remote} failed ({last}); the local {branch} keeps the release: "
                           f"fetch, re-run the release, then push again (never force)")


# ---- the build -------------------------------------------------------------------------------------------

def release_config(root: Path, edition: str = LEARNER) -> Path:
    """mkdocs.yml plus the mike plugin and this module as a last hook, written beside it (paths stay relative).

    The instructor edition's config inherits mkdocs.instructor.yml instead and repeats only what this adds (INHERIT
    replaces lists: plugins and hooks)."""
    import yaml
    from mike import mkdocs_utils

    with open(root / "mkdocs.yml", "rb") as f:
        config = yaml.load(f, Loader=mkdocs_utils.RoundTripLoader)
    plugins = config.setdefault("plugins", ["search"])
    names = [p if isinstance(p, str) else next(iter(p)) for p in plugins]
    if "mike" not in names:
        plugins.insert(0, "mike")
    config["hooks"] = [*config.get("hooks", []), os.path.abspath(__file__)]
    if edition == INSTRUCTOR:
        if not (root / INSTRUCTOR_CONFIG).is_file():
            raise ReleaseError(f"--instructor-branch needs {INSTRUCTOR_CONFIG} in {root}: the instructor edition's config")
        with open(root / INSTRUCTOR_CONFIG, "rb") as f:
            overlay = yaml.load(f, Loader=mkdocs_utils.RoundTripLoader)
        config = {"INHERIT": INSTRUCTOR_CONFIG, "plugins": plugins,
                  "hooks": [*overlay.get("hooks", config["hooks"][:-1]), os.path.abspath(__file__)]}
    fd, name = tempfile.mkstemp(dir=root, prefix=".release-mkdocs-", suffix=".yml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.dump(config, f, sort_keys=False)
    return Path(name)


def build(root: Path, cohort: str, site_dir: Path, data: dict, edition: str = LEARNER) -> None:
    config = release_config(root, edition)
    data_file = site_dir.parent / f"release-data-{edition}.json"
    data_file.write_text(json.dumps(data), encoding="utf-8")
    env = {**os.environ, "MIKE_DOCS_VERSION": cohort, DATA_ENV: str(data_file), "NO_MKDOCS_2_WARNING": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "--config-file", str(config),
             "--site-dir", str(site_dir)],
            cwd=root, env=env, capture_output=True, text=True,
        )
    finally:
        config.unlink(missing_ok=True)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout + proc.stderr)  # the build's log for context; the one-line error goes to stderr
        problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("ERROR", "WARNING"))]
        first = problems[0] if problems else (proc.stderr.strip().splitlines() or ["?"])[-1]
        which = "" if edition == LEARNER else f" of the {edition} edition"
        raise ReleaseError(f"the strict build{which} failed ({first.strip()}); fix it, commit, and release again")


def check_no_leaks(site_dir: Path) -> None:
    """The learner edition must hold no quiz key and no lab solution, in any file it would publish."""
    from handbook.site import leaks

    found = leaks.scan(site_dir)
    if found:
        raise ReleaseError(f"the learner edition holds instructor material ({found[0]}"
                           f"{f'; {len(found) - 1} more files' if len(found) > 1 else ''}); move it to instructor/")


# The hook half: mkdocs loads this file as an extra hook during a release build (see release_config).

def on_files(files, config):
    """Add release-notes/, release-notes.json and release-manifest.json to the version being built."""
    if not os.environ.get(DATA_ENV):
        return files
    from mkdocs.structure.files import File

    data = json.loads(Path(os.environ[DATA_ENV]).read_text(encoding="utf-8"))
    # The page is backed by a real file: the handbook's own hook reads each page's abs_src_path.
    page_src = Path(os.environ[DATA_ENV]).with_name(NOTES_PAGE)
    page_src.write_text(notes_markdown(data["notes"]), encoding="utf-8")
    files.append(File.generated(config, NOTES_PAGE, abs_src_path=str(page_src)))
    files.append(File.generated(config, NOTES_JSON, content=json.dumps(data["notes"], indent=1) + "\n"))
    files.append(File.generated(config, MANIFEST, content=json.dumps(data["manifest"], indent=1) + "\n"))
    return files


# ---- the commands ----------------------------------------------------------------------------------------

def check_repo(root: Path) -> str:
    """The commit being released; the tree must be the commit (a clean tree), or the manifest would lie."""
    if not (root / "mkdocs.yml").is_file():
        raise ReleaseError(f"no mkdocs.yml in {root}: run the release from the handbook repository's root")
    top = git(root, "rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        raise ReleaseError(f"{root} is not the root of a git repository: run the release from the repository root")
    if not has_ref(root, "HEAD"):
        raise ReleaseError("the repository has no commit yet: commit the handbook, then release")
    dirty = git(root, "status", "--porcelain", "--untracked-files=normal").stdout.splitlines()
    if dirty:
        raise ReleaseError(f"the working tree has {len(dirty)} uncommitted change(s) (first: {dirty[0][3:]}); "
                           "commit or stash them, so the release is exactly a commit")
    return git(root, "rev-parse", "HEAD").stdout.strip()


def run_checks(root: Path) -> None:
    print("release: running the checks (python -m pytest) ...", flush=True)
    code = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=root).returncode
    if code != 0:
        raise ReleaseError(f"the checks failed (python -m pytest exited {code}); fix them, or pass --no-checks "
                           "only if they already passed on this commit")


def learner_remote_for(root: Path, learner_remote: str | None) -> str | None:
    """The git remote the learner repository is pushed to: --learner-remote, else a remote named `learner`, else
    None (the release writes a git bundle instead)."""
    if learner_remote is None:
        return LEARNER_REMOTE if git(root, "remote", "get-url", LEARNER_REMOTE, check=False).returncode == 0 else None
    if git(root, "remote", "get-url", learner_remote, check=False).returncode != 0:
        raise ReleaseError(f"--learner-remote {learner_remote!r} is not a git remote here; add it "
                           f"(git remote add {learner_remote} URL), or leave it out to publish a git bundle")
    return learner_remote


def release(root: Path, cohort: str, *, checks: bool = True, push_to: str | None = None,
            branch: str = BRANCH, now: str | None = None, instructor_branch: str | None = None,
            instructor_remote: str | None = None, learner_remote: str | None = None,
            learner_bundle: Path | None = None) -> dict:
    """Check, build and deploy COHORT; returns its release notes (also written into the version).

    With INSTRUCTOR_BRANCH, the instructor edition is deployed as the same version to that branch (and, with
    PUSH_TO, pushed to INSTRUCTOR_REMOTE or PUSH_TO). The learner repository gets a commit for COHORT on the local
    branch learner-repo; with a learner remote it goes there (with PUSH_TO), else into a git bundle
    (LEARNER_BUNDLE, by default dist/mod107-learner-COHORT.bundle)."""
    cohort_key(cohort)
    check_instructor_branch(branch, instructor_branch)
    commit = check_repo(root)
    # The learner repository's history: the learner remote's main, or (bundle releases) PUSH_TO's learner-repo.
    learner_remote = learner_remote_for(root, learner_remote)
    history = (learner_remote, "main") if learner_remote else (push_to, LEARNER_BRANCH)
    if push_to:
        sync_with_remote(root, push_to, branch)
        if instructor_branch:
            sync_with_remote(root, instructor_remote or push_to, instructor_branch)
        sync_with_remote(root, history[0], LEARNER_BRANCH, history[1])
    versions = deployed_versions(root, branch)
    names = [v["version"] for v in versions]
    strangers = [n for n in names if not is_cohort(n)]
    if strangers:
        raise ReleaseError(f"{branch} holds versions that are not cohorts ({', '.join(strangers)}); "
                           "remove them with `mike delete` first")
    if checks:
        run_checks(root)
        if git(root, "status", "--porcelain", "--untracked-files=normal").stdout.strip():
            raise ReleaseError("the checks left changes in the working tree (git status); clean them up, "
                               "so the release is exactly the commit")
    cohorts = sorted(set(names) | {cohort}, key=cohort_key)
    older = [c for c in cohorts if cohort_key(c) < cohort_key(cohort) and c in names]
    previous = older[-1] if older else None
    previous_manifest = None
    if previous:
        text = read_deployed(root, f"{previous}/{MANIFEST}", branch)
        previous_manifest = json.loads(text) if text else None
    released = now or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = make_manifest(root, cohort, commit, released)
    notes = make_notes(manifest, previous, previous_manifest)

    message = f"Release cohort {cohort} from {commit[:12]}"
    with tempfile.TemporaryDirectory(prefix="handbook-release-") as tmp:
        # Both editions are built, the learner one and the learner repository (files and history) checked for
        # leaks, before any branch changes.
        site_dir = Path(tmp) / "site"
        build(root, cohort, site_dir, {"manifest": manifest, "notes": notes})
        check_no_leaks(site_dir)
        learner_dir = Path(tmp) / "learner"
        learner = learner_repository(root, cohort, learner_dir, LEARNER_BRANCH)
        instructor_dir = Path(tmp) / "instructor" / "site"
        if instructor_branch:
            instructor_dir.parent.mkdir()
            build(root, cohort, instructor_dir, {"manifest": manifest, "notes": notes}, INSTRUCTOR)
            export_quiz(root, instructor_dir / "instructor" / "lms")
        deploy(root, cohort, site_dir, branch, message)
        if instructor_branch:
            deploy(root, cohort, instructor_dir, instructor_branch, f"{message}, instructor edition")
        # its history is the local learner-repo's plus at most one commit: a fast-forward, never a rewrite
        git(root, "fetch", "--quiet", "--no-tags", str(learner_dir), f"main:refs/heads/{LEARNER_BRANCH}")
        bundle = None
        if not learner_remote:
            bundle = learner_bundle or root / BUNDLE_DIR / f"mod107-learner-{cohort}.bundle"
            bundle.parent.mkdir(parents=True, exist_ok=True)
            git(learner_dir, "bundle", "create", "--quiet", str(Path(os.path.abspath(bundle))), "HEAD", "main")
    if push_to:
        push(root, push_to, branch)
        if instructor_branch:
            push(root, instructor_remote or push_to, instructor_branch)
        push(root, history[0], LEARNER_BRANCH, history[1])
    return {**notes, "learner_repository": {"commit": learner.commit, "new_commit": learner.new_commit,
                                            "remote": learner_remote, "bundle": str(bundle) if bundle else None}}


def learner_repository(root: Path, cohort: str, out: Path, local_branch: str):
    """The learner repository for COHORT in OUT: the history of LOCAL_BRANCH (when there is one) plus one commit,
    checked for leaks over its files and whole history (handbook/site/learner_repo)."""
    from handbook.site import learner_repo

    base = (root, f"refs/heads/{local_branch}") if has_ref(root, local_branch) else None
    try:
        return learner_repo.generate(out, root, cohort=cohort, base=base)
    except learner_repo.LearnerRepoError as err:
        raise ReleaseError(f"the learner repository: {err}") from None


def export_quiz(root: Path, folder: Path) -> None:
    """The quiz for LMS import (Canvas QTI 1.2 and Moodle XML, handbook/course/quiz/export.py), in the instructor edition;
    nothing when the repository has no quiz (no bank or no key)."""
    if not ((root / "docs" / "assessment" / "bank.yaml").is_file() and (root / "instructor" / "quiz" / "key.yaml").is_file()):
        return
    for fmt in ("qti", "moodle"):
        proc = subprocess.run([sys.executable, "-m", "handbook.quiz", "export", "--format", fmt, str(folder)],
                              cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise ReleaseError(f"the quiz export ({fmt}) failed: {last}")


def check_instructor_branch(branch: str, instructor_branch: str | None) -> None:
    if instructor_branch is not None and (instructor_branch == branch or not re.match(r"^[\w][\w./-]*$", instructor_branch)):
        raise ReleaseError(f"--instructor-branch {instructor_branch!r} must be a branch name other than {branch}: "
                           "the instructor edition never goes where learners read")


def deploy(root: Path, cohort: str, site_dir: Path, branch: str, message: str) -> None:
    """Commit SITE_DIR as version COHORT on BRANCH; the newest cohort there gets `latest` and the default."""
    from mike import commands, git_utils

    names = [v["version"] for v in deployed_versions(root, branch)]
    newest = sorted(set(names) | {cohort}, key=cohort_key)[-1]
    aliases = [LATEST] if cohort == newest else []
    cwd = os.getcwd()
    os.chdir(root)  # mike's git helpers work on the current directory's repository
    try:
        cfg = {"site_dir": str(site_dir), "use_directory_urls": True}
        with commands.deploy(cfg, cohort, aliases=aliases, update_aliases=True, branch=branch,
                             message=message + (" (latest)" if aliases else "")):
            pass  # built already
        if default_version(root, branch) != newest:
            commands.set_default(newest, branch=branch, message=f"Default version: cohort {newest}")
    except git_utils.GitError as err:
        raise ReleaseError(f"mike could not commit to {branch}: {str(err).splitlines()[0]}") from None
    finally:
        os.chdir(cwd)


def set_retired(root: Path, cohort: str, retired: bool, *, push_to: str | None = None, branch: str = BRANCH) -> None:
    cohort_key(cohort)
    if push_to:
        sync_with_remote(root, push_to, branch)
    if not has_ref(root, branch):
        raise ReleaseError(f"there is no {branch} branch here: release a cohort first (python -m handbook.release COHORT)")
    versions = {v["version"]: v for v in deployed_versions(root, branch)}
    if cohort not in versions:
        raise ReleaseError(f"cohort {cohort} is not deployed on {branch} (deployed: {', '.join(versions) or 'none'}); "
                           "release it first")
    if bool((versions[cohort].get("properties") or {}).get("retired")) == retired:
        print(f"release: cohort {cohort} is already {'retired' if retired else 'current'}; nothing to do")
    else:
        from mike import commands, jsonpath

        value = True if retired else jsonpath.Deleted
        cwd = os.getcwd()
        os.chdir(root)
        try:
            commands.set_properties(cohort, [(jsonpath.parse("retired"), value)], branch=branch,
                                    message=f"{'Retire' if retired else 'Un-retire'} cohort {cohort}")
        finally:
            os.chdir(cwd)
        print(f"release: cohort {cohort} is now {'retired: its pages show the outdated banner' if retired else 'current'}")
    if push_to:
        push(root, push_to, branch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handbook.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("cohort", help=f"the cohort's name: {NAME_HELP}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--retire", action="store_true", help="mark a released cohort retired (outdated banner)")
    mode.add_argument("--unretire", action="store_true", help="undo --retire")
    parser.add_argument("--no-checks", action="store_true", help="skip python -m pytest before building")
    parser.add_argument("--push", action="store_true", help=f"sync with {REMOTE}/{BRANCH} first, push {BRANCH} after")
    parser.add_argument("--instructor-branch", metavar="BRANCH",
                        help=f"also deploy the instructor edition ({INSTRUCTOR_CONFIG}) to this branch, e.g. instructor-pages")
    parser.add_argument("--instructor-remote", metavar="REMOTE",
                        help=f"with --push, push the instructor branch to this remote (default: {REMOTE})")
    parser.add_argument("--learner-remote", metavar="REMOTE",
                        help=f"with --push, push the learner repository to this remote's main (default: a remote named "
                             f"{LEARNER_REMOTE!r} when there is one; without one, a git bundle is written)")
    parser.add_argument("--learner-bundle", metavar="PATH", type=Path,
                        help=f"where the learner repository's bundle goes (default: {BUNDLE_DIR}/mod107-learner-COHORT.bundle)")
    args = parser.parse_args(argv)
    root = Path.cwd()
    push_to = REMOTE if args.push else None
    try:
        if args.instructor_remote and not args.instructor_branch:
            raise ReleaseError("--instructor-remote needs --instructor-branch BRANCH (the branch to push there)")
        if args.retire or args.unretire:
            set_retired(root, args.cohort, args.retire, push_to=push_to)
            if args.instructor_branch:
                check_instructor_branch(BRANCH, args.instructor_branch)
                set_retired(root, args.cohort, args.retire, push_to=push_to and (args.instructor_remote or push_to),
                            branch=args.instructor_branch)
            return 0
        notes = release(root, args.cohort, checks=not args.no_checks, push_to=push_to,
                        instructor_branch=args.instructor_branch, instructor_remote=args.instructor_remote,
                        learner_remote=args.learner_remote, learner_bundle=args.learner_bundle)
    except ReleaseError as err:
        print(f"release: error: {err}", file=sys.stderr)
        return 1
    print(notes_markdown(notes), end="")
    print(f"release: deployed cohort {args.cohort} to {BRANCH}"
          + (f" and pushed it to {REMOTE}" if push_to else f" (local only; push with: git push {REMOTE} {BRANCH})"))
    if args.instructor_branch:
        remote = args.instructor_remote or REMOTE
        print(f"release: deployed the instructor edition of cohort {args.cohort} to {args.instructor_branch}"
              + (f" and pushed it to {remote}" if push_to else f" (local only; push with: git push {remote} {args.instructor_branch})"))
    learner = notes["learner_repository"]
    what = f"commit {learner['commit'][:12]}" + ("" if learner["new_commit"] else ", unchanged since the last release")
    if learner["remote"]:
        print(f"release: the learner repository ({what}) is on {LEARNER_BRANCH}"
              + (f" and pushed to {learner['remote']} main" if push_to
                 else f" (local only; push with: git push {learner['remote']} {LEARNER_BRANCH}:main)"))
    else:
        print(f"release: the learner repository ({what}) is in {learner['bundle']}, for learners to clone "
              f"(no learner remote; add one with git remote add {LEARNER_REMOTE} URL)"
              + (f"; its history is pushed to {REMOTE} {LEARNER_BRANCH}" if push_to else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
