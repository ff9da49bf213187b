"""Unit checks of what the harness reads from a page: containers, options, requirements, includes."""
import pytest

from handbook import containers, requirements


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
