"""`python -m handbook.record` records a page's GPU blocks.

The README's command line, kept where it always was: it runs handbook.recordings.recorder.
"""
import sys

from handbook.recordings import recorder as command

if __name__ == "__main__":
    sys.exit(command.main())
