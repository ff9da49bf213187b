"""The course's tools for learners and instructors: the quiz (quiz/) and the incident drills (drills.py, whose
practice drills are practice_drills.toml). The module project's fleet is handbook/fleet/.
"""
