"""Property tests for the load pass: any input gives a tree or located diagnostics, no crash."""

from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainspec.compiler._diagnostics import SpecError
from trainspec.compiler._tree import tree_paths
from trainspec.compiler.load._load import load_source

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # CI must not flake; a fixed seed still explores varied inputs
)

SEED_YAML = """\
training:
  name: sentiment-bert
  model: {pretrained: huggingface-spc-bert-base-cased}
  data:
    train: s3://acme-ml/sentiment/train/
  compute:
    instance_type: ml.p3.8xlarge
    instance_count: 2
  hyperparameters: &hp
    epochs: 3
    learning_rate: 5e-5
  metrics:
    - {name: "validation:rmse", regex: "rmse: ([0-9.]+)"}
  tags: *hp
"""
SEED_JSON = json.dumps(yaml.safe_load(SEED_YAML), indent=2)
SEED_TEXTPROTO = """\
training {
  name: "bert"
  compute { instance_type: "ml.p3.8xlarge" instance_count: 2 }
  hyperparameters { key: "epochs" value { number_value: 3 } }
  metrics { name: "acc" regex: "acc: ([0-9.]+)" }
}
"""
# Characters that matter to the grammars, so that mutations hit structure, not just text.
SIGNIFICANT = st.sampled_from(
    [*":-[]{},#&*!|>'\"%@`?<=~\t\n \\/\x00\x07\ufeff\u2028", "---", "...", "<<", "é"]
)


def _check(name: str, content: str | bytes) -> None:
    """The load contract: a located tree, or a SpecError whose diagnostics are all located."""
    try:
        loaded = load_source(name, content)
    except SpecError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.code.startswith("load.")
            assert diagnostic.location is not None
            assert diagnostic.location.path == name
            assert diagnostic.message
        return
    assert isinstance(loaded.tree, dict)
    for path in tree_paths(loaded.tree):
        assert path in loaded.locations
        if path and isinstance(path[-1], str):
            assert path in loaded.key_locations
    _assert_plain(loaded.tree)


@st.composite
def _mutated(draw, seed: str) -> str:
    text = seed
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate"]))
        at = draw(st.integers(0, len(text)))
        if kind == "insert":
            piece = draw(st.one_of(SIGNIFICANT, st.text(max_size=3)))
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif kind == "replace" and at < len(text):
            text = text[:at] + draw(SIGNIFICANT) + text[at + 1 :]
        elif kind == "duplicate":
            end = min(len(text), at + draw(st.integers(1, 40)))
            text = text[:end] + text[at:end] + text[end:]
        elif kind == "truncate":
            text = text[:at]
    return text


@SETTINGS
@given(_mutated(SEED_YAML))
def test_mutated_yaml_never_crashes(text):
    _check("spec.yaml", text)


@SETTINGS
@given(_mutated(SEED_JSON))
def test_mutated_json_never_crashes(text):
    _check("spec.json", text)


@SETTINGS
@given(_mutated(SEED_TEXTPROTO))
def test_mutated_textproto_never_crashes(text):
    _check("spec.textproto", text)


@SETTINGS
@given(
    st.sampled_from(["s.yaml", "s.json", "s.txtpb"]),
    st.one_of(st.text(max_size=200), st.lists(SIGNIFICANT, max_size=60).map("".join)),
)
def test_random_text_never_crashes(name, text):
    _check(name, text)


@SETTINGS
@given(st.sampled_from(["s.yaml", "s.json", "s.textproto"]), st.binary(max_size=200))
def test_random_bytes_never_crash(name, data):
    _check(name, data)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_TREES = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        _SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=8), children, max_size=4),
        ),
        max_leaves=20,
    ),
    max_size=5,
)


@SETTINGS
@given(_TREES, st.sampled_from([None, 0, 2]))
def test_json_round_trips_any_tree(tree, indent):
    text = json.dumps(tree, indent=indent)
    loaded = load_source("t.json", text)
    assert loaded.tree == tree
    _check("t.json", text)


@SETTINGS
@given(_TREES, st.booleans())
def test_yaml_matches_safe_load_on_dumped_trees(tree, flow):
    text = yaml.safe_dump(tree, default_flow_style=flow, allow_unicode=True)
    loaded = load_source("t.yaml", text)
    assert loaded.tree == yaml.safe_load(text)
    _check("t.yaml", text)


def _assert_plain(value) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            assert isinstance(key, str)
            _assert_plain(child)
    elif isinstance(value, list):
        for child in value:
            _assert_plain(child)
    else:
        assert value is None or isinstance(value, bool | int | float | str)
