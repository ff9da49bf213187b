"""Loads the handbook harness for any pytest run in this repository, `pytest docs/page.md` included."""
pytest_plugins = ["handbook.harness.plugin"]
