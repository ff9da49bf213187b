"""The block harness: every code block of a page runs as a pytest test (plugin.py, loaded by conftest.py).

blocks.py finds a page's fences and what each needs (fence_options.py, includes.py, requirements.py); policy.py
decides timeouts and skip-or-fail; execution.py runs Python in a child process; scheduling.py gives GPU blocks
GPUs of their own; shell_blocks.py runs `run` shell fences; page_checks.py checks the rest of a page;
sharding.py splits a run for several runners.
"""
