"""`python -m handbook.drills` runs the incident drills.

The README's command line, kept where it always was: it runs handbook.course.drills.
"""
import sys

from handbook.course import drills as command

if __name__ == "__main__":
    sys.exit(command.main())
