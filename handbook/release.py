"""`python -m handbook.release` releases a cohort's version.

The README's command line, kept where it always was: it runs handbook.site.release.
"""
import sys

from handbook.site import release as command

if __name__ == "__main__":
    sys.exit(command.main())
