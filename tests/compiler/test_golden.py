"""Golden plans: every example compiles to exactly the plan committed under golden/.

A change to a plan is a change to what users get, so it must show up in review as a diff
of these files. Regenerate after an intended change with:

    TRAINSPEC_UPDATE_GOLDENS=1 pytest tests/compiler/test_golden.py
"""

import os
from pathlib import Path

import pytest
from trainspec._cmd_compile import plan_text
from trainspec.compiler import compile_file

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted(
    p.relative_to(ROOT)
    for p in (ROOT / "examples").rglob("*.yaml")
    if p.name != "trainspec.defaults.yaml" and "node_modules" not in p.parts
)

# A plan records the botocore version that checked it: the golden holds constraints.txt's.
pytestmark = pytest.mark.pinned


@pytest.mark.parametrize("spec", EXAMPLES, ids=[str(p) for p in EXAMPLES])
def test_example_compiles_to_its_golden_plan(spec, tmp_path, monkeypatch):
    # Plans name local paths from the project root, so the working directory (here one
    # outside the checkout) changes nothing, and the digest is part of the golden.
    monkeypatch.chdir(tmp_path)
    golden = GOLDEN / (str(spec).replace("/", "__").removesuffix(".yaml") + ".plan.json")
    actual = plan_text(compile_file(ROOT / spec), "json") + "\n"
    assert str(ROOT) not in actual
    if os.environ.get("TRAINSPEC_UPDATE_GOLDENS"):
        golden.write_text(actual)
    assert golden.exists(), f"no golden plan for {spec}: run with TRAINSPEC_UPDATE_GOLDENS=1"
    assert actual == golden.read_text(), f"{spec} no longer compiles to {golden.name}"
