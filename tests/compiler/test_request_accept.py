"""The accept-only request check must never vouch for a request that ParamValidator or the
strict pass rejects, and must vouch for the requests trainspec really lowers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainspec._plan import request_of
from trainspec.compiler import compile_file
from trainspec.compiler._tree import tree_paths
from trainspec.compiler.check import _botocore_check as bc

EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml")
    if p.name != "trainspec.defaults.yaml" and "node_modules" not in p.parts
)

# Values that break some rule somewhere: types, bools for numbers, empty and overlong
# strings, out-of-range numbers, containers where scalars belong and the reverse.
_MUTANTS = [
    None,
    True,
    0,
    -1,
    10**12,
    1.5,
    float("nan"),  # passes both checks (no comparison holds); the fast check declines it
    "",
    "x",
    "x" * 3000,
    "not a valid value!",
    [],
    ["x"],
    {},
    {"k": "v"},
    ("x",),  # a list to ParamValidator; the fast check leaves tuples to it
]


@pytest.fixture(scope="module")
def lowered() -> list[tuple[str, dict]]:
    plans = [compile_file(spec) for spec in EXAMPLES]
    return [(plan.sagemaker_operation, request_of(plan)) for plan in plans]


def _full(operation: str, request: dict) -> list:
    shape, node, _accept = bc._operation(operation)
    return bc._full_check(shape, node, request)


def _accepts(operation: str, request: dict) -> bool:
    return bc._operation(operation)[2](request)


def _replace(request: dict, path: tuple, value) -> dict:
    copied = copy.deepcopy(request)
    node = copied
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copied


def _delete(request: dict, path: tuple) -> dict:
    copied = copy.deepcopy(request)
    node = copied
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return copied


def _declined(value) -> bool:
    """Holds a value the fast check leaves to the full checks by design."""
    if isinstance(value, tuple) or value != value:  # a tuple, or NaN
        return True
    if isinstance(value, dict):
        return any(_declined(v) for v in value.values())
    return isinstance(value, list) and any(_declined(v) for v in value)


def test_every_example_request_is_vouched_for(lowered):
    # Otherwise the fast path would be dead code and every compile would pay full price.
    for operation, request in lowered:
        assert _full(operation, request) == []
        assert _accepts(operation, request), request


def test_single_mutations_agree_with_the_full_checks(lowered):
    checked = rejected = 0
    for operation, request in lowered:
        for path in tree_paths(request):
            if not path:
                continue
            variants = [_replace(request, path, mutant) for mutant in _MUTANTS]
            variants.append(_delete(request, path))
            parent = request
            for part in path[:-1]:
                parent = parent[part]
            if isinstance(parent, dict):
                variants.append(_replace(request, (*path[:-1], "UnknownMember"), "x"))
            for variant in variants:
                problems = _full(operation, variant)
                accepted = _accepts(operation, variant)
                checked += 1
                rejected += bool(problems)
                # Sound: never vouch for a request with problems ...
                assert not (accepted and problems), (path, problems)
                # ... and complete on these: a valid variant takes the fast path too.
                assert accepted or problems or _declined(variant), (path, variant)
    assert checked > 2000 and rejected > checked // 2


_JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["File", "ml.m5.xlarge", "s3://b/k/", "arn:aws:iam::1:role/r"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), junk=_JUNK)
def test_random_junk_is_never_vouched_for_wrongly(lowered, data, junk):
    operation, request = data.draw(st.sampled_from(lowered))
    path = data.draw(st.sampled_from([p for p in tree_paths(request) if p]))
    variant = _replace(request, path, junk)
    if _accepts(operation, variant):
        assert _full(operation, variant) == []


def test_shapes_the_requests_do_not_reach_yet():
    # Tagged unions and timestamps appear elsewhere in the SageMaker model; a request
    # kind trainspec lowers later must not slip past ParamValidator through them.
    from botocore.model import ShapeResolver
    from botocore.validate import ParamValidator
    from trainspec.compiler.check._request_accept import compile_shape

    resolver = ShapeResolver(
        {
            "Input": {
                "type": "structure",
                "members": {"Choice": {"shape": "Choice"}, "When": {"shape": "When"}},
            },
            "Choice": {
                "type": "structure",
                "union": True,
                "members": {"A": {"shape": "Text"}, "B": {"shape": "Text"}},
            },
            "Text": {"type": "string"},
            "When": {"type": "timestamp"},
        }
    )
    shape = resolver.get_shape_by_name("Input")
    accept = compile_shape(shape, lambda _pattern: None)
    for value in [{"A": "x"}, {"A": "x", "B": "y"}, {}]:
        request = {"Choice": value}
        valid = not ParamValidator().validate(request, shape).has_errors()
        assert accept(request) == valid, request
    assert not accept({"When": "2024-01-01T00:00:00Z"})  # left to ParamValidator
