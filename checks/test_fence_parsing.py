"""Unit checks of what the harness reads from a page: containers, options, requirements, includes."""
import pytest

from handbook.harness import containers, requirements


def test_flatten_keeps_line_numbers_and_dedents_container_bodies():
    page = "a\n!!! note\n\n    ```python\n        x = 1\n    ```\n=== \"T\"\n\n    ??? tip\n\n        y\nz\n"
    flat = containers.flatten(page).split("\n")
    assert len(flat) == len(page.split("\n"))
    assert flat[3] == "```python" and flat[4] == "    x = 1"  # code indentation inside the fence survives
    assert flat[1] == "" and flat[10] == "y" and flat[11] == "z"


@pytest.mark.parametrize("text, gpus, mem, cc", [
    ("gpu", 1, 0, (0, 0)),
    ("gpus>=2", 2, 0, (0, 0)),
    ("gpu mem>=40GiB cc>=9.0", 1, 40 * 2**30, (9, 0)),
    ("mem>=80GB", 1, 80 * 10**9, (0, 0)),
])
def test_requirement_grammar(text, gpus, mem, cc):
    req = requirements.parse(text)
    assert (req.gpus, req.mem_bytes, req.cc) == (gpus, mem, cc)


@pytest.mark.parametrize("text", ["", "gpu mem>40GiB", "gpus>=two", "cc>=9", "tpu", "mem>=40gb"])
def test_malformed_requirements_are_refused(text):
    with pytest.raises(requirements.RequirementError):
        requirements.parse(text)


def test_unmet_says_why():
    h100 = requirements.Hardware(gpus=1, min_mem_bytes=80 * 10**9, min_cc=(9, 0))
    assert requirements.unmet(requirements.parse("gpu cc>=9.0"), h100) is None
    assert requirements.unmet(requirements.parse("gpus>=2"), h100) == "requires gpus>=2 (this machine: 1 GPU(s))"
    assert "smallest GPU has 74.5 GiB" in requirements.unmet(requirements.parse("mem>=100GB"), h100)
    assert "compute capability 9.0" in requirements.unmet(requirements.parse("cc>=10.0"), h100)
    none = requirements.Hardware(why_none="NVML: NVML Shared Library Not Found")
    assert requirements.unmet(requirements.parse("gpu"), none) == \
        "requires gpu (this machine: no GPU (NVML: NVML Shared Library Not Found))"


# ---- fuzzing the fence parser: every fence superfences accepts is collected or refused with page:line ----------


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from pymdownx.superfences import RE_NESTED_FENCE_START  # noqa: E402

from handbook.harness import blocks  # noqa: E402

LANGS = st.sampled_from(["python", "py", "python3", "console", "bash", "sh", "shell", "yaml", "text", "", "Python",
                         ".python", "c++", "python#x"])
KEYS = st.sampled_from(["requires", "timeout", "sim", "record", "notest", "continuation", "run", "title", "linenums",
                        "hl_lines", "fixture:tmp_path", "fixture:", "requiers", "retry:2", "runner:x", "x"])
VALUES = st.one_of(
    st.sampled_from(["gpu", "gpus>=2", "gpu mem>=40GiB cc>=9.0", "", "0", "10", "²", "١٢", "-1", "1e3", "healthy-idle",
                     "no-such-scenario", "a b", "mem>=40gb", "gpus>=99999999999999999999"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r`"), max_size=12))
QUOTES = st.sampled_from(['"', "'", "", '"unclosed'])


@st.composite
def info_strings(draw):
    words = []
    for _ in range(draw(st.integers(0, 4))):
        key, quote = draw(KEYS), draw(QUOTES)
        if draw(st.booleans()):
            value = draw(VALUES)
            words.append(f"{key}={quote}{value}{quote}" if quote != '"unclosed' else f'{key}="{value}')
        else:
            words.append(key)
    lang = draw(LANGS)
    if draw(st.integers(0, 4)) == 0:  # the brace form {.lang key="v"}
        return "{" + " ".join(([f".{lang.lstrip('.')}"] if lang else []) + words) + "}"
    if draw(st.integers(0, 9)) == 0:  # arbitrary junk
        return draw(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r`"), max_size=30))
    return " ".join([lang] + words)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(info=info_strings(), body=st.sampled_from(["print(1)\n", '--8<-- "s/p/01_a.py"\n', "$ echo hi\nhi\n", ""]))
def test_every_fence_superfences_accepts_is_collected_or_refused_with_page_line(tmp_path, info, body):
    fence = "```"
    if not RE_NESTED_FENCE_START.match(fence + info):
        return  # not a fence for the site either: nothing to collect
    (tmp_path / "snippets" / "s" / "p").mkdir(parents=True, exist_ok=True)
    (tmp_path / "snippets" / "s" / "p" / "01_a.py").write_text("print('a')\n")
    page = tmp_path / "docs" / "fuzz.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text(f"# Fuzz\n\n{fence}{info}\n{body}{fence}\n", encoding="utf-8")
    try:
        found = blocks.parse_page(page, tmp_path / "snippets")
    except blocks.BlockError as err:
        assert str(err).startswith(f"{blocks.rel(page)}:3: "), str(err)
        assert len(str(err).splitlines()) == 1
        return
    for block in found:
        assert block.line == 3
        if block.requires:
            assert block.requires.gpus >= 1


def test_the_brace_form_is_collected_like_the_plain_one(tmp_path):
    page = tmp_path / "docs" / "brace.md"
    page.parent.mkdir()
    page.write_text('# B\n\n```{.python timeout=5}\nprint(1)\n```\n')
    (block,) = blocks.parse_page(page, tmp_path)
    assert block.checked and block.timeout == 5


@pytest.mark.parametrize("info, message", [
    ('python timeout=²', "timeout='²' must be a whole number of seconds"),
    ("python record record", "fence option 'record' is given twice"),
    ('console sim="healthy-idle"', "sim on a console block only mean something with `run`"),
    ('bash requires="gpu"', "requires on a bash block only mean something with `run`"),
])
def test_fences_the_fuzzer_found_are_refused_with_what_to_write(tmp_path, info, message):
    page = tmp_path / "docs" / "f.md"
    page.parent.mkdir()
    page.write_text(f"# F\n\n```{info}\nprint(1)\n```\n")
    with pytest.raises(blocks.BlockError, match=message.replace("(", r"\(").replace("`", "`")):
        blocks.parse_page(page, tmp_path)
