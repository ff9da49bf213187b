"""python -m handbook.site.learner_repo OUT [--list]: generate the learner repository (see handbook/site/learner_repo)."""
import argparse
import sys
from pathlib import Path

from handbook.site.learner_repo import LearnerRepoError, __doc__ as DOC, generate, plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handbook.site.learner_repo", description=DOC.split("\n\n")[0],
                                     epilog="make learner-repo OUT=DIR runs the same.")
    parser.add_argument("out", type=Path, help="a new or empty folder, or an earlier learner repository")
    parser.add_argument("--list", action="store_true", help="print every file it would hold and why; write nothing")
    args = parser.parse_args(argv)
    try:
        if args.list:
            result = plan(Path.cwd())
            for rel in sorted(result.files):
                print(f"{rel}  ({result.why[rel]})")
            print(f"learner-repo: {len(result.files)} files, clone URL {result.clone_url}")
            return 0
        done = generate(args.out, Path.cwd())
    except LearnerRepoError as err:
        print(f"learner-repo: error: {err}", file=sys.stderr)
        return 1
    what = "a new commit" if done.new_commit else "no new commit: the same tree as its last one"
    print(f"learner-repo: {done.out}: {done.files} files, {what} ({done.commit[:12]} on main); "
          f"learners clone {done.clone_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
