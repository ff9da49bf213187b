"""`python -m handbook.typed_figures` finds hand-typed figures in prose.

The README's command line, kept where it always was: it runs handbook.recordings.typed_figures.
"""
import sys

from handbook.recordings import typed_figures as command

if __name__ == "__main__":
    sys.exit(command.main())
