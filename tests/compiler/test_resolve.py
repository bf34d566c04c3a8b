"""The resolve pass: merge rules (a YAML table) and origins."""

from pathlib import Path

import pytest
import yaml
from trainspec.compiler._diagnostics import Location
from trainspec.compiler._origin import OriginKind
from trainspec.compiler._resolve import resolve
from trainspec.compiler.load._layers import Layer

CASES = yaml.safe_load((Path(__file__).parent / "data" / "merge_cases.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_merge_table(case):
    job = "tuning" if "tuning" in case["expected"] else "training"
    layers = [Layer(OriginKind.SPEC, tree, {}) for tree in case["layers"]]
    assert resolve(layers, job).tree == case["expected"]


def test_origins_name_the_layer_that_won():
    lower = Layer(
        OriginKind.DEFAULTS,
        {"training": {"region": "us-east-1", "name": "a"}},
        {("training", "region"): Location("defaults.yaml", 3, 11)},
    )
    upper = Layer(
        OriginKind.SPEC,
        {"training": {"name": "b"}},
        {("training", "name"): Location("spec.yaml", 2, 9)},
    )
    resolved = resolve([lower, upper], "training")
    assert resolved.origins[("training", "region")].kind is OriginKind.DEFAULTS
    assert resolved.origins[("training", "region")].location == Location("defaults.yaml", 3, 11)
    assert resolved.origins[("training", "name")].kind is OriginKind.SPEC
    assert resolved.origins[("training", "name")].location == Location("spec.yaml", 2, 9)


def test_resolve_never_mutates_its_layers():
    tree = {"training": {"compute": {"instance_count": 1}}}
    resolve(
        [
            Layer(OriginKind.SPEC, tree, {}),
            Layer(OriginKind.SPEC, {"training": {"compute": {"instance_count": 4}}}, {}),
        ],
        "training",
    )
    assert tree == {"training": {"compute": {"instance_count": 1}}}
