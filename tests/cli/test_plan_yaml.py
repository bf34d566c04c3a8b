"""`compile --format yaml` writes plans with libyaml's emitter when it can: the text must be
what PyYAML's Python emitter writes (plans, lock files and reviews were made with it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainspec._cmd_compile import _SAME_TEXT, _same_text, plan_yaml
from trainspec._plan import plan_document
from trainspec.compiler import compile_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("t*/*.yaml")) + [ROOT / "examples/digits/job.yaml"]


def python_emitter(data) -> str:
    return yaml.safe_dump(data, sort_keys=True, allow_unicode=True, width=100).rstrip()


def documents(text):
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text)
    keys = st.one_of(text, st.just(""))
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=20,
    )
    return st.dictionaries(keys, values, max_size=6)


SAME = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0xFFFD).filter(_SAME_TEXT.fullmatch),
    max_size=160,
)
SETTINGS = settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(documents(SAME))
def test_both_emitters_write_the_same_documents_of_same_text(data):
    if _same_text(data):  # what plan_yaml gives libyaml
        text = yaml.dump(
            data, Dumper=yaml.CSafeDumper, sort_keys=True, allow_unicode=True, width=100
        )
        assert text.rstrip() == python_emitter(data)


@SETTINGS
@given(documents(st.text(max_size=40)))
def test_any_document_is_written_as_the_python_emitter_writes_it(data):
    assert plan_yaml(data) == python_emitter(data)


def test_both_emitters_write_each_character_of_same_text_alike():
    """Every 16th character of the set (all of them agreed when the set was chosen), alone,
    inside words, in a key and after a colon."""
    for code in range(0x20, 0xFFFE, 16):
        char = chr(code)
        if not _SAME_TEXT.fullmatch(char):
            continue
        for data in (
            {"k": char},
            {"k": f"a{char}b"},
            {char: [f"{char} x"]},
            {"k": f"x: {char * 3}"},
        ):
            text = yaml.dump(
                data, Dumper=yaml.CSafeDumper, sort_keys=True, allow_unicode=True, width=100
            )
            assert text.rstrip() == python_emitter(data), hex(code)


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_plans_take_the_fast_emitter_and_print_the_same(spec):
    data = plan_document(compile_file(spec))
    assert _same_text(data)
    assert plan_yaml(data) == python_emitter(data)
