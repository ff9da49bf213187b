"""`python -m handbook.quiz` checks answer files, and grades them for instructors.

The README's command line, kept where it always was: it runs handbook.course.quiz.__main__.
"""
import sys

from handbook.course.quiz import __main__ as command

if __name__ == "__main__":
    sys.exit(command.main())
