"""The other half of the learner pages, audited as test_a11y.py audits its half (WCAG 2.1 A/AA in both palettes,
offline, weight), so that two workers share the browser's work."""
import pytest

import a11y_audit
from test_a11y import audit_pass, browser, instructor, learner  # noqa: F401 - fixtures shared with that file

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def audited(browser, learner, instructor):  # noqa: F811
    return audit_pass(browser, learner, instructor, half=1)


def test_every_page_of_this_half_meets_wcag21_aa_in_both_palettes(audited):
    results = audited["results"]["learner"]
    assert len(results) >= 30, [r.path for r in results]
    problems = [p for r in results for p in r.problems]
    assert not problems, (f"axe-core {a11y_audit.axe_version()}: {len(problems)} WCAG 2.1 A/AA violation(s):\n"
                          + "\n".join(problems[:40]))


def test_no_page_of_this_half_asks_another_host(audited):
    assert not audited["external"], ", ".join(f"{h} (first by {p})" for h, p in audited["external"].items())


def test_every_page_of_this_half_loads_within_the_weight_budget(audited):
    heavy = [f"{r.path or '(home)'}: {r.weight / 1024:.0f} KiB" for r in audited["results"]["learner"]
             if r.weight > a11y_audit.BUDGET_BYTES]
    assert not heavy, f"cold loads over {a11y_audit.BUDGET_BYTES // 1024} KiB gzip-equivalent: {heavy}"
