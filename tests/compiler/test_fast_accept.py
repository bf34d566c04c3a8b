"""The validator's fast path is sound: it never accepts a tree cerberus rejects.

It is also what runs for valid specs (the point of having it), so every example must be
accepted by it without falling back to cerberus.
"""

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainspec.compiler import load_file
from trainspec.compiler._fields import job_spec
from trainspec.compiler.check._normalize import normalize
from trainspec.compiler.check._validate import _accepts, _validator

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    p
    for p in (ROOT / "examples").rglob("*.yaml")
    if "node_modules" not in p.parts and p.parent.name != "node"
)


def _tree(path: Path):
    loaded = load_file(path)
    tree, _, _ = normalize(loaded.tree, job_spec(), loaded.locations, loaded.key_locations)
    return tree


def _kind(path: Path) -> str:
    return "defaults" if path.name == "trainspec.defaults.yaml" else "spec"


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_every_example_is_accepted_without_cerberus(path):
    assert _accepts(_kind(path))(_tree(path))


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True),
    st.sampled_from(["", " ", "x", "ml.p3.2xlarge", "s3://b/", "s3://Bad_Bucket/", "a" * 64]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _paths(value, prefix + (index,))


def _mutate(tree, path, action, value, new_key):
    tree = copy.deepcopy(tree)
    if not path:
        return value if action == "replace" else tree
    parent = tree
    for part in path[:-1]:
        parent = parent[part]
    if action == "replace":
        parent[path[-1]] = value
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[new_key] = value
    return tree


SEEDS = [(_kind(p), _tree(p)) for p in EXAMPLES]
# Values that break one rule each: types, patterns, ranges, lengths, enums, nulls.
BREAKERS = [None, True, 0, -1, 2.5, "", "bad_name", "-x", "a" * 300, "s3://Bad_Bucket/x/", [], {}]

# Keys that clash with a oneof member somewhere (job kind, model), plus an unknown key.
SIBLINGS = {"tuning": {}, "training": {}, "image": "x", "pretrained": "x", "nonsense": 1}


def _assert_sound(kind, tree):
    if _accepts(kind)(tree):
        validator = _validator(kind)
        assert validator.validate(tree, normalize=False), validator.errors


@pytest.mark.parametrize("index", range(len(SEEDS)), ids=[p.name for p in EXAMPLES])
def test_fast_path_is_sound_for_every_single_field_mistake(index):
    """Each example with one value replaced or one field deleted, everywhere."""
    kind, tree = SEEDS[index]
    for path in _paths(tree):
        _assert_sound(kind, _mutate(tree, path, "delete", None, ""))
        for value in BREAKERS:
            _assert_sound(kind, _mutate(tree, path, "replace", value, ""))
        for key, value in SIBLINGS.items():  # the other member of a oneof, or an unknown
            _assert_sound(kind, _mutate(tree, path, "add", value, key))


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.sampled_from(SEEDS),
    choice=st.integers(min_value=0, max_value=10**6),
    action=st.sampled_from(["replace", "delete", "add"]),
    value=VALUES,
    new_key=st.sampled_from(["name", "extra", "tuning", "training", "uri", "instance_type"]),
)
def test_fast_path_never_accepts_what_cerberus_rejects(seed, choice, action, value, new_key):
    kind, tree = seed
    paths = list(_paths(tree))
    _assert_sound(kind, _mutate(tree, paths[choice % len(paths)], action, value, new_key))


# --- the packaged catalogs' schemas --------------------------------------------------------


def _catalog_cases():
    """(name, schema, cerberus validator, document): the packaged instances file (three
    entries of different kinds) and rules file (two range rules), as the loaders see them."""
    from importlib import resources

    import cerberus
    from trainspec.compiler.catalog import _catalog
    from trainspec.compiler.catalog._yaml_data import safe_load
    from trainspec.compiler.tuning import _autotune_rules

    folder = resources.files("trainspec.compiler.catalog")
    instances = safe_load(folder.joinpath("instances.yaml").read_text())
    picked = ("ml.m5.xlarge", "ml.p4d.24xlarge", "ml.trn1.32xlarge")
    instances["instances"] = {k: instances["instances"][k] for k in picked}
    rules = safe_load(folder.joinpath(_autotune_rules.RULES_FILE).read_text())
    rules["range_rules"] = rules["range_rules"][:2]
    schema = _catalog._INSTANCES_FILE_SCHEMA
    return [
        ("instances", _catalog._accepts(schema), _catalog._validator_class()(schema), instances),
        (
            "rules",
            _autotune_rules._accepts_rules(),
            cerberus.Validator(_autotune_rules._SCHEMA),
            rules,
        ),
    ]


CATALOG_CASES = _catalog_cases()


def test_the_packaged_catalogs_are_accepted_without_cerberus():
    from importlib import resources

    from trainspec.compiler.catalog import _catalog
    from trainspec.compiler.catalog._yaml_data import safe_load
    from trainspec.compiler.tuning import _autotune_rules

    folder = resources.files("trainspec.compiler.catalog")
    instances = safe_load(folder.joinpath("instances.yaml").read_text())
    assert _catalog._accepts(_catalog._INSTANCES_FILE_SCHEMA)(instances)
    rules = safe_load(folder.joinpath(_autotune_rules.RULES_FILE).read_text())
    assert _autotune_rules._accepts_rules()(rules)


@pytest.mark.parametrize("case", CATALOG_CASES, ids=[c[0] for c in CATALOG_CASES])
def test_fast_path_is_sound_for_every_single_catalog_mistake(case):
    _, accepts, validator, document = case
    for path in _paths(document):
        for action, value in [("delete", None), *(("replace", v) for v in BREAKERS)]:
            mutated = _mutate(document, path, action, value, "")
            if accepts(mutated):
                assert validator.validate(mutated), (path, action, value, validator.errors)


def test_types_are_cerberus_types_but_for_bools_as_integers():
    """TYPES restates cerberus's types_mapping so the fast path needs no cerberus."""
    import cerberus
    from trainspec.compiler.check._fast_accept import TYPES

    def flat(types):
        out = []
        for item in types:
            out.extend(flat(item) if isinstance(item, tuple) else [item])
        return tuple(out)

    expected = {
        name: (d.name, flat(d.included_types), flat(d.excluded_types))
        for name, d in cerberus.Validator.types_mapping.items()
    }
    expected["integer"] = ("integer", (int,), (bool,))
    assert {name: tuple(d) for name, d in TYPES.items()} == expected
