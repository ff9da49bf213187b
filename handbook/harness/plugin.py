"""The harness: every python block of docs/**/*.md runs as a pytest test, built on pytest-markdown-docs.

What it adds to pytest-markdown-docs, through its hooks and item class:
- fences inside admonitions, details and content tabs are seen (PageParser flattens them);
- a block holding `--8<-- "file.py"` runs that snippet, with tracebacks in the snippet's own lines;
- fence options are validated (an unknown one fails collection with page:line), `requires=` skips with its
  reason (or fails in GPU-runner mode), `timeout=` overrides the default timeout;
- each block runs as `__main__` in a child process (execution.py) and a fresh temporary working directory: a
  block that ends its process fails alone; GPU blocks get a fresh interpreter and GPUs of their own
  (scheduling.py); `--shard I/N` runs one of N balanced parts (sharding.py);
- console/bash/sh fences with `run` are executed (shell_blocks.py);
- each page also gets a `page-checks` item: its figure references, typed figures, nvidia-smi fields and internal
  links (page_checks.py), so `pytest docs/PAGE.md` catches what the full suite would;
- notebooks under docs/ get one item per code cell (`page.ipynb::cellN`), run on CPU without touching the file;
- a per-page summary at the end: ran / skipped by reason / failed / notest, and any block unaccounted for.
`--markdown-docs` (pytest-markdown-docs' own collector) is accepted and changes nothing: the pages are ours to
collect, and collecting them twice would run every block twice.
"""
import dataclasses
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from pytest_markdown_docs.definitions import FenceTestDefinition
from pytest_markdown_docs.plugin import MarkdownInlinePythonItem

from handbook.harness import policy, blocks, execution, page_checks, requirements, scheduling, sharding, shell_blocks
from handbook.recordings import notebooks
from handbook import recordings
from handbook.harness.policy import BlockFailed

GPU_RUNNER_ENV = "HANDBOOK_GPU_RUNNER"
ISOLATION_ENV = "HANDBOOK_ISOLATION"


def pytest_addoption(parser):
    group = parser.getgroup("handbook")
    group.addoption(
        "--gpu-runner",
        action="store_true",
        default=os.environ.get(GPU_RUNNER_ENV) == "1",
        help=f"a block whose requires= this machine cannot meet fails instead of skipping (or {GPU_RUNNER_ENV}=1)",
    )
    group.addoption(
        "--isolation", choices=("auto", "fresh", "none"), default=os.environ.get(ISOLATION_ENV, "auto"),
        help="auto: CPU blocks in a block server (a fresh interpreter per worker), GPU blocks in a fresh interpreter "
             "each; fresh: every block in a fresh interpreter; none: in the pytest process (for --pdb; a crash takes "
             "the worker down)",
    )
    group.addoption("--shard", default=None, metavar="I/N",
                    help="run part I of N (1-based), balanced by the recorded durations (see sharding.py)")


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`pytest docs/page.md` (the author's loop) runs in this process: starting workers costs more than they save
    on one page, whose blocks run one after another anyway (--dist loadfile). Otherwise three workers per two
    cores: much of the suite waits (simulated GPUs play in real time, samplers sleep through their windows,
    processes start, the browser waits for the network to settle), and the extra worker keeps the cores busy
    meanwhile (checks/bench/bench_checks.py times the full suite both ways)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    paths = [arg.split("::")[0] for arg in config.args]
    if len(paths) == 1 and paths[0].endswith(".md"):
        return 0
    return max(1, (3 * (os.cpu_count() or 1)) // 2)


@pytest.hookimpl(tryfirst=True)
def pytest_markdown_docs_markdown_it():
    return blocks.PageParser()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.option.markdowndocs = False  # see the module's docstring
    config.pluginmanager.register(BlockSummary(config), "handbook-block-summary")


def pytest_collect_file(file_path: Path, parent):
    roots = (parent.config.rootpath / "docs", parent.config.rootpath / "instructor")  # instructor: lab solutions
    if not any(root in file_path.parents for root in roots):
        return None
    if file_path.suffix == ".md":
        return HandbookPage.from_parent(parent, path=file_path)
    if file_path.suffix == ".ipynb":
        return NotebookPage.from_parent(parent, path=file_path)
    return None


PARSED: dict = {}  # page path -> its blocks, as this run collected them (the summary reads them again)


class HandbookPage(pytest.File):
    def collect(self):
        snippet_dir = self.config.rootpath / "snippets"
        try:
            page_blocks = PARSED[self.path] = blocks.parse_page(self.path, snippet_dir)
        except blocks.BlockError as err:
            raise self.CollectError(str(err)) from None
        except Exception as err:  # noqa: BLE001 - never a traceback for an author; fence fuzzing keeps this unreached
            raise self.CollectError(f"{blocks.rel(self.path)}: the harness could not read this page "
                                    f"({type(err).__name__}: {err}); this is a harness bug, please report it") from None
        yield PageChecks.from_parent(self, name=PageChecks.NAME)
        chain = None  # (source, previous block) of the last checked python block, for continuation
        for block in page_blocks:
            if shell_blocks.runs(block):
                yield shell_blocks.ShellBlockItem.from_parent(self, name=f"L{block.line}", block=block)
                continue
            if not block.checked:
                continue
            source, path = block.code, self.path
            if "continuation" in block.options and chain:
                previous_source, previous = chain
                if previous.snippet:
                    raise self.CollectError(f"{block.where}: a continuation cannot follow a block that includes a "
                                            f"snippet ({previous.where}): put the code in the snippet, or drop continuation")
                if not block.requires:
                    block = dataclasses.replace(block, requires=previous.requires)  # it runs the previous code too
                source = previous_source + "\n" * (block.line - previous_source.count("\n")) + block.code
            else:
                source = "\n" * block.line + block.code  # line N of the source is line N of the page
            if block.snippet:
                source, path = "\n" * (block.snippet.first_line - 1) + block.snippet.text, block.snippet.path
            chain = (source, block)
            definition = FenceTestDefinition(source, tuple(block.options.get("fixtures", ())), block.line,
                                             source_path=path, runner_name=None)
            item = HandbookBlock.from_parent(self, name=f"L{block.line}", test_definition=definition, block=block)
            add_requirement_markers(item, block)
            yield item


def add_requirement_markers(item, block) -> None:
    """Timeouts are the child's (the harness kills it); requires= skips here unless GPU-runner mode fails it."""
    if item.config.getoption("isolation") == "none":
        if block.timeout:
            item.add_marker(pytest.mark.timeout(block.timeout))
    else:
        item.add_marker(pytest.mark.timeout(0))  # waiting for a GPU is not the block's time
    policy.mark_unmet_requirements(item, block)


class PageChecks(pytest.Item):
    """Everything about a page that is not one of its blocks (page_checks.py), as one item of the page."""

    NAME = "page-checks"

    def runtest(self):
        found = page_checks.problems(self.path, self.config.rootpath)
        if found:
            raise BlockFailed("\n".join(found))

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value) if excinfo.errisinstance(BlockFailed) else f"{blocks.rel(self.path)}: {excinfo.exconly()}"

    def reportinfo(self):
        return self.path, 0, f"{blocks.rel(self.path)}: figures, typed figures, nvidia-smi fields, links"


class NotebookPage(pytest.File):
    """A notebook: one item per code cell. The cells run once, in order, in a fresh interpreter on CPU (as in CI);
    the notebook file is never written, so its recorded GPU outputs stay."""

    def collect(self):
        self.results = None
        for number, _ in notebooks.code_cells(self.path):
            yield NotebookCell.from_parent(self, name=f"cell{number}", number=number)

    def run_once(self) -> dict:
        if self.results is None:
            self.results = notebooks.run_on_cpu(self.path, policy.default_timeout(self.config))
        return self.results


class NotebookCell(pytest.Item):
    def __init__(self, *, number: int, **kwargs):
        super().__init__(**kwargs)
        self.number = number
        self.add_marker(pytest.mark.timeout(0))  # the run has the harness's own timeout

    def runtest(self):
        result = self.parent.run_once().get(self.number)
        if result is None:
            pytest.skip(f"not run: {self.parent.run_once()['stopped']}")
        if result:
            raise BlockFailed(result)

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value) if excinfo.errisinstance(BlockFailed) else f"{self.where}: {excinfo.exconly()}"

    @property
    def where(self) -> str:
        return f"{blocks.rel(self.path)}:cell{self.number}"

    def reportinfo(self):
        return self.path, None, self.where


def gpu_slots(block, hw) -> int:
    """How many GPUs a block holds while it runs: what its requires= asks for. A block without requires= runs on
    CPU everywhere (as in CI), GPU host included; the recorder, not this pass, gives a `record` block its GPU."""
    return block.requires.gpus if block.requires else 0


def run_isolated(item, code: execution.Code, namespace: dict, fixtures: bool) -> execution.Outcome:
    """GPU blocks: a fresh interpreter on GPUs of their own. CPU blocks: the block server, or a fork when they need
    fixture values (which exist only in this process). A CPU block never sees a GPU: on a GPU host it would use
    one outside the GPU locks (and init CUDA in the server that later blocks share); a block that needs a GPU
    says requires=."""
    hw = requirements.detect()
    mode, slots = item.config.getoption("isolation"), gpu_slots(item.block, hw)
    timeout = policy.timeout_of(item.block, item.config)
    with scheduling.hold(hw.devices, slots) if slots and hw.devices else _no_gpus() as devices:
        pinned = {"CUDA_VISIBLE_DEVICES": scheduling.pinned_env(devices)["CUDA_VISIBLE_DEVICES"]} if devices else \
            {"CUDA_VISIBLE_DEVICES": ""} if hw.gpus else {}
        if mode == "fresh" or (slots and not fixtures):
            return execution.run_fresh(code, {**os.environ, **pinned}, timeout)
        if fixtures:
            return execution.run_forked(code, namespace, timeout, env_update=pinned)
        return execution.run_served(code, timeout, env_update=pinned)


class _no_gpus:
    def __enter__(self):
        return []

    def __exit__(self, *exc):
        return False


class HandbookBlock(MarkdownInlinePythonItem):
    def __init__(self, *, block: blocks.Block, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def setup(self):
        policy.fail_unmet_requirements(self, self.block)
        super().setup()

    def runtest(self):
        namespace = {}
        for extra in self.config.hook.pytest_markdown_docs_globals():
            namespace.update(extra)
        for name in self._fixtureinfo.names_closure:
            namespace[name] = self.fixture_request.getfixturevalue(name)
        path = str(self.test_definition.source_path)
        code = execution.Code(
            source=self.test_definition.source, path=path, where=self.block.where,
            shown_path=blocks.rel(Path(path)),
            runs_snippet=blocks.rel(self.block.snippet.path) if self.block.snippet else "",
            sim=self.block.options.get("sim") or "")
        if self.config.getoption("isolation") == "none":
            failure = execution.execute(code, namespace)
        else:
            outcome = run_isolated(self, code, namespace, fixtures=bool(self.block.options.get("fixtures")))
            sys.stdout.write(outcome.output)  # pytest shows it under "Captured stdout call" (or live with -s)
            failure = outcome.failure
        if failure:
            raise BlockFailed(failure)

    def repr_failure(self, excinfo, style=None):
        """`docs/page.md:LINE: Error: message`, then the traceback from the block's own frames on."""
        if excinfo.errisinstance(BlockFailed):
            return str(excinfo.value)
        if excinfo.errisinstance(pytest.fail.Exception) and not excinfo.value.pytrace:
            return str(excinfo.value)
        return f"{self.block.where}: {excinfo.exconly()}"

    def reportinfo(self):
        return self.path, self.block.line - 1, self.block.where


def pytest_collection_modifyitems(config, items):
    spec = config.getoption("shard")
    if not spec:
        return
    try:
        index, count = sharding.parse(spec)
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None
    keep = {item.nodeid for item in sharding.select(items, index, count)}
    deselected = [item for item in items if item.nodeid not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = [item for item in items if item.nodeid in keep]


# ---- the summary -------------------------------------------------------------------------------------------

class BlockSummary:
    """Counts every block's outcome per page (on the xdist controller too) and prints them at the end."""

    def __init__(self, config):
        self.config = config
        self.outcome: dict[str, tuple[str, str]] = {}  # nodeid -> (outcome, skip reason)
        self.broken_pages: set[str] = set()
        self.elsewhere: Counter = Counter()  # page -> blocks deselected by --shard (they run in another shard)

        self.shard_ids: set[str] | None = None  # with xdist, what the workers kept after --shard

    def pytest_deselected(self, items):
        if self.config.getoption("shard"):
            self.elsewhere.update(item.nodeid.partition("::")[0] for item in items if isinstance(item, (HandbookBlock, shell_blocks.ShellBlockItem)))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        if self.config.getoption("shard"):
            self.shard_ids = set(ids) | (self.shard_ids or set())

    def pytest_runtest_logreport(self, report):
        page, sep, name = report.nodeid.partition("::")
        if not page.endswith(".md") or not sep or name == PageChecks.NAME:
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
            page_blocks = PARSED.get(root / page) or blocks.parse_page(root / page, root / "snippets")
            counts["notest"] = sum(1 for b in page_blocks if b.lang in blocks.PYTHON and not b.checked)
            if self.shard_ids is not None:  # the xdist controller: blocks of the page no worker kept
                self.elsewhere[page] = sum(1 for b in page_blocks if (b.checked or shell_blocks.runs(b))
                                           and f"{page}::L{b.line}" not in self.shard_ids)
            counts["unaccounted"] = sum(b.checked or shell_blocks.runs(b) for b in page_blocks) - sum(
                counts[k] for k in ("ran", "skipped", "failed")) - self.elsewhere[page]
            counts["other shards"] = self.elsewhere[page]
            totals.update(counts)
            line = f"{page}  " + "  ".join(f"{k} {counts[k]}" for k in ("ran", "skipped", "failed", "notest"))
            if counts["other shards"]:
                line += f"  in other shards {counts['other shards']}"
            if counts["unaccounted"]:
                line += f"  unaccounted {counts['unaccounted']} (deselected or not run)"
            tr.line(line, red=bool(counts["failed"]))
            for reason, n in sorted(reasons.items()):
                tr.line(f"    skipped {n}: {reason}")
            for b in page_blocks:
                if not b.recorded:
                    continue
                state = recordings.state(b.snippet.path)
                if state.kind == "missing":
                    totals["unrecorded"] += 1
                    tr.line(f"    not recorded yet: {b.where} ({b.snippet.path.name}; python -m handbook.record {page})", yellow=True)
                elif state.kind == "awaiting":  # recorded before, to be re-recorded on more GPUs (issue 11)
                    totals["awaiting"] += 1
                    tr.line(f"    {b.where} ({b.snippet.path.name}): {state.awaiting_line}", yellow=True)
        kinds = ("ran", "skipped", "failed", "notest", "unaccounted", "unrecorded") + tuple(
            k for k in ("awaiting", "other shards") if totals[k])
        tr.line("blocks: " + ", ".join(f"{totals[k]} {k}" for k in kinds)
                + (f", {len(self.broken_pages)} pages not collected" if self.broken_pages else ""), bold=True)
