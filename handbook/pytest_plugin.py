"""The harness: every python block of docs/**/*.md runs as a pytest test, built on pytest-markdown-docs.

What it adds to pytest-markdown-docs, through its hooks and item class:
- fences inside admonitions, details and content tabs are seen (PageParser flattens them);
- a block holding `--8<-- "file.py"` runs that snippet, with tracebacks in the snippet's own lines;
- fence options are validated (an unknown one fails collection with page:line), `requires=` skips with its
  reason (or fails in GPU-runner mode), `timeout=` overrides the default timeout;
- each block runs as `__main__` in a fresh namespace and a fresh temporary working directory;
- a per-page summary at the end: ran / skipped by reason / failed / notest, and any block unaccounted for.
"""
import contextlib
import dataclasses
import os
import sys
import tempfile
import traceback
import types
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from pytest_markdown_docs.plugin import MarkdownInlinePythonItem, extract_fence_tests

from . import blocks, recordings, requirements

GPU_RUNNER_ENV = "HANDBOOK_GPU_RUNNER"


def pytest_addoption(parser):
    parser.getgroup("handbook").addoption(
        "--gpu-runner",
        action="store_true",
        default=os.environ.get(GPU_RUNNER_ENV) == "1",
        help=f"a block whose requires= this machine cannot meet fails instead of skipping (or {GPU_RUNNER_ENV}=1)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_markdown_docs_markdown_it():
    return blocks.PageParser()


def pytest_collect_file(file_path: Path, parent):
    docs = parent.config.rootpath / "docs"
    if file_path.suffix == ".md" and docs in file_path.parents:
        return HandbookPage.from_parent(parent, path=file_path)
    return None


class HandbookPage(pytest.File):
    def collect(self):
        snippet_dir = self.config.rootpath / "snippets"
        try:
            page_blocks = blocks.parse_page(self.path, snippet_dir)
        except blocks.BlockError as err:
            raise self.CollectError(str(err)) from None
        fences = {
            d.start_line: d
            for d in extract_fence_tests(blocks.PageParser(), self.path.read_text("utf-8"), 0, self.path)
        }
        previous = None
        for block in page_blocks:
            if not block.checked:
                continue
            if "continuation" in block.options and previous and not block.requires:
                block = dataclasses.replace(block, requires=previous.requires)  # it runs the previous code too
            previous = block
            definition = fences[block.line]
            if block.snippet:
                # Pad so that line N of the compiled code is line N of the snippet file.
                padding = "\n" * (block.snippet.first_line - 1)
                definition = dataclasses.replace(
                    definition, source=padding + block.snippet.text, source_path=block.snippet.path
                )
            item = HandbookBlock.from_parent(self, name=f"L{block.line}", test_definition=definition, block=block)
            if block.timeout:
                item.add_marker(pytest.mark.timeout(block.timeout))
            if block.requires and not gpu_runner_without_gpu(self.config):
                reason = requirements.unmet(block.requires, requirements.detect())
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
            yield item


class HandbookBlock(MarkdownInlinePythonItem):
    def __init__(self, *, block: blocks.Block, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def setup(self):
        if self.block.requires and gpu_runner_without_gpu(self.config):
            reason = requirements.unmet(self.block.requires, requirements.detect())
            pytest.fail(f"{self.block.where}: GPU-runner mode, but this block {reason}", pytrace=False)
        super().setup()

    def runtest(self):
        main = types.ModuleType("__main__")
        main.__file__ = str(self.test_definition.source_path)
        namespace = main.__dict__
        for extra in self.config.hook.pytest_markdown_docs_globals():
            namespace.update(extra)
        for name in self._fixtureinfo.names_closure:
            namespace[name] = self.fixture_request.getfixturevalue(name)
        with fresh_process_state(main), simulated_gpu(self.block.options.get("sim")):
            try:
                self.runner.runtest(self.test_definition, namespace)
            except SystemExit as exit_:
                if exit_.code not in (0, None):  # a program that ends with sys.exit(0) succeeded
                    raise

    def repr_failure(self, excinfo, style=None):
        """`docs/page.md:LINE: Error: message`, then the traceback from the block's own frames on."""
        if excinfo.errisinstance(pytest.fail.Exception) and not excinfo.value.pytrace:
            return str(excinfo.value)
        code_file = str(self.test_definition.source_path)
        frames = traceback.extract_tb(excinfo.tb)
        first = next((i for i, f in enumerate(frames) if f.filename == code_file), 0)
        lines = [f"{self.block.where}: {excinfo.exconly().splitlines()[0]}"]
        if self.block.snippet:
            lines.append(f"  the block runs {blocks.rel(self.block.snippet.path)}")
        lines.append("Traceback (most recent call last):")
        lines += [f'  File "{blocks.rel(Path(f.filename))}", line {f.lineno}, in {f.name}\n    {(f.line or "").strip()}'
                  for f in frames[first:]]
        lines.append(excinfo.exconly())
        return "\n".join(lines)

    def reportinfo(self):
        return self.path, self.block.line - 1, self.block.where


def gpu_runner_without_gpu(config) -> bool:
    """A GPU runner that lost its GPU must fail, not skip. One with fewer GPUs than a block asks for (gpus>=8 on
    a 2-GPU runner) still skips that block, with the reason."""
    return config.getoption("gpu_runner") and requirements.detect().gpus == 0


@contextlib.contextmanager
def fresh_process_state(main: types.ModuleType):
    """Run like `python program` would: argv, a scratch working directory, the block as sys.modules["__main__"]."""
    saved = sys.argv, os.getcwd(), sys.modules.get("__main__")
    with tempfile.TemporaryDirectory(prefix="block-") as scratch:
        sys.argv = [main.__file__]
        os.chdir(scratch)
        sys.modules["__main__"] = main
        try:
            yield
        finally:
            sys.argv = saved[0]
            os.chdir(saved[1])
            if saved[2] is not None:
                sys.modules["__main__"] = saved[2]


def simulated_gpu(scenario: str | None):
    if not scenario:
        return contextlib.nullcontext()
    from . import gpusim

    return gpusim.activate(scenario)


# ---- the summary -------------------------------------------------------------------------------------------

def pytest_configure(config):
    config.pluginmanager.register(BlockSummary(config), "handbook-block-summary")


class BlockSummary:
    """Counts every block's outcome per page (on the xdist controller too) and prints them at the end."""

    def __init__(self, config):
        self.config = config
        self.outcome: dict[str, tuple[str, str]] = {}  # nodeid -> (outcome, skip reason)
        self.broken_pages: set[str] = set()

    def pytest_runtest_logreport(self, report):
        page, sep, _ = report.nodeid.partition("::")
        if not page.endswith(".md") or not sep:
            return
        if report.skipped and report.when == "setup":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.outcome[report.nodeid] = ("skipped", reason.removeprefix("Skipped: "))
        elif report.failed:
            self.outcome[report.nodeid] = ("failed", "")
        elif report.when == "call" and report.passed:
            self.outcome[report.nodeid] = ("ran", "")

    def pytest_collectreport(self, report):
        if report.failed and report.nodeid.endswith(".md"):
            self.broken_pages.add(report.nodeid)

    def pytest_terminal_summary(self, terminalreporter):
        pages = defaultdict(lambda: (Counter(), Counter()))
        for nodeid, (outcome, reason) in self.outcome.items():
            counts, reasons = pages[nodeid.partition("::")[0]]
            counts[outcome] += 1
            if reason:
                reasons[reason] += 1
        if not pages and not self.broken_pages:
            return
        tr, root, totals = terminalreporter, self.config.rootpath, Counter()
        tr.section("handbook blocks")
        for page in sorted(self.broken_pages):
            tr.line(f"{page}  NOT COLLECTED (see the collection error above)", red=True)
        for page in sorted(set(pages) - self.broken_pages):
            counts, reasons = pages[page]
            page_blocks = blocks.parse_page(root / page, root / "snippets")
            counts["notest"] = sum(1 for b in page_blocks if b.lang in blocks.PYTHON and not b.checked)
            counts["unaccounted"] = sum(b.checked for b in page_blocks) - sum(
                counts[k] for k in ("ran", "skipped", "failed"))
            totals.update(counts)
            line = f"{page}  " + "  ".join(f"{k} {counts[k]}" for k in ("ran", "skipped", "failed", "notest"))
            if counts["unaccounted"]:
                line += f"  unaccounted {counts['unaccounted']} (deselected or not run)"
            tr.line(line, red=bool(counts["failed"]))
            for reason, n in sorted(reasons.items()):
                tr.line(f"    skipped {n}: {reason}")
            unrecorded = [b for b in page_blocks if b.recorded and recordings.state(b.snippet.path).kind == "missing"]
            totals["unrecorded"] += len(unrecorded)
            for b in unrecorded:
                tr.line(f"    not recorded yet: {b.where} ({b.snippet.path.name}; python -m handbook.record {page})", yellow=True)
        tr.line("blocks: " + ", ".join(f"{totals[k]} {k}" for k in ("ran", "skipped", "failed", "notest", "unaccounted", "unrecorded"))
                + (f", {len(self.broken_pages)} pages not collected" if self.broken_pages else ""), bold=True)
