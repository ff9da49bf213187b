"""The site: MkDocs hooks (hooks.py, a11y_hook.py, editions.py for the instructor edition), what the build derives
(calculators.py, build_cache.py), cohort releases (release.py) with the generated learner repository
(learner_repo/) and the leak check over what learners get (leaks.py), and test helpers that serve and crawl a
built site (crawl.py).
"""
