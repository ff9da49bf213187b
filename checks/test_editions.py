"""Two editions from one source: the learner edition (mkdocs.yml) holds no quiz key and no lab solution; the
instructor edition (mkdocs.instructor.yml) adds them (handbook/site/editions.py, handbook/site/leaks.py).

One strict build of each edition per run (checks/conftest.py, shared with the browser checks); the planted leaks
are planted in one copy of the learner build.
"""
import gzip
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from handbook import DOCS, INSTRUCTOR, ROOT, SNIPPETS
from handbook.harness import blocks
from handbook.site import leaks, crawl
from handbook.course.quiz import KEY, bank

pytestmark = pytest.mark.timeout(600)
LABS = ("lab1", "lab2", "lab3")


@pytest.fixture(scope="session")
def fragments():
    return leaks.fragments()


# ---- the learner edition --------------------------------------------------------------------------------------

def test_learner_edition_holds_no_instructor_material(learner_site, fragments):
    assert leaks.scan(learner_site, fragments) == []
    assert not (learner_site / "instructor").exists()
    assert not [p for p in learner_site.rglob("*") if p.name == KEY.name], "a key file was published"


def test_learner_edition_has_the_quiz_and_the_answer_template(learner_site):
    questions = bank.load()
    page = (learner_site / "assessment" / "questions" / "index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'<h3 id="([a-z0-9-]+)"', page))
    assert ids == set(questions.by_id), "every question is on the quiz page, with its id as its anchor"
    template = yaml.safe_load((learner_site / "assessment" / "answers.yaml").read_text(encoding="utf-8"))
    assert list(template["answers"]) == [q.id for q in questions.questions]
    assert all(v is None for v in template["answers"].values())
    # output items show real output: the recorded topology and a simulator run
    assert "NV18" in page and "GPU simulator" in page


def test_lab_pages_keep_the_tasks_and_lose_the_solutions():
    for lab in LABS:
        learner = (DOCS / "labs" / f"{lab}.md").read_text(encoding="utf-8")
        assert '??? success "Solution"' not in learner, f"docs/labs/{lab}.md still folds a solution in"
        assert "Completion criteria" in learner and "## Step" in learner
        solutions = (INSTRUCTOR / "labs" / f"{lab}.md").read_text(encoding="utf-8")
        assert solutions.count("\n## ") >= 1 and leaks.MARKER in solutions.lower()


def test_no_learner_page_includes_a_whole_solution_snippet():
    solutions = leaks.solution_snippets()
    assert {SNIPPETS / "labs/lab2/02_train.py", SNIPPETS / "labs/lab1/02_gpu_exporter.py"} <= solutions
    whole = [f"{blocks.rel(page)}:{b.line} includes {b.snippet.path.relative_to(SNIPPETS)}"
             for page in blocks.pages(DOCS) for b in blocks.parse_page(page)
             if b.snippet and b.snippet.path in solutions and not b.snippet.section]
    assert not whole, f"learner pages that publish a lab solution: {whole}"


def test_every_instructor_page_carries_the_marker():
    for page in blocks.pages(INSTRUCTOR):
        assert leaks.MARKER in page.read_text(encoding="utf-8").lower(), blocks.rel(page)
    assert leaks.MARKER in KEY.read_text(encoding="utf-8").lower()


# ---- the leak check catches leaks -------------------------------------------------------------------------

def test_the_leak_check_finds_instructor_material_in_the_instructor_edition(instructor_site, fragments):
    """Its fragments match rendered HTML, the search index and downloads: scanning the instructor build finds them."""
    found = {line.split(":", 1)[0] for line in leaks.scan(instructor_site, fragments)}
    assert {f"instructor/labs/{lab}/index.html" for lab in LABS} <= found
    assert {"instructor/assessment/index.html", "instructor/quiz/key.yaml"} <= found
    # and page by page: every sentence of an instructor page is found in its own rendered HTML
    for page in blocks.pages(INSTRUCTOR):
        rel = page.relative_to(INSTRUCTOR).with_suffix("")
        html_file = instructor_site / "instructor" / (rel.parent if rel.name == "index" else rel) / "index.html"
        text = leaks.readable_text(html_file)
        own = [f for f in fragments if f.source == blocks.rel(page)]
        missing = [f.text for f in own if f.text not in text]
        assert own and not missing, f"{blocks.rel(page)}: fragments not found in its own HTML: {missing[:3]}"


def test_planted_leaks_are_caught_in_every_kind_of_file(learner_site, instructor_site, fragments, tmp_path):
    # a lab solution's paragraph, as the instructor edition renders it, pasted into a learner page
    lab3 = (instructor_site / "instructor/labs/lab3/index.html").read_text(encoding="utf-8")
    paragraph = re.search(r"<li>(.{120,}?)</li>", lab3, re.S)[1]
    # the key, as a download and as a search index entry; a solution program as a download; a sitemap entry
    key_entry = re.search(r"^  [a-z0-9-]+:\n    answer: .+$", KEY.read_text(encoding="utf-8"), re.M)[0]
    plants = {
        "labs/lab3/index.html": lambda p: p.write_text(p.read_text().replace("</article>", f"<p>{paragraph}</p></article>")),
        "search/search_index.json": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "docs": [
            *json.loads(p.read_text())["docs"], {"location": "x/", "title": "x", "text": key_entry}]})),
        "assessment/key.yaml": lambda p: shutil.copy(KEY, p),
        "labs/02_train.py": lambda p: shutil.copy(SNIPPETS / "labs/lab2/02_train.py", p),
        "sitemap.xml": lambda p: p.write_text(p.read_text().replace(
            "</urlset>", "<url><loc>https://example.org/instructor/labs/lab1/</loc></url></urlset>")),
        "sitemap.xml.gz": lambda p: p.write_bytes(gzip.compress(KEY.read_bytes())),
    }
    # All planted in one copy: the scan reads file by file, so each file it names is one plant caught, and no
    # clean file may be named (the learner build itself scans clean above).
    site = tmp_path / "planted"
    shutil.copytree(learner_site, site)
    for target, how in plants.items():
        how(site / target)
    problems = leaks.scan(site, fragments)
    assert sorted(line.split(":", 1)[0] for line in problems) == sorted(plants), problems


def test_a_learner_page_that_includes_a_solution_keeps_its_lines_secret(tmp_path):
    docs = tmp_path / "docs"
    (docs / "labs").mkdir(parents=True)
    (docs / "labs" / "lab2.md").write_text('# Lab 2\n\n```python\n--8<-- "labs/lab2/02_train.py"\n```\n')
    lines = leaks.solution_code_lines(INSTRUCTOR, docs)
    assert {src for src in lines.values()} >= {"snippets/labs/lab2/02_train.py"}


def test_a_fragment_is_found_wherever_it_starts_and_ends(tmp_path):
    """The scan looks for a fragment's inner word first: a fragment cut mid-word at either end, or too short to
    have an inner word, is still found."""
    cut = leaks.Fragment("ference answer is forty-two, and only instruct", "instructor/x.md")
    short = leaks.Fragment("answer: b", "instructor/quiz/key.yaml")
    (tmp_path / "a.html").write_text("<p>The reference answer is <em>forty-two</em>, and only instructors</p>")
    (tmp_path / "b.json").write_text('{"text": "q-7: ANSWER:   b"}')
    (tmp_path / "c.html").write_text("<p>The reference answer is forty-two and only instructors</p>")  # no comma
    found = [line.split(":", 1)[0] for line in leaks.scan(tmp_path, [cut, short])]
    assert found == ["a.html", "b.json"]


def test_the_leak_command_says_what_leaked(learner_site, tmp_path):
    # The command's verdicts on two small sites: a learner page as built, then that page with the key beside it
    # (the whole learner build is scanned in-process above).
    site = tmp_path / "site"
    (site / "assessment").mkdir(parents=True)
    shutil.copy(learner_site / "assessment" / "questions" / "index.html", site / "assessment" / "index.html")
    ok = subprocess.run([sys.executable, "-m", "handbook.site.leaks", str(site)], capture_output=True, text=True)
    assert ok.returncode == 0 and "leaks: none" in ok.stdout
    shutil.copy(KEY, site / "assessment" / "key.yaml")
    bad = subprocess.run([sys.executable, "-m", "handbook.site.leaks", str(site)], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout.startswith("leak: assessment/key.yaml: has instructor material")
    assert "Traceback" not in bad.stderr


# ---- the instructor edition -----------------------------------------------------------------------------

def test_instructor_edition_adds_the_key_solutions_and_notes(instructor_site):
    key_page = (instructor_site / "instructor/assessment/index.html").read_text(encoding="utf-8")
    for q in bank.load().questions:
        assert f'href="../../assessment/questions/#{q.id}"' in key_page, q.id
    assert (instructor_site / "instructor/quiz/key.yaml").read_bytes() == KEY.read_bytes()
    for page in ("instructor/index.html", "instructor/running-labs/index.html",
                 *(f"instructor/labs/{lab}/index.html" for lab in LABS)):
        assert (instructor_site / page).is_file(), page
    assert "02_train.py" in (instructor_site / "instructor/labs/lab2/index.html").read_text(encoding="utf-8")
    # and it is the learner edition plus: every learner page is there too
    assert (instructor_site / "assessment/questions/index.html").is_file()


def test_instructor_config_inherits_the_learner_config():
    learner = crawl.load_mkdocs_yml(ROOT)
    with open(ROOT / "mkdocs.instructor.yml", encoding="utf-8") as f:
        text = f.read()
    instructor = yaml.safe_load(text.replace("!!python/name:", ""))
    assert instructor["INHERIT"] == "mkdocs.yml"
    # INHERIT replaces lists: the hooks must be the learner's, in order, plus the overlay
    assert instructor["hooks"] == [*learner["hooks"], "handbook/site/editions.py"]
    assert "handbook/site/editions.py" not in learner["hooks"]
